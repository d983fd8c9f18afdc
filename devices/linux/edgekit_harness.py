#!/usr/bin/env python3
"""edgekit's Linux benchmark harness: one standalone script, run ON the device.

Needs only numpy and one TFLite interpreter; the first found of `ai_edge_litert`,
`tflite_runtime` and `tensorflow.lite` is used (Pi and Coral images carry different ones).
It prints exactly one JSON object on stdout (the result schema: docs/bench.md in edgekit's
repository) and exits 0 on success, 1 when the run failed (the JSON then has "status":
"failed" and "error").

    python3 edgekit_harness.py model.tflite --threads 4 --warmup 5 --runs 50
    python3 edgekit_harness.py model_edgetpu.tflite --delegate edgetpu
    python3 edgekit_harness.py model.tflite --delegate /path/to/libmy_delegate.so --input x.npy

Delegates: `xnnpack` (the runtime's default CPU delegate), `none` (builtin kernels only),
`edgetpu` (load_delegate('libedgetpu.so.1')) or a path to any external delegate library.
A delegate that fails to load is a failed run, never a CPU run labelled as accelerated.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import sys
import tempfile
import time

import numpy as np

HARNESS_VERSION = 1
RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tensorflow")
EDGETPU_LIBRARY = {
    "Linux": "libedgetpu.so.1",
    "Darwin": "libedgetpu.1.dylib",
    "Windows": "edgetpu.dll",
}


class HarnessError(Exception):
    """A failed run: reported in the JSON result, exit code 1."""


def find_runtime(preferred: str | None = None):
    """(name, version, Interpreter, load_delegate, OpResolverType or None)."""
    names = (preferred,) if preferred else RUNTIMES
    errors = []
    for name in names:
        try:
            if name == "ai_edge_litert":
                import ai_edge_litert
                from ai_edge_litert import interpreter as mod

                version = getattr(ai_edge_litert, "__version__", "?")
            elif name == "tflite_runtime":
                import tflite_runtime
                from tflite_runtime import interpreter as mod

                version = getattr(tflite_runtime, "__version__", "?")
            elif name == "tensorflow":
                import tensorflow as tf

                mod = tf.lite
                mod.load_delegate = tf.lite.experimental.load_delegate
                mod.OpResolverType = getattr(tf.lite.experimental, "OpResolverType", None)
                version = tf.__version__
            else:
                raise HarnessError(f"unknown runtime {name!r}; expected one of {RUNTIMES}")
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        resolver = getattr(mod, "OpResolverType", None)
        return name, version, mod.Interpreter, mod.load_delegate, resolver
    raise HarnessError("no TFLite interpreter found (" + "; ".join(errors) + ")")


class _CaptureStderr:
    """Capture native stderr (fd 2): TFLite logs delegate creation there."""

    def __enter__(self):
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._file = tempfile.TemporaryFile()
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()


def device_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                    cpu = value.strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "hostname": platform.node(),
        "python": platform.python_version(),
    }


def peak_rss_mb() -> float | None:
    try:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(kib / (1024 * 1024 if sys.platform == "darwin" else 1024), 2)
    except (ImportError, OSError):
        return None


def latency_stats(values_ms: list[float]) -> dict:
    arr = np.asarray(values_ms, dtype=np.float64)
    return {
        "min": float(arr.min()),
        "p50": float(np.percentile(arr, 50)),
        "p90": float(np.percentile(arr, 90)),
        "p99": float(np.percentile(arr, 99)),
        "mean": float(arr.mean()),
        "std": float(arr.std()),
        "max": float(arr.max()),
    }


def random_input(detail: dict, rng):
    """Random data within the input's dtype (integers) or quantized float range."""
    shape = [int(d) if d > 0 else 1 for d in detail["shape"]]
    dtype = np.dtype(detail["dtype"])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype)
    return rng.uniform(0.0, 1.0, size=shape).astype(dtype)


def load_inputs(path: str, inputs: list) -> list:
    """Arrays from `.npy` (one input) or `.npz` (one array per input: by the inputs' names
    when the keys name every input (`image` for `serving_default_image:0`), else in order),
    each checked against the model's input (`shape`, `dtype` as in get_input_details()). The
    host runs the same check before shipping anything, so bad input files never reach a device.
    """
    try:
        arrays = np.load(path, allow_pickle=False)
        if isinstance(arrays, np.ndarray):
            arrays = [arrays]
        else:
            by_key = {k: arrays[k] for k in arrays.files}
            names = [re.sub(r"^serving_default_|:\d+$", "", d.get("name", "")) for d in inputs]
            if len(by_key) == len(names) and sorted(names) == sorted(by_key):
                arrays = [by_key[name] for name in names]  # the model's order, by name
            else:
                arrays = list(by_key.values())
    except Exception as exc:  # numpy, zipfile and zlib each raise their own on damaged files
        detail = " ".join(str(exc).split())
        raise HarnessError(f"{path}: not a readable NumPy file ({detail})") from None
    if len(arrays) != len(inputs):
        raise HarnessError(f"{path}: {len(arrays)} array(s) for {len(inputs)} inputs")
    for detail, arr in zip(inputs, arrays):
        if tuple(arr.shape) != tuple(detail["shape"]) or arr.dtype != detail["dtype"]:
            want = [int(d) for d in detail["shape"]]
            raise HarnessError(
                f"{path}: expected {np.dtype(detail['dtype']).name}{want}, "
                f"received {arr.dtype.name}{list(arr.shape)}"
            )
    return arrays


def delegated_nodes(interp) -> tuple:
    """(partitions, nodes taken by the delegate, nodes in the original graph); Nones when the
    runtime cannot list its nodes.

    After a delegate is applied the interpreter lists the original nodes followed by one
    DELEGATE node per partition. A node belongs to a partition when it lies on the path
    back from the partition's outputs to the graph inputs or another partition's outputs.
    """
    try:
        ops = interp._get_ops_details()  # internal API; missing from some old tflite_runtime
    except AttributeError:
        return None, None, None
    original = [op for op in ops if op["op_name"] != "DELEGATE"]
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    if not delegates:
        return 0, 0, len(original)
    producer = {}
    for op in original:
        for t in op["outputs"]:
            producer[int(t)] = op
    stops = {int(d["index"]) for d in interp.get_input_details()}
    for d in delegates:
        stops |= {int(t) for t in d["outputs"]}
    taken = set()
    for d in delegates:
        todo = [int(t) for t in d["outputs"]]
        seen_tensors = set()
        while todo:
            tensor = todo.pop()
            if tensor in seen_tensors:
                continue
            seen_tensors.add(tensor)
            op = producer.get(tensor)
            if op is None or op["index"] in taken:
                continue
            taken.add(op["index"])
            todo.extend(int(t) for t in op["inputs"] if t >= 0 and int(t) not in stops)
    return len(delegates), len(taken), len(original)


def build_interpreter(args, runtime):
    name, _version, Interpreter, load_delegate, OpResolverType = runtime
    kwargs = {"model_path": args.model}
    if args.threads:
        kwargs["num_threads"] = args.threads
    delegate = args.delegate
    loaded = []
    if delegate not in ("xnnpack", "none"):
        library = EDGETPU_LIBRARY.get(platform.system(), "libedgetpu.so.1")
        library = library if delegate == "edgetpu" else delegate
        try:
            with _CaptureStderr() as log:
                loaded = [load_delegate(library)]
        except (ValueError, OSError, RuntimeError) as exc:
            detail = " ".join((str(exc) + " " + log.text).split())
            message = f"delegate {delegate} failed to load ({library}): {detail}"
            raise HarnessError(message) from None
        kwargs["experimental_delegates"] = loaded
    if delegate != "xnnpack" and OpResolverType is not None:
        # 'none' and external delegates: leave the default XNNPACK delegate out, so the
        # delegate's node count is its own and nothing else is credited.
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    elif delegate == "none":
        raise HarnessError(f"{name} cannot disable its default delegate (too old)")
    with _CaptureStderr() as log:
        interp = Interpreter(**kwargs)
        interp.allocate_tensors()
    return interp, log.text


def run(args) -> dict:
    result = {
        "schema": 1,
        "harness": f"edgekit-linux/{HARNESS_VERSION}",
        "status": "failed",
        "error": None,
        "device": device_info(),
        "settings": {
            "threads": args.threads,
            "warmup": args.warmup,
            "runs": args.runs,
            "delegate": args.delegate,
            "input": args.input or "random",
            "seed": args.seed,
        },
    }
    try:
        with open(args.model, "rb") as handle:
            data = handle.read()
        result["model"] = {
            "name": os.path.basename(args.model),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        runtime = find_runtime(args.runtime)
        result["runtime"] = {"name": runtime[0], "version": runtime[1]}
        started = time.perf_counter()
        interp, log = build_interpreter(args, runtime)
        init_ms = (time.perf_counter() - started) * 1e3
        partitions, nodes, total = delegated_nodes(interp)
        applied = None
        if partitions or (partitions is None and args.delegate not in ("xnnpack", "none")):
            applied = args.delegate  # unknown node count: the delegate at least loaded
        result["delegate"] = {
            "requested": args.delegate,
            "applied": applied,
            "partitions": partitions,
            "nodes": nodes,
            "total_nodes": total,
            "fallback_to_cpu": None if nodes is None else args.delegate != "none" and nodes < total,
            "log": [line for line in log.splitlines() if line.strip()][:5],
        }
        if args.delegate not in ("xnnpack", "none") and partitions == 0:
            # An edgetpu model whose custom op was not claimed: the CPU cannot run it anyway.
            raise HarnessError(f"delegate {args.delegate} loaded but took 0 of {total} nodes")
        inputs = interp.get_input_details()
        if args.input:
            feeds = load_inputs(args.input, inputs)
        else:
            rng = np.random.default_rng(args.seed)
            feeds = [random_input(detail, rng) for detail in inputs]
        for detail, arr in zip(inputs, feeds):
            interp.set_tensor(detail["index"], arr)
        started = time.perf_counter()
        interp.invoke()
        first_ms = (time.perf_counter() - started) * 1e3
        output = interp.get_tensor(interp.get_output_details()[0]["index"])
        digest = hashlib.sha256(np.ascontiguousarray(output).tobytes()).hexdigest()[:16]
        for _ in range(args.warmup):
            interp.invoke()
        latencies = []
        clock = time.perf_counter
        for _ in range(args.runs):
            started = clock()
            interp.invoke()
            latencies.append((clock() - started) * 1e3)
        result["metrics"] = {
            "init_ms": init_ms,
            "first_inference_ms": first_ms,
            "latency_ms": latency_stats(latencies),
            "peak_rss_mb": peak_rss_mb(),
            "output_digest": digest,
        }
        result["latencies_ms"] = [round(v, 6) for v in latencies]
        result["status"] = "ok"
    except HarnessError as exc:
        result["error"] = str(exc)
    except Exception as exc:  # report, never a traceback without a result
        result["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help=".tflite model")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs after the first")
    parser.add_argument("--runs", type=int, default=50, help="timed runs")
    parser.add_argument("--input", help=".npy (one input) or .npz (one array per input)")
    parser.add_argument("--seed", type=int, default=0, help="seed for random inputs")
    parser.add_argument(
        "--delegate",
        default="xnnpack",
        help="xnnpack | none | edgetpu | PATH to a delegate library",
    )
    parser.add_argument("--runtime", choices=RUNTIMES, help="force one interpreter package")
    parser.add_argument("--output", help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    result = run(args)
    text = json.dumps(result, sort_keys=True)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(text, flush=True)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
