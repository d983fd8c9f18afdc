// Startup for QEMU's Arm MPS2/MPS3 boards (mps2-an386: Cortex-M4F, mps2-an500: Cortex-M7,
// mps2-an505: Cortex-M33, mps3-an547: Cortex-M55): vector table, FPU (and MVE) on, .data/.bss
// set-up, C++ constructors, main(), then a semihosting exit with main's status, so QEMU ends
// when the harness does.
// Copyright edgekit authors. Apache-2.0.
#include <stdint.h>

#include "mps2.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern void __libc_init_array(void);
extern int main(void);

void Reset_Handler(void);
void Fault_Handler(void);

typedef void (*Handler)(void);
extern const Handler mps2_vectors[16];

void Reset_Handler(void) {
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
  // CP10/CP11 full access: the FPU, and on Armv8.1-M also MVE (Helium). On the TrustZone
  // boards the CPU stays secure, where this CPACR is the one that counts.
  MPS2_CPACR |= (0xFu << 20);
  __asm volatile("dsb\n\tisb" ::: "memory");
#endif
  MPS2_VTOR = (uint32_t)(uintptr_t)mps2_vectors;  // the linked table (an alias on the AN547)
  uint32_t* src = &_sidata;
  uint32_t* dst = &_sdata;
  while (dst < &_edata) *dst++ = *src++;
  for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
  mps2_board_init();
  __libc_init_array();
  mps2_exit(main());
}

void Fault_Handler(void) {
  mps2_write_raw("EDGEKIT_RESULT {\"kind\":\"error\",\"message\":\"hard fault on the board\"}\n");
  mps2_exit(3);
}

__attribute__((section(".isr_vector"), used)) const Handler mps2_vectors[16] = {
    (Handler)(uintptr_t)&_estack,  // initial stack pointer
    Reset_Handler,
    Fault_Handler,  // NMI
    Fault_Handler,  // HardFault
    Fault_Handler,  // MemManage
    Fault_Handler,  // BusFault
    Fault_Handler,  // UsageFault
    Fault_Handler,  // SecureFault (Armv8-M; reserved before)
    0, 0, 0,
    Fault_Handler,  // SVCall
    Fault_Handler,  // DebugMonitor
    0,
    Fault_Handler,  // PendSV
    Fault_Handler,  // SysTick
};
