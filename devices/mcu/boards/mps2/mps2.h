// QEMU MPS2 board port for edgekit's TFLM harness: registers and board functions.
// Copyright edgekit authors. Apache-2.0.
#ifndef EDGEKIT_MPS2_H_
#define EDGEKIT_MPS2_H_

#include <stdint.h>

#define MPS2_REG(address) (*(volatile uint32_t*)(address))

// Board selection (the Makefile defines one for the CPUs that need it):
//   default          mps2-an386 (Cortex-M4F) and mps2-an500 (Cortex-M7)
//   EDGEKIT_AN505    mps2-an505 (Cortex-M33, secure world)
//   EDGEKIT_AN547    mps3-an547 (Cortex-M55 with Helium, SSE-300, secure world)
// On the two TrustZone boards the devices sit behind protection controllers that reset to
// "secure only", and the CPU boots secure: the port uses the secure aliases (address bit 28).
#if defined(EDGEKIT_AN505)
#define MPS2_UART0_BASE 0x50200000u   // CMSDK UART0 (NS 0x40200000)
#define MPS2_TIMER0_BASE 0x50000000u  // CMSDK TIMER0 (NS 0x40000000), 20 MHz main clock
#define MPS2_TIMER_HZ 20000000u
#elif defined(EDGEKIT_AN547)
#define MPS2_UART0_BASE 0x59303000u  // CMSDK UART0 (NS 0x49303000)
// No CMSDK timer: the SSE-300 System Counter (32 MHz) scaled by 25/32 (CNTSCR, 8.24 fixed
// point) counts at 25 MHz, the tick of the other boards.
#define MPS2_SYSCNT_CNTCR MPS2_REG(0x58100000u)
#define MPS2_SYSCNT_CNTSCR MPS2_REG(0x58100010u)
#define MPS2_SYSCNT_CNTCV_LO MPS2_REG(0x58101000u)
#define MPS2_TIMER_HZ 25000000u
#else
#define MPS2_UART0_BASE 0x40004000u
#define MPS2_TIMER0_BASE 0x40000000u  // CMSDK timer0, the 25 MHz system clock
#define MPS2_TIMER_HZ 25000000u
#endif

// CMSDK APB UART0 (QEMU's serial 0)
#define MPS2_UART0_DATA MPS2_REG(MPS2_UART0_BASE + 0x0u)
#define MPS2_UART0_STATE MPS2_REG(MPS2_UART0_BASE + 0x4u)
#define MPS2_UART0_CTRL MPS2_REG(MPS2_UART0_BASE + 0x8u)
#define MPS2_UART0_BAUDDIV MPS2_REG(MPS2_UART0_BASE + 0x10u)
#ifdef MPS2_TIMER0_BASE
// CMSDK APB timer0, counting down
#define MPS2_TIMER0_CTRL MPS2_REG(MPS2_TIMER0_BASE + 0x0u)
#define MPS2_TIMER0_VALUE MPS2_REG(MPS2_TIMER0_BASE + 0x4u)
#define MPS2_TIMER0_RELOAD MPS2_REG(MPS2_TIMER0_BASE + 0x8u)
#endif
// System control block: vector table offset, coprocessor access (the FPU, and MVE on v8.1-M)
#define MPS2_VTOR MPS2_REG(0xE000ED08u)
#define MPS2_CPACR MPS2_REG(0xE000ED88u)

#ifdef __cplusplus
extern "C" {
#endif

void mps2_board_init(void);
void mps2_write_raw(const char* text);
void mps2_exit(int status) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif  // EDGEKIT_MPS2_H_
