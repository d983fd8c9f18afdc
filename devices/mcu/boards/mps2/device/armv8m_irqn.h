/* The core exception numbers of an Armv8-M CPU, for edgekit's minimal CMSIS device headers
   (ARMCM33.h, ARMCM55.h): what CMSIS's core_cm33.h/core_cm55.h expect as IRQn_Type.
   Copyright edgekit authors. Apache-2.0. */
#ifndef EDGEKIT_ARMV8M_IRQN_H
#define EDGEKIT_ARMV8M_IRQN_H

typedef enum IRQn {
  NonMaskableInt_IRQn = -14,
  HardFault_IRQn = -13,
  MemoryManagement_IRQn = -12,
  BusFault_IRQn = -11,
  UsageFault_IRQn = -10,
  SecureFault_IRQn = -9,
  SVCall_IRQn = -5,
  DebugMonitor_IRQn = -4,
  PendSV_IRQn = -2,
  SysTick_IRQn = -1,
  Interrupt0_IRQn = 0
} IRQn_Type;

#endif /* EDGEKIT_ARMV8M_IRQN_H */
