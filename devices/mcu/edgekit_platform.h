// The board support edgekit's TFLM harness needs: implement these in your BSP.
// Copyright edgekit authors. Apache-2.0.
#ifndef EDGEKIT_PLATFORM_H_
#define EDGEKIT_PLATFORM_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Microseconds from any fixed point; may wrap at 2^32 (the harness subtracts unsigned).
// e.g. Arduino: return micros();  Zephyr: k_cyc_to_us_floor32(k_cycle_get_32());
// CMSIS (Cortex-M3+): DWT->CYCCNT / (SystemCoreClock / 1000000).
uint32_t edgekit_micros(void);

// Write a NUL-terminated string to the serial console (no newline is added).
void edgekit_write(const char* text);

// Optional: read one line from the console into `buf` (without the newline), waiting up to
// `timeout_ms`. Return its length, or -1 if nothing arrived. Boards that cannot read the
// console leave this out: a weak default returns -1 and the harness runs its compiled-in
// EDGEKIT_WARMUP / EDGEKIT_RUNS once at boot.
int edgekit_read_line(char* buf, int size, uint32_t timeout_ms);

// Optional: a free-running tick counter (may wrap at 2^32) and its period in nanoseconds, for
// finer times than microseconds. Under QEMU with -icount shift=0 one guest instruction takes
// 1 ns, so ticks x tick_ns counts instructions. Weak defaults: no tick clock (tick_ns 0).
uint32_t edgekit_ticks(void);
uint32_t edgekit_tick_ns(void);

// Optional: peak stack and heap use so far in bytes; return 1 if known. Weak default: 0.
int edgekit_memory(uint32_t* stack_bytes, uint32_t* heap_bytes);

// Optional: run with a smaller arena than kTensorArenaSize (0: the full arena). A host that
// can pass arguments (QEMU's semihosting command line) bisects the smallest arena with it.
uint32_t edgekit_arena_limit(void);

#ifdef __cplusplus
}
#endif

#endif  // EDGEKIT_PLATFORM_H_
