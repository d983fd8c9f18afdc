// QEMU MPS2 board port: edgekit_platform.h on the CMSDK UART and timer, semihosting for the
// exit status and the command line, newlib system calls, stack/heap high-water marks.
// Copyright edgekit authors. Apache-2.0.
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "edgekit_platform.h"
#include "mps2.h"

#define STACK_PAINT 0xC0FFEE11u

extern uint32_t _stack_bottom, _estack, _heap_start;
// TFLM's Cortex-M debug log hands its messages to a callback (absent from other trees).
extern void RegisterDebugLogCallback(void (*callback)(const char* text)) __attribute__((weak));

static uint8_t* heap_break;
static uint8_t* heap_peak;

// --- semihosting (QEMU: -semihosting-config enable=on,target=native) ---------------------

static int semihost(int operation, void* argument) {
  register int r0 __asm__("r0") = operation;
  register void* r1 __asm__("r1") = argument;
  __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void mps2_exit(int status) {
  uint32_t block[2] = {0x20026u, (uint32_t)status};  // ADP_Stopped_ApplicationExit, status
  semihost(0x20, block);                              // SYS_EXIT_EXTENDED
  for (;;) {
  }
}

// --- console and clock ---------------------------------------------------------------------

void mps2_write_raw(const char* text) {
  for (; *text; ++text) {
    while (MPS2_UART0_STATE & 1u) {  // TX buffer full
    }
    MPS2_UART0_DATA = (uint32_t)(unsigned char)*text;
  }
}

static void debug_log(const char* text) {
  mps2_write_raw(text);
}

static void paint_stack(void) {
  uintptr_t sp;
  __asm volatile("mov %0, sp" : "=r"(sp));
  uint32_t* top = (uint32_t*)(sp - 256u);  // leave this frame and the caller's alone
  for (uint32_t* word = &_stack_bottom; word < top; ++word) *word = STACK_PAINT;
}

void mps2_board_init(void) {
  MPS2_UART0_BAUDDIV = 16u;
  MPS2_UART0_CTRL = 1u;  // TX enable
#ifdef MPS2_TIMER0_BASE
  MPS2_TIMER0_RELOAD = 0xFFFFFFFFu;
  MPS2_TIMER0_VALUE = 0xFFFFFFFFu;
  MPS2_TIMER0_CTRL = 1u;  // enable, no interrupt
#else
  MPS2_SYSCNT_CNTCR = 0u;  // the scale may only change while the counter is off
  MPS2_SYSCNT_CNTSCR = 0x00C80000u;  // 25/32
  MPS2_SYSCNT_CNTCR = (1u << 0) | (1u << 2);  // EN | SCEN
#endif
  heap_break = heap_peak = (uint8_t*)&_heap_start;
  paint_stack();
  if (RegisterDebugLogCallback) RegisterDebugLogCallback(debug_log);
}

void edgekit_write(const char* text) { mps2_write_raw(text); }

#ifdef MPS2_TIMER0_BASE
uint32_t edgekit_ticks(void) { return 0xFFFFFFFFu - MPS2_TIMER0_VALUE; }
#else
uint32_t edgekit_ticks(void) { return MPS2_SYSCNT_CNTCV_LO; }
#endif

uint32_t edgekit_tick_ns(void) { return 1000000000u / MPS2_TIMER_HZ; }

uint32_t edgekit_micros(void) { return edgekit_ticks() / (MPS2_TIMER_HZ / 1000000u); }

int edgekit_memory(uint32_t* stack_bytes, uint32_t* heap_bytes) {
  const uint32_t* word = &_stack_bottom;
  while (word < &_estack && *word == STACK_PAINT) ++word;
  *stack_bytes = (uint32_t)((uintptr_t)&_estack - (uintptr_t)word);
  *heap_bytes = (uint32_t)(heap_peak - (uint8_t*)&_heap_start);
  return 1;
}

// QEMU's -append command line (semihosting SYS_GET_CMDLINE), read once.
static const char* command_line(void) {
  static char buffer[256];
  static int read;
  if (!read) {
    read = 1;
    struct {
      char* text;
      int size;
    } block = {buffer, (int)sizeof buffer - 1};
    if (semihost(0x15, &block) != 0) buffer[0] = 0;
    buffer[sizeof buffer - 1] = 0;
  }
  return buffer;
}

// "arena=N" on the command line: run with a smaller arena (the host bisects with it).
uint32_t edgekit_arena_limit(void) {
  const char* found = strstr(command_line(), "arena=");
  return found ? (uint32_t)strtoul(found + 6, NULL, 10) : 0u;
}

// "EDGEKIT_RUN <warmup> <runs>" on the command line, handed over once as console input.
int edgekit_read_line(char* buf, int size, uint32_t timeout_ms) {
  static int given;
  (void)timeout_ms;
  const char* found = strstr(command_line(), "EDGEKIT_RUN");
  if (given || found == NULL || size < 1) return -1;
  given = 1;
  int n = 0;
  while (found[n] && found[n] != '\n' && n < size - 1) {
    buf[n] = found[n];
    ++n;
  }
  buf[n] = 0;
  return n;
}

// --- newlib system calls -----------------------------------------------------------------

void* _sbrk(ptrdiff_t increment) {
  uint8_t* previous = heap_break;
  if (heap_break + increment > (uint8_t*)&_stack_bottom) {
    errno = ENOMEM;
    return (void*)-1;
  }
  heap_break += increment;
  if (heap_break > heap_peak) heap_peak = heap_break;
  return previous;
}

int _write(int file, const char* data, int length) {
  (void)file;
  for (int i = 0; i < length; ++i) {
    while (MPS2_UART0_STATE & 1u) {
    }
    MPS2_UART0_DATA = (uint32_t)(unsigned char)data[i];
  }
  return length;
}

void _exit(int status) { mps2_exit(status); }
int _close(int file) { (void)file; return -1; }
int _fstat(int file, struct stat* st) { (void)file; st->st_mode = S_IFCHR; return 0; }
int _isatty(int file) { (void)file; return 1; }
int _lseek(int file, int offset, int whence) { (void)file; (void)offset; (void)whence; return 0; }
int _read(int file, char* data, int length) { (void)file; (void)data; (void)length; return 0; }
int _kill(int pid, int signal) { (void)pid; (void)signal; errno = EINVAL; return -1; }
int _getpid(void) { return 1; }
