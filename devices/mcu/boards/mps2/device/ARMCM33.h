/* Minimal CMSIS device header for a generic Cortex-M33: what TFLM's cortex_m_generic
   micro_time.cc needs (the core's registers), for edgekit's MPS2/MPS3 board port. The TFLM
   trees made by create_tflm_tree.py carry Cortex_DFP's ARMCM4/ARMCM7 headers only.
   Copyright edgekit authors. Apache-2.0. */
#ifndef EDGEKIT_ARMCM33_H
#define EDGEKIT_ARMCM33_H

#ifdef __cplusplus
extern "C" {
#endif

#include "armv8m_irqn.h"

#define __CM33_REV                0x0000U   /* Core revision r0p1 */
#define __SAUREGION_PRESENT       0U        /* SAU regions present */
#define __MPU_PRESENT             1U        /* MPU present */
#define __VTOR_PRESENT            1U        /* VTOR present */
#define __NVIC_PRIO_BITS          3U        /* Number of Bits used for Priority Levels */
#define __Vendor_SysTickConfig    0U        /* Set to 1 if different SysTick Config is used */
#define __FPU_PRESENT             1U        /* FPU present (single precision) */
#define __DSP_PRESENT             1U        /* DSP extension present */

#include "core_cm33.h"

#ifdef __cplusplus
}
#endif

#endif /* EDGEKIT_ARMCM33_H */
