// QEMU MPS2 board port for edgekit's TFLM harness: registers and board functions.
// Copyright edgekit authors. Apache-2.0.
#ifndef EDGEKIT_MPS2_H_
#define EDGEKIT_MPS2_H_

#include <stdint.h>

#define MPS2_REG(address) (*(volatile uint32_t*)(address))

// CMSDK APB UART0 (QEMU's serial 0)
#define MPS2_UART0_DATA MPS2_REG(0x40004000u)
#define MPS2_UART0_STATE MPS2_REG(0x40004004u)
#define MPS2_UART0_CTRL MPS2_REG(0x40004008u)
#define MPS2_UART0_BAUDDIV MPS2_REG(0x40004010u)
// CMSDK APB timer0, clocked at the 25 MHz system clock, counting down
#define MPS2_TIMER0_CTRL MPS2_REG(0x40000000u)
#define MPS2_TIMER0_VALUE MPS2_REG(0x40000004u)
#define MPS2_TIMER0_RELOAD MPS2_REG(0x40000008u)
#define MPS2_TIMER_HZ 25000000u
// System control block: coprocessor access (the FPU)
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
