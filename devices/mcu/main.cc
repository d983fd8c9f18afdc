// edgekit's TFLM benchmark harness: runs the deploy bundle's model on a microcontroller and
// reports over the serial console in edgekit's line protocol (edgekit_protocol.h).
//
// Build it with the bundle's tflm/ sources (model_data.cc, model_ops.h, edgekit_model.h),
// TFLM (with CMSIS-NN on Arm) and your board's edgekit_platform.h hooks. See README.md.
#include <stdint.h>
#include <string.h>

#include "edgekit_model.h"  // from the bundle: model array, op resolver, kTensorArenaSize
#include "edgekit_platform.h"
#include "edgekit_protocol.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

#ifndef EDGEKIT_WARMUP
#define EDGEKIT_WARMUP 5
#endif
#ifndef EDGEKIT_RUNS
#define EDGEKIT_RUNS 50
#endif
#ifndef EDGEKIT_COMMAND_TIMEOUT_MS
#define EDGEKIT_COMMAND_TIMEOUT_MS 2000
#endif

// Boards without console input: no command ever arrives.
extern "C" __attribute__((weak)) int edgekit_read_line(char*, int, uint32_t) { return -1; }

namespace {

alignas(16) uint8_t tensor_arena[kTensorArenaSize];
char line[EDGEKIT_LINE_MAX];

void report_error(const char* message) {
  edgekit_format_error(line, sizeof line, message);
  edgekit_write(line);
}

// Deterministic input: a xorshift sequence over the input tensor's bytes (seed 0 -> 1).
void fill_input(TfLiteTensor* input) {
  uint32_t state = 2463534242u;
  for (size_t i = 0; i < input->bytes; ++i) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    input->data.uint8[i] = static_cast<uint8_t>(state);
  }
}

}  // namespace

int main() {
  tflite::InitializeTarget();
  const uint32_t init_start = edgekit_micros();
  const tflite::Model* model = tflite::GetModel(EDGEKIT_MODEL_DATA);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    report_error("model schema version mismatch");
    return 1;
  }
  static EdgekitOpResolver resolver;
  if (EdgekitRegisterOps(resolver) != kTfLiteOk) {
    report_error("op registration failed");
    return 1;
  }
  static tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, kTensorArenaSize);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    report_error("AllocateTensors failed: arena too small");
    return 1;
  }
  const uint32_t init_us = edgekit_micros() - init_start;

  bool first_round = true;
  for (;;) {
    int warmup = EDGEKIT_WARMUP, runs = EDGEKIT_RUNS;
    char command[64];
    const int n = edgekit_read_line(command, sizeof command, EDGEKIT_COMMAND_TIMEOUT_MS);
    if (n > 0) {
      if (!edgekit_parse_run(command, &warmup, &runs)) continue;  // not for us
    } else if (!first_round) {
      continue;  // after the boot run, only a host command starts another
    }
    first_round = false;
    // Every round starts with hello: a host that connected after boot still gets it.
    edgekit_format_hello(line, sizeof line, EDGEKIT_MODEL_NAME, EDGEKIT_MODEL_DATA_LEN,
                         kTensorArenaSize, interpreter.arena_used_bytes(), init_us);
    edgekit_write(line);

    fill_input(interpreter.input(0));
    uint32_t start = edgekit_micros();
    if (interpreter.Invoke() != kTfLiteOk) {
      report_error("Invoke failed");
      continue;
    }
    const uint32_t first_us = edgekit_micros() - start;
    const TfLiteTensor* output = interpreter.output(0);
    const uint32_t crc = edgekit_crc32(output->data.uint8, output->bytes);
    for (int i = 0; i < warmup; ++i) interpreter.Invoke();
    for (int i = 0; i < runs; ++i) {
      start = edgekit_micros();
      interpreter.Invoke();
      const uint32_t us = edgekit_micros() - start;
      edgekit_format_run(line, sizeof line, i, us);  // printed outside the timed region
      edgekit_write(line);
    }
    edgekit_format_summary(line, sizeof line, warmup, runs, first_us, crc);
    edgekit_write(line);
  }
}
