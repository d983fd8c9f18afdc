# CMake toolchain file for bare-metal Arm (Debian: gcc-arm-none-eabi, libnewlib-arm-none-eabi).
#   cmake -S harness -B build-m4 -DCMAKE_TOOLCHAIN_FILE=arm-none-eabi.cmake \
#         -DEDGEKIT_CPU=cortex-m4 -DTFLM_DIR=/path/to/tflm-tree
# CPU flags are not set here: CMakeLists.txt adds them per target from EDGEKIT_CPU, so passing
# CMAKE_CXX_FLAGS on the command line cannot drop them.
# Copyright edgekit authors. Apache-2.0.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(EDGEKIT_TOOLCHAIN_PREFIX "arm-none-eabi-" CACHE STRING "cross compiler prefix")
set(CMAKE_C_COMPILER ${EDGEKIT_TOOLCHAIN_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${EDGEKIT_TOOLCHAIN_PREFIX}g++)
set(CMAKE_ASM_COMPILER ${EDGEKIT_TOOLCHAIN_PREFIX}gcc)
set(CMAKE_AR ${EDGEKIT_TOOLCHAIN_PREFIX}ar)
# No OS to link a test program against while CMake probes the compiler.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
