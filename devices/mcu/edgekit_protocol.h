// edgekit's serial line protocol (version 1), board side. Plain C, no TFLM dependency.
// Every line the host reads is "EDGEKIT_RESULT " + one JSON object + "\n"; any other console
// output is ignored. The host may send "EDGEKIT_RUN <warmup> <runs>\n". Each function below
// documents the line it formats.
#ifndef EDGEKIT_PROTOCOL_H_
#define EDGEKIT_PROTOCOL_H_

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define EDGEKIT_PROTOCOL_VERSION 1
#define EDGEKIT_LINE_MAX 256

// {"kind":"hello",...}: after the interpreter is ready (or "error" when it is not).
// tick_ns: the period of the board's tick clock, 0 when it has none.
static inline int edgekit_format_hello(char* out, size_t size, const char* model,
                                       unsigned long model_bytes, unsigned long arena_bytes,
                                       unsigned long arena_used_bytes, uint32_t init_us,
                                       uint32_t tick_ns) {
  return snprintf(out, size,
                  "EDGEKIT_RESULT {\"kind\":\"hello\",\"protocol\":%d,\"harness\":\"edgekit-tflm\","
                  "\"model\":\"%s\",\"model_bytes\":%lu,\"arena_bytes\":%lu,"
                  "\"arena_used_bytes\":%lu,\"init_us\":%lu,\"tick_ns\":%lu}\n",
                  EDGEKIT_PROTOCOL_VERSION, model, model_bytes, arena_bytes, arena_used_bytes,
                  (unsigned long)init_us, (unsigned long)tick_ns);
}

// {"kind":"run","i":N,"us":T,"ticks":K}: one timed Invoke(); ticks of the tick clock (0
// without one).
static inline int edgekit_format_run(char* out, size_t size, int index, uint32_t us,
                                     uint32_t ticks) {
  return snprintf(out, size,
                  "EDGEKIT_RESULT {\"kind\":\"run\",\"i\":%d,\"us\":%lu,\"ticks\":%lu}\n", index,
                  (unsigned long)us, (unsigned long)ticks);
}

// {"kind":"memory","stack_bytes":S,"heap_bytes":H}: peak stack and heap use (boards that
// know them).
static inline int edgekit_format_memory(char* out, size_t size, uint32_t stack_bytes,
                                        uint32_t heap_bytes) {
  return snprintf(out, size,
                  "EDGEKIT_RESULT {\"kind\":\"memory\",\"stack_bytes\":%lu,\"heap_bytes\":%lu}\n",
                  (unsigned long)stack_bytes, (unsigned long)heap_bytes);
}

// {"kind":"summary",...}: after the last timed run.
static inline int edgekit_format_summary(char* out, size_t size, int warmup, int runs,
                                         uint32_t first_us, uint32_t output_crc32) {
  return snprintf(out, size,
                  "EDGEKIT_RESULT {\"kind\":\"summary\",\"warmup\":%d,\"runs\":%d,"
                  "\"first_us\":%lu,\"output_crc32\":\"%08lx\"}\n",
                  warmup, runs, (unsigned long)first_us, (unsigned long)output_crc32);
}

// {"kind":"error","message":...}: the run cannot go on (the message must not contain quotes).
static inline int edgekit_format_error(char* out, size_t size, const char* message) {
  return snprintf(out, size, "EDGEKIT_RESULT {\"kind\":\"error\",\"message\":\"%s\"}\n",
                  message);
}

// Parse "EDGEKIT_RUN <warmup> <runs>"; returns 1 on success.
static inline int edgekit_parse_run(const char* line, int* warmup, int* runs) {
  return sscanf(line, "EDGEKIT_RUN %d %d", warmup, runs) == 2 && *warmup >= 0 && *runs > 0;
}

// CRC-32 (IEEE) of the first output, so host and board outputs can be compared.
static inline uint32_t edgekit_crc32_update(uint32_t crc, const uint8_t* data, size_t n) {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

static inline uint32_t edgekit_crc32(const uint8_t* data, size_t n) {
  return edgekit_crc32_update(0, data, n);
}

#endif  // EDGEKIT_PROTOCOL_H_
