// Startup for QEMU's Arm MPS2 boards (mps2-an386: Cortex-M4F, mps2-an500: Cortex-M7):
// vector table, .data/.bss set-up, FPU on, C++ constructors, main(), then a semihosting exit
// with main's status, so QEMU ends when the harness does.
// Copyright edgekit authors. Apache-2.0.
#include <stdint.h>

#include "mps2.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern void __libc_init_array(void);
extern int main(void);

void Reset_Handler(void);
void Fault_Handler(void);

void Reset_Handler(void) {
  uint32_t* src = &_sidata;
  uint32_t* dst = &_sdata;
  while (dst < &_edata) *dst++ = *src++;
  for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
#if defined(__ARM_FP)
  MPS2_CPACR |= (0xFu << 20);  // CP10/CP11 (the FPU): full access
  __asm volatile("dsb\n\tisb" ::: "memory");
#endif
  mps2_board_init();
  __libc_init_array();
  mps2_exit(main());
}

void Fault_Handler(void) {
  mps2_write_raw("EDGEKIT_RESULT {\"kind\":\"error\",\"message\":\"hard fault on the board\"}\n");
  mps2_exit(3);
}

typedef void (*Handler)(void);

__attribute__((section(".isr_vector"), used)) const Handler mps2_vectors[16] = {
    (Handler)(uintptr_t)&_estack,  // initial stack pointer
    Reset_Handler,
    Fault_Handler,  // NMI
    Fault_Handler,  // HardFault
    Fault_Handler,  // MemManage
    Fault_Handler,  // BusFault
    Fault_Handler,  // UsageFault
    0, 0, 0, 0,
    Fault_Handler,  // SVCall
    Fault_Handler,  // DebugMonitor
    0,
    Fault_Handler,  // PendSV
    Fault_Handler,  // SysTick
};
