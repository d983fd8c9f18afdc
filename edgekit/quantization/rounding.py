"""Learned rounding (AdaRound) of an int8 model's convolution and dense weights.

Rounding each weight to its nearest integer is the best choice for that weight alone, not for
the layer's output. AdaRound (Nagel et al., ICML 2020) learns, per weight, whether to round
down or up so that the layer's output on the calibration data moves least. edgekit does it on
the real int8 model, op by op in graph order:

1. The op's input on the calibration samples, from the float model (X) and from the int8
   model as it stands, with the ops before it already rounded (X̃, dequantized): each op
   makes up for the error that reaches it (AdaRound's asymmetric reconstruction).
2. Patches of both at up to :data:`MAX_ROWS` output positions (the op's own stride, padding
   and dilation; checked by recomputing the float op's output from them), and their Gram
   matrices. The objective ‖X Wᵀ − X̃ W̃ᵀ‖² is then a quadratic in W̃, so a step costs
   out × K², not a pass over the data.
3. Adam on V, where W̃ = s · clip(⌊W/s⌋ + h(V)) and h is AdaRound's rectified sigmoid, with
   its regulariser switched on after a warm-up and annealed (β 20 → 2) so every h ends at 0
   or 1.
4. Per output channel, the learned integers are kept only where their objective is below
   round-to-nearest's. They are written into the int8 model's weight buffer: same scales,
   same zero points, same graph.

Bias correction (:func:`edgekit.quantization.engine.correct_biases`) runs after it.

>>> from edgekit.quantization.rounding import rectified_sigmoid
>>> rectified_sigmoid(np.array([-10.0, 0.0, 10.0])).round(3).tolist()
[0.0, 0.5, 1.0]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.data import as_float32
from edgekit.quantization.activations import kept_activations
from edgekit.runtimes.litert import dequantize_tensor, input_feeds, run_isolated
from edgekit.tflite_edit import pack, unpack
from edgekit.tflite_model import Operator, TFLiteModel, read_tflite, short_name

KINDS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
MAX_ROWS = 16384  # output positions an op's Gram matrices are built from
ITERATIONS = 800
WARMUP = 0.2  # share of the iterations before the regulariser starts
LEARNING_RATE = 0.05
REGULARISATION = 0.01
BETA = (20.0, 2.0)
ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch
QMIN, QMAX = -127, 127  # TFLite's int8 weights are symmetric
GEOMETRY_TOLERANCE = 1e-3  # relative: patches × weights must give the float op's output


@dataclass
class RoundedOp:
    """One op's learned rounding: how many weights moved off nearest, and the reconstruction
    error (‖X Wᵀ − X̃ W̃ᵀ‖² relative to ‖X Wᵀ‖²) with nearest and with learned rounding."""

    name: str
    kind: str
    weights: int
    flipped: int
    error_nearest: float
    error_learned: float

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class LearnedRounding:
    """The int8 model with learned rounding, what it did per op, and what it left alone."""

    data: bytes
    ops: list[RoundedOp] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # tensor name → why
    samples: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ops": [op.to_dict() for op in self.ops],
            "skipped": self.skipped,
            "samples": self.samples,
            "seconds": self.seconds,
        }


def rectified_sigmoid(v: np.ndarray) -> np.ndarray:
    """AdaRound's h(V): a sigmoid stretched to (γ, ζ) and clipped to [0, 1]."""
    return np.clip(_sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


# --- one op's geometry ------------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    """What im2col needs of a conv/depthwise/dense op (from its options and tensor shapes)."""

    kind: str
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    same: bool = False
    out_hw: tuple[int, int] = (1, 1)

    @classmethod
    def of(cls, model: TFLiteModel, op: Operator) -> Geometry:
        if op.name == "FULLY_CONNECTED":
            return cls(op.name)
        weights = model.tensors[op.inputs[1]].shape
        out = model.tensors[op.outputs[0]].shape
        o = op.options
        return cls(
            op.name,
            (int(weights[1]), int(weights[2])),
            (int(o.get("strideH", 1)), int(o.get("strideW", 1))),
            (int(o.get("dilationHFactor", 1)), int(o.get("dilationWFactor", 1))),
            o.get("padding", 0) == 0,
            (int(out[1]), int(out[2])),
        )

    def positions(self, x: np.ndarray) -> int:
        """Output positions over all samples (the rows patches can be taken at)."""
        if self.kind == "FULLY_CONNECTED":
            return int(np.prod(x.shape[:-1])) if x.ndim > 1 else 1
        return len(x) * self.out_hw[0] * self.out_hw[1]

    def patches(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(rows, kh, kw, C) input patches at flat output positions `rows` (FC: (rows, in))."""
        if self.kind == "FULLY_CONNECTED":
            return x.reshape(-1, x.shape[-1])[rows]
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        oh, ow = self.out_hw
        _, h, w, _ = x.shape
        pads = []
        for size, out, k, s, d in ((h, oh, kh, sh, dh), (w, ow, kw, sw, dw)):
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0) if self.same else 0
            pads.append((total // 2, total - total // 2))
        padded = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
        n, rest = np.divmod(rows, oh * ow)
        i, j = np.divmod(rest, ow)
        ys = i[:, None] * sh + np.arange(kh)[None, :] * dh
        xs = j[:, None] * sw + np.arange(kw)[None, :] * dw
        return padded[n[:, None, None], ys[:, :, None], xs[:, None, :], :]


# --- the quadratic objective ------------------------------------------------------------------


@dataclass
class Objective:
    """‖X Wᵀ − X̃ W̃ᵀ‖² per output channel, from Gram matrices (shared: (K, K); depthwise:
    one (K, K) per output channel)."""

    w: np.ndarray  # (O, K) float weights
    hqq: np.ndarray
    hfq: np.ndarray
    hff: np.ndarray

    def _apply(self, a: np.ndarray, h: np.ndarray) -> np.ndarray:
        """a @ H per output channel."""
        return a @ h if h.ndim == 2 else np.einsum("ok,okl->ol", a, h)

    def target(self) -> np.ndarray:
        """‖X Wᵀ‖² per output channel."""
        return np.einsum("ok,ok->o", self._apply(self.w, self.hff), self.w)

    def error(self, wq: np.ndarray) -> np.ndarray:
        cross = np.einsum("ok,ok->o", self._apply(self.w, self.hfq), wq)
        own = np.einsum("ok,ok->o", self._apply(wq, self.hqq), wq)
        return self.target() - 2 * cross + own

    def gradient(self, wq: np.ndarray) -> np.ndarray:
        return 2 * (self._apply(wq, self.hqq) - self._apply(self.w, self.hfq))


def gram(pf: np.ndarray, pq: np.ndarray, kind: str, outputs: int) -> tuple[np.ndarray, ...]:
    """(H_qq, H_fq, H_ff) of float and int8 patches, per row."""
    rows = len(pf)
    if kind != "DEPTHWISE_CONV_2D":
        pf, pq = pf.reshape(rows, -1).astype(np.float64), pq.reshape(rows, -1).astype(np.float64)
        return pq.T @ pq / rows, pf.T @ pq / rows, pf.T @ pf / rows
    channels = pf.shape[-1]
    pf = pf.reshape(rows, -1, channels).astype(np.float64)
    pq = pq.reshape(rows, -1, channels).astype(np.float64)
    source = np.arange(outputs) // (outputs // channels)  # depth multiplier
    return tuple(
        np.einsum("rkc,rlc->ckl", a, b)[source] / rows for a, b in ((pq, pq), (pf, pq), (pf, pf))
    )


def learn(
    objective: Objective,
    scales: np.ndarray,
    nearest: np.ndarray,
    iterations: int = ITERATIONS,
) -> np.ndarray:
    """Integer weights (O, K) that lower `objective` from round-to-nearest's `nearest`.

    Per output channel the learned integers are kept only where their error is lower.
    """
    s = scales[:, None]
    ratio = objective.w / s
    base = np.floor(ratio)
    rest = np.clip(ratio - base, 0.01, 0.99)
    v = -np.log((ZETA - GAMMA) / (rest - GAMMA) - 1)  # h(v) = rest: start at the float weight
    norm = np.maximum(objective.error(nearest * s), 1e-12)[:, None]
    k = objective.w.shape[1]
    m, u = np.zeros_like(v), np.zeros_like(v)
    warm = int(WARMUP * iterations)
    for step in range(iterations):
        sig = _sigmoid(v)
        raw = sig * (ZETA - GAMMA) + GAMMA
        h = np.clip(raw, 0.0, 1.0)
        q = base + h
        inside = ((raw > 0) & (raw < 1)) * (ZETA - GAMMA) * sig * (1 - sig)
        grad = objective.gradient(s * np.clip(q, QMIN, QMAX)) * s / norm
        grad *= inside * ((q > QMIN) & (q < QMAX))
        if step >= warm:
            beta = BETA[1] + (BETA[0] - BETA[1]) * (1 - (step - warm) / max(iterations - warm, 1))
            centred = 2 * h - 1
            reg = -2 * beta * np.abs(centred) ** (beta - 1) * np.sign(centred)
            grad += REGULARISATION / k * reg * inside
        m = 0.9 * m + 0.1 * grad
        u = 0.999 * u + 0.001 * grad * grad
        mh, uh = m / (1 - 0.9 ** (step + 1)), u / (1 - 0.999 ** (step + 1))
        v -= LEARNING_RATE * mh / (np.sqrt(uh) + 1e-8)
    learned = np.clip(base + (v >= 0), QMIN, QMAX)
    better = objective.error(learned * s) < objective.error(nearest * s)
    return np.where(better[:, None], learned, nearest)


# --- the model --------------------------------------------------------------------------------


@dataclass
class _Target:
    """An int8 op to round, with its float twin."""

    op: Operator
    twin: Operator
    name: str
    geometry: Geometry


def _targets(model: TFLiteModel, float_model: TFLiteModel) -> tuple[list[_Target], dict]:
    """Ops whose weights can be learned, and why the others cannot."""
    produced = {o: op for op in float_model.operators for o in op.outputs}
    names = {t.name: t.index for t in float_model.tensors}
    targets, skipped = [], {}
    for op in model.operators:
        if op.name not in KINDS:
            continue
        name = model.tensors[op.outputs[0]].name
        weights = model.tensors[op.inputs[1]]
        twin = produced.get(names.get(name, -1))
        if weights.dtype != "INT8" or weights.quant is None or model.weights(weights.index) is None:
            skipped[name] = "weights are not constant int8"
        elif any(z != 0 for z in weights.quant.zero_points):
            skipped[name] = "weights have a zero point"
        elif twin is None or twin.name != op.name:
            skipped[name] = "no float op of the same name"
        elif model.tensors[op.inputs[0]].quant is None:
            skipped[name] = "its input is not int8"
        elif float_model.weights(twin.inputs[1]) is None:
            skipped[name] = "the float op's weights are not constant"
        else:
            targets.append(_Target(op, twin, name, Geometry.of(model, op)))
    return targets, skipped


def as_matrix(weights: np.ndarray, kind: str) -> np.ndarray:
    """Weights as (out channels, K) in patch order."""
    if kind == "DEPTHWISE_CONV_2D":  # (1, kh, kw, O)
        return weights.reshape(-1, weights.shape[-1]).T
    return weights.reshape(weights.shape[0], -1)


def _from_matrix(matrix: np.ndarray, shape: tuple[int, ...], kind: str) -> np.ndarray:
    if kind == "DEPTHWISE_CONV_2D":
        return matrix.T.reshape(shape)
    return matrix.reshape(shape)


def linear_output(kind: str, patches: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(rows, out channels): the op's output before bias and activation, from its patches and
    its weights as :func:`as_matrix` gives them."""
    rows = len(patches)
    if kind == "DEPTHWISE_CONV_2D":
        p = patches.reshape(rows, -1, patches.shape[-1])
        source = np.arange(len(w)) // (len(w) // p.shape[-1])
        return np.einsum("rko,ok->ro", p[:, :, source], w)
    return patches.reshape(rows, -1) @ w.T


def apply_activation(op: Operator, y: np.ndarray) -> np.ndarray:
    """The op's fused activation applied to `y` (RELU, RELU6, RELU_N1_TO_1; others pass)."""
    fused = op.fused_activation
    if fused == "RELU":
        return np.maximum(y, 0)
    if fused == "RELU6":
        return np.clip(y, 0, 6)
    if fused == "RELU_N1_TO_1":
        return np.clip(y, -1, 1)
    return y


def learn_rounding(
    quantized: bytes,
    float_model: TFLiteModel,
    x: Any,
    *,
    iterations: int = ITERATIONS,
    max_rows: int = MAX_ROWS,
    progress: Callable[[str], None] | None = None,
    seed: int = 0,
) -> LearnedRounding:
    """`quantized` (made from `float_model`) with its conv, depthwise and dense weights
    rounded to lower each op's output error on the calibration inputs `x`."""
    started = time.perf_counter()
    x = as_float32(x)
    model = read_tflite(quantized, "int8.tflite")
    targets, skipped = _targets(model, float_model)
    result = LearnedRounding(quantized, skipped=skipped, samples=len(x))
    if not targets:
        return result
    wanted = [i for t in targets for i in (t.twin.inputs[0], t.twin.outputs[0])]
    activations = kept_activations(float_model, x, wanted)
    feeds = input_feeds(model, x)
    edited = unpack(quantized)
    rng = np.random.default_rng(seed)
    for number, target in enumerate(targets, 1):
        if progress:
            progress(f"learned rounding {number}/{len(targets)}: {short_name(target.name)}")
        op, geometry = target.op, target.geometry
        current = read_tflite(pack(edited)) if number > 1 else model
        _, got = run_isolated(current, feeds, "builtin", 2, keep=(op.inputs[0],))
        xq = per_sample(
            dequantize_tensor(got[op.inputs[0]], current.tensors[op.inputs[0]]),
            model.tensors[op.inputs[0]].shape,
        )
        xf = per_sample(activations[target.twin.inputs[0]], model.tensors[op.inputs[0]].shape)
        if xq.shape != xf.shape:
            skipped[target.name] = f"input shapes differ ({xq.shape} and {xf.shape})"
            continue
        total = geometry.positions(xf)
        rows = np.sort(rng.choice(total, min(total, max_rows), replace=False))
        pf, pq = geometry.patches(xf, rows), geometry.patches(xq, rows)
        w = as_matrix(float_model.weights(target.twin.inputs[1]).astype(np.float64), op.name)
        if pf.reshape(len(rows), -1).shape[1] != w.shape[1] and op.name != "DEPTHWISE_CONV_2D":
            skipped[target.name] = "grouped or reshaped weights"
            continue
        why = _geometry_mismatch(target, float_model, pf, w, activations, rows)
        if why:
            skipped[target.name] = why
            continue
        weights = model.tensors[op.inputs[1]]
        stored = model.weights(weights.index)
        nearest = as_matrix(stored.astype(np.float64), op.name)
        scales = np.broadcast_to(np.asarray(weights.quant.scales, np.float64), (len(w),))
        objective = Objective(w, *gram(pf, pq, op.name, len(w)))
        learned = learn(objective, scales.copy(), nearest, iterations)
        target_norm = np.maximum(objective.target().sum(), 1e-30)
        result.ops.append(
            RoundedOp(
                target.name,
                op.name,
                int(w.size),
                int(np.sum(learned != nearest)),
                float(objective.error(nearest * scales[:, None]).sum() / target_norm),
                float(objective.error(learned * scales[:, None]).sum() / target_norm),
            )
        )
        values = _from_matrix(learned, stored.shape, op.name).astype(np.int8)
        buffer = edited.subgraphs[0].tensors[weights.index].buffer
        edited.buffers[buffer].data = values.reshape(-1).view(np.uint8)
    result.data = pack(edited)
    result.seconds = time.perf_counter() - started
    return result


def per_sample(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(samples, *shape without its batch axis of 1)."""
    if len(shape) > 1 and shape[0] == 1:
        return values.reshape(len(values), *shape[1:])
    return values.reshape(len(values), *shape)


def _geometry_mismatch(
    target: _Target,
    float_model: TFLiteModel,
    patches: np.ndarray,
    w: np.ndarray,
    activations: dict[int, np.ndarray],
    rows: np.ndarray,
) -> str | None:
    """Why the patches do not reproduce the float op's output (None when they do)."""
    twin = target.twin
    bias = np.zeros(len(w))
    if len(twin.inputs) > 2 and twin.inputs[2] >= 0:
        values = float_model.weights(twin.inputs[2])
        if values is None:
            return "the float op's bias is not constant"
        bias = values.astype(np.float64)
    check = rows[: min(len(rows), 256)]
    y = linear_output(target.op.name, patches[: len(check)].astype(np.float64), w)
    y = apply_activation(twin, y + bias)
    expected = activations[twin.outputs[0]].reshape(-1, len(w))[check]
    scale = max(float(np.max(np.abs(expected))), 1e-12)
    error = float(np.max(np.abs(y - expected))) / scale
    if error > GEOMETRY_TOLERANCE:
        return f"patches do not reproduce the float output ({error:.1e})"
    return None
