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
#include "tensorflow/lite/schema/schema_utils.h"

#ifndef EDGEKIT_WARMUP
#define EDGEKIT_WARMUP 5
#endif
#ifndef EDGEKIT_RUNS
#define EDGEKIT_RUNS 50
#endif
#ifndef EDGEKIT_COMMAND_TIMEOUT_MS
#define EDGEKIT_COMMAND_TIMEOUT_MS 2000
#endif
// EDGEKIT_EXIT_AFTER_RUN: return from main() after the boot run (simulators, CI), instead of
// waiting for host commands.

// Optional board hooks (edgekit_platform.h): weak defaults for boards that lack them.
namespace {
bool no_console_input = false;  // set by the weak edgekit_read_line: the board cannot read
}  // namespace
extern "C" __attribute__((weak)) int edgekit_read_line(char*, int, uint32_t) {
  no_console_input = true;
  return -1;
}
extern "C" __attribute__((weak)) uint32_t edgekit_ticks(void) { return 0; }
extern "C" __attribute__((weak)) uint32_t edgekit_tick_ns(void) { return 0; }
extern "C" __attribute__((weak)) int edgekit_memory(uint32_t*, uint32_t*) { return 0; }
extern "C" __attribute__((weak)) uint32_t edgekit_arena_limit(void) { return 0; }

namespace {

alignas(16) uint8_t tensor_arena[kTensorArenaSize];
char line[EDGEKIT_LINE_MAX];

void report_error(const char* message) {
  edgekit_format_error(line, sizeof line, message);
  edgekit_write(line);
}

// Deterministic inputs: one xorshift sequence over the bytes of input 0, then input 1...
void fill_inputs(tflite::MicroInterpreter& interpreter) {
  uint32_t state = 2463534242u;
  for (size_t t = 0; t < interpreter.inputs_size(); ++t) {
    TfLiteTensor* input = interpreter.input(t);
    for (size_t i = 0; i < input->bytes; ++i) {
      state ^= state << 13;
      state ^= state >> 17;
      state ^= state << 5;
      input->data.uint8[i] = static_cast<uint8_t>(state);
    }
  }
}

// CRC-32 over the bytes of output 0, then output 1... (zlib's crc32 of their concatenation).
uint32_t outputs_crc32(tflite::MicroInterpreter& interpreter) {
  uint32_t crc = 0;
  for (size_t t = 0; t < interpreter.outputs_size(); ++t) {
    const TfLiteTensor* output = interpreter.output(t);
    crc = edgekit_crc32_update(crc, output->data.uint8, output->bytes);
  }
  return crc;
}

// The first builtin op the resolver lacks, or nullptr: "op not registered" is then reported
// as such, not as the "arena too small" AllocateTensors would suggest.
const char* missing_op(const tflite::Model* model, const EdgekitOpResolver& resolver) {
  const auto* codes = model->operator_codes();
  for (flatbuffers::uoffset_t i = 0; codes != nullptr && i < codes->size(); ++i) {
    const tflite::BuiltinOperator op = tflite::GetBuiltinCode(codes->Get(i));
    if (op != tflite::BuiltinOperator_CUSTOM && resolver.FindOp(op) == nullptr) {
      return tflite::EnumNameBuiltinOperator(op);
    }
  }
  return nullptr;
}

// One round: hello, the first Invoke (its output CRC), warm-up, timed runs, memory, summary.
// Returns 0, or 1 after reporting an error.
int run_round(tflite::MicroInterpreter& interpreter, size_t arena_bytes, uint32_t init_us,
              int warmup, int runs) {
  // Every round starts with hello: a host that connected after boot still gets it.
  edgekit_format_hello(line, sizeof line, EDGEKIT_MODEL_NAME, EDGEKIT_MODEL_DATA_LEN,
                       static_cast<unsigned long>(arena_bytes), interpreter.arena_used_bytes(),
                       init_us, edgekit_tick_ns());
  edgekit_write(line);
  fill_inputs(interpreter);
  uint32_t start = edgekit_micros();
  if (interpreter.Invoke() != kTfLiteOk) {
    report_error("Invoke failed");
    return 1;
  }
  const uint32_t first_us = edgekit_micros() - start;
  const uint32_t crc = outputs_crc32(interpreter);
  for (int i = 0; i < warmup; ++i) {
    if (interpreter.Invoke() != kTfLiteOk) {
      report_error("Invoke failed during warm-up");
      return 1;
    }
  }
  for (int i = 0; i < runs; ++i) {
    start = edgekit_micros();
    const uint32_t tick_start = edgekit_ticks();
    const TfLiteStatus status = interpreter.Invoke();
    const uint32_t ticks = edgekit_ticks() - tick_start;
    const uint32_t us = edgekit_micros() - start;
    if (status != kTfLiteOk) {
      report_error("Invoke failed during a timed run");
      return 1;
    }
    edgekit_format_run(line, sizeof line, i, us, ticks);  // printed outside the timed region
    edgekit_write(line);
  }
  uint32_t stack_bytes = 0, heap_bytes = 0;
  if (edgekit_memory(&stack_bytes, &heap_bytes)) {
    edgekit_format_memory(line, sizeof line, stack_bytes, heap_bytes);
    edgekit_write(line);
  }
  edgekit_format_summary(line, sizeof line, warmup, runs, first_us, crc);
  edgekit_write(line);
  return 0;
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
  const char* missing = missing_op(model, resolver);
  if (missing != nullptr) {
    char message[96];  // not `line`: report_error formats into it
    snprintf(message, sizeof message, "op %s is not registered in model_ops.h", missing);
    report_error(message);
    return 1;
  }
  size_t arena_bytes = kTensorArenaSize;
  const uint32_t limit = edgekit_arena_limit();
  if (limit > 0 && limit < arena_bytes) arena_bytes = limit;
  static tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, arena_bytes);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    report_error("AllocateTensors failed: the tensor arena is too small (or a kernel failed "
                 "to prepare)");
    return 1;
  }
  const uint32_t init_us = edgekit_micros() - init_start;

#ifdef EDGEKIT_EXIT_AFTER_RUN
  int warmup = EDGEKIT_WARMUP, runs = EDGEKIT_RUNS;
  char command[64];
  if (edgekit_read_line(command, sizeof command, 0) > 0) {
    edgekit_parse_run(command, &warmup, &runs);  // e.g. a simulator's command line
  }
  return run_round(interpreter, arena_bytes, init_us, warmup, runs);
#else
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
    run_round(interpreter, arena_bytes, init_us, warmup, runs);
    if (no_console_input) return 0;  // nothing could ever start another round: no spinning
  }
#endif
}
