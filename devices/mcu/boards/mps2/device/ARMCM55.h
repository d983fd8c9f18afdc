/* Minimal CMSIS device header for a generic Cortex-M55: what TFLM's cortex_m_generic
   micro_time.cc needs (the core's registers), for edgekit's MPS2/MPS3 board port. The TFLM
   trees made by create_tflm_tree.py carry Cortex_DFP's ARMCM4/ARMCM7 headers only.
   Copyright edgekit authors. Apache-2.0. */
#ifndef EDGEKIT_ARMCM55_H
#define EDGEKIT_ARMCM55_H

#ifdef __cplusplus
extern "C" {
#endif

#include "armv8m_irqn.h"

#define __CM55_REV                0x0001U   /* Core revision r0p1 */
#define __SAUREGION_PRESENT       0U        /* SAU regions present */
#define __MPU_PRESENT             1U        /* MPU present */
#define __VTOR_PRESENT            1U        /* VTOR present */
#define __NVIC_PRIO_BITS          3U        /* Number of Bits used for Priority Levels */
#define __Vendor_SysTickConfig    0U        /* Set to 1 if different SysTick Config is used */
#define __FPU_PRESENT             1U        /* FPU present */
#define __FPU_DP                  1U        /* double precision FPU */
#define __DSP_PRESENT             1U        /* DSP extension present */
#define __MVE_PRESENT             1U        /* M-Profile Vector Extension (Helium) */
#define __MVE_FP                  1U        /* MVE floating point */
#define __ICACHE_PRESENT          1U        /* Instruction cache present */
#define __DCACHE_PRESENT          1U        /* Data cache present */
#define __PMU_PRESENT             0U        /* PMU not used here */

#include "core_cm55.h"

#ifdef __cplusplus
}
#endif

#endif /* EDGEKIT_ARMCM55_H */
