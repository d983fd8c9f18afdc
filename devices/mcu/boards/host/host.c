// Host board port (Linux, macOS): runs the harness as a normal program, to check that a
// bundle builds and runs before flashing anything. Times are this machine's.
// Copyright edgekit authors. Apache-2.0.
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "edgekit_platform.h"

uint32_t edgekit_micros(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint32_t)((uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u);
}

void edgekit_write(const char* text) {
  fputs(text, stdout);
  fflush(stdout);
}
