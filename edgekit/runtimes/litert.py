"""The LiteRT interpreter (`ai_edge_litert`), with the kernels a device would use.

`kernels` picks LiteRT's op resolver:

- `"optimized"`: the default, with the XNNPACK delegate (what Linux and Android devices run);
- `"builtin"`: LiteRT's own optimised kernels without delegates;
- `"reference"`: `BUILTIN_REF`, the reference kernels. TFLM's reference kernels compute what
  these compute: on a ResNet-8 every CONV_2D and ADD matches TFLM to the bit, while XNNPACK's
  rounding differs by up to 5 steps (and differently per CPU).

Runs go through :mod:`edgekit.isolation`: a model that crashes or hangs LiteRT becomes a
RuntimeFailure, not edgekit's end.

>>> sorted(KERNELS)
['builtin', 'optimized', 'reference']
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np

from edgekit._fdcapture import capture_native_output
from edgekit.errors import RuntimeCrash, RuntimeFailure, UsageError
from edgekit.graph import op_macs
from edgekit.isolation import call, last_native_line
from edgekit.models import input_name
from edgekit.tflite_edit import single_op_model
from edgekit.tflite_model import TFLiteModel

KERNELS = {
    "optimized": "AUTO",
    "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
    "reference": "BUILTIN_REF",
}
KERNEL_LABELS = {
    "optimized": "LiteRT + XNNPACK",
    "builtin": "LiteRT builtin kernels",
    "reference": "LiteRT reference kernels",
}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__


def run(
    model: bytes,
    feeds: list[np.ndarray],
    kernels: str = "builtin",
    threads: int = 1,
    keep: tuple[int, ...] = (),
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Invoke sample by sample. Worker-side; use :func:`run_isolated`.

    `feeds` holds one array per graph input (in input order), raw (already quantized), with
    the sample axis first; each sample is reshaped to the input tensor's shape.
    Returns ({output tensor: (samples, *shape)}, {kept tensor: (samples, *shape)}).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = getattr(OpResolverType, KERNELS[kernels])
    with capture_native_output() as out, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # preserve-all-tensors is for debugging: we are
        try:
            interp = Interpreter(
                model_content=model,
                num_threads=threads,
                experimental_op_resolver_type=resolver,
                experimental_preserve_all_tensors=bool(keep),
            )
            interp.allocate_tensors()
        except Exception as exc:
            detail = _native_detail(out.text) or _one_line(exc)
            raise RuntimeFailure(f"LiteRT refused the model: {detail}") from None
    inputs = interp.get_input_details()
    outputs = interp.get_output_details()
    if len(feeds) != len(inputs):
        raise RuntimeFailure(f"the model has {len(inputs)} inputs; {len(feeds)} were given")
    results: dict[int, list[np.ndarray]] = {d["index"]: [] for d in outputs}
    kept: dict[int, list[np.ndarray]] = {idx: [] for idx in keep}
    for sample in range(len(feeds[0])):
        with capture_native_output() as out:
            try:
                for detail, feed in zip(inputs, feeds, strict=True):
                    interp.set_tensor(detail["index"], np.reshape(feed[sample], detail["shape"]))
                interp.invoke()
            except Exception as exc:
                detail = _native_detail(out.text) or _one_line(exc)
                raise RuntimeFailure(f"LiteRT failed to invoke the model: {detail}") from None
        for detail in outputs:
            results[detail["index"]].append(interp.get_tensor(detail["index"]).copy())
        for idx in keep:
            kept[idx].append(interp.get_tensor(idx).copy())
    return (
        {idx: np.stack(values) for idx, values in results.items()},
        {idx: np.stack(values) for idx, values in kept.items()},
    )


def _native_detail(text: str) -> str:
    return last_native_line(text)


def run_timeout(model: TFLiteModel, samples: int) -> float:
    """A deadline for `samples` invocations: generous for the model's MACs."""
    macs = sum(op_macs(model, op) for op in model.operators)
    return 60.0 + samples * (0.05 + macs / 2e7)


def run_isolated(
    model: TFLiteModel,
    feeds: list[np.ndarray],
    kernels: str = "builtin",
    threads: int = 1,
    keep: tuple[int, ...] = (),
    timeout: float | None = None,
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """:func:`run` in a worker process (see the module docstring)."""
    samples = len(feeds[0]) if feeds else 0
    try:
        return call(
            "edgekit.runtimes.litert:run",
            model.data,
            feeds,
            kernels,
            threads,
            tuple(keep),
            timeout=timeout if timeout is not None else run_timeout(model, samples),
            what=f"{KERNEL_LABELS[kernels]} on {model.source}",
        )
    except RuntimeCrash as exc:
        raise RuntimeCrash(f"{exc}{locate_crash(model, kernels)}") from None


def run_ops_alone(model: bytes, kernels: str, indices: list[int]) -> None:
    """Worker-side: each op of `indices` cut out alone, prepared and run on zeros. A kernel
    that aborts in Prepare or Eval kills this process; an op LiteRT refuses is skipped."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = getattr(OpResolverType, KERNELS[kernels])
    for index in indices:
        try:
            data, _ = single_op_model(model, index)
        except UsageError:  # control flow: cannot run alone
            continue
        with capture_native_output(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                interp = Interpreter(model_content=data, experimental_op_resolver_type=resolver)
                interp.allocate_tensors()
                for detail in interp.get_input_details():
                    interp.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
                interp.invoke()
            except Exception:  # refused: not the crash we are looking for
                continue


def locate_crash(model: TFLiteModel, kernels: str, timeout: float = 120.0) -> str:
    """' in op #N NAME (...)' for the first op that crashes LiteRT when run alone, found by
    bisection over worker processes (a crash ends the worker that had it); '' if no op does.

    A crash in a whole model names no op; users need to know which op, and why. The scales of
    the op's quantized tensors are given, since a degenerate scale is the usual cause.
    """

    def crashes(indices: list[int]) -> bool:
        try:
            call(
                "edgekit.runtimes.litert:run_ops_alone",
                model.data,
                kernels,
                indices,
                timeout=timeout,
                what="crash search",
            )
        except RuntimeCrash:
            return True
        except RuntimeFailure:  # a deadline: no verdict
            pass
        return False

    indices = [op.index for op in model.operators]
    if not indices or not crashes(indices):
        return ""
    lo, hi = 0, len(indices)  # the first crashing op is in indices[lo:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if crashes(indices[lo:mid]):
            hi = mid
        else:
            lo = mid
    op = model.operators[lo]
    scales = []
    for idx in (*op.inputs, *op.outputs):
        tensor = model.tensors[idx] if idx >= 0 else None
        if tensor is not None and tensor.quant is not None and not tensor.is_constant:
            scales.append(f"'{tensor.name}' scale {tensor.quant.scales[0]:.3g}")
    detail = f" ({', '.join(scales)})" if scales else ""
    return f" in op #{op.index} {op.name}{detail}"


def input_feeds(model: Any, x: Any) -> list[np.ndarray]:
    """Float inputs → one stored-dtype array per input of `model`, in its input order.

    `x` is an array (a one-input model) or {input name: array} (see :mod:`edgekit.data`).
    A converted model need not keep the source model's input order (TFLite's converter puts
    `meta` before `image`), so several inputs are matched by the names its signature gives
    them, never by position.

    >>> model = read_tflite(data)                              # doctest: +SKIP
    >>> [f.shape for f in input_feeds(model, {"image": img, "meta": m})]  # doctest: +SKIP
    [(32, 8), (32, 32, 32, 3)]
    """
    tensors = model.input_tensors()
    if not isinstance(x, dict):
        if len(tensors) != 1:
            raise UsageError(
                f"{model.source} has {len(tensors)} inputs; the data holds one array (pass one "
                "array per input, by name)"
            )
        return [quantize_input(np.asarray(x, np.float32), tensors[0])]
    if len(x) != len(tensors):
        raise UsageError(f"{model.source} has {len(tensors)} inputs; the data holds {len(x)}")
    if len(x) == 1:
        return [quantize_input(np.asarray(next(iter(x.values())), np.float32), tensors[0])]
    names = [_data_name(model, index, x) for index in model.inputs]
    if None in names:
        seen = [model.io_name(i) for i in model.inputs]
        raise UsageError(f"{model.source}: its inputs are named {seen}; the data's are {list(x)}")
    pairs = zip(names, tensors, strict=True)
    return [quantize_input(np.asarray(x[name], np.float32), tensor) for name, tensor in pairs]


def _data_name(model: Any, index: int, x: dict) -> str | None:
    """Which of the data's input names a model input carries: its signature name, else its
    tensor name as the converter writes it (`serving_default_image:0`; models edited by
    edgekit keep tensor names but may lose the signature)."""
    tensor = model.tensors[index].name
    stripped = re.sub(r":\d+$", "", re.sub(r"^serving_default_", "", tensor))
    for candidate in (model.io_name(index), tensor, stripped):
        for name in (candidate, input_name(candidate, 0, set())):
            if name in x:
                return name
    return None


def quantize_input(x: np.ndarray, tensor: Any) -> np.ndarray:
    """Float inputs → the input tensor's stored dtype, with its scale and zero point."""
    dtype = np.dtype(tensor.dtype.lower())
    if not np.issubdtype(dtype, np.integer) or tensor.quant is None:
        return x.astype(dtype)
    scale, zero_point = tensor.quant.scales[0], tensor.quant.zero_points[0]
    info = np.iinfo(dtype)
    if scale == 0:
        return np.clip(np.round(x), info.min, info.max).astype(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize_tensor(q: np.ndarray, tensor: Any) -> np.ndarray:
    """Stored values → float, with the tensor's (per-tensor) scale and zero point."""
    if not np.issubdtype(q.dtype, np.integer) or tensor.quant is None:
        return q.astype(np.float32)
    scale, zero_point = tensor.quant.scales[0], tensor.quant.zero_points[0]
    if scale == 0:
        return q.astype(np.float32)
    return ((q.astype(np.int64) - zero_point) * scale).astype(np.float32)
