"""Low-rank factorisation: one big layer becomes two or three small ones with fewer MACs.

- `svd` (Dense, and 1×1 Conv2D): W ≈ (U_r √S_r)(√S_r V_rᵀ), two layers of rank r; the first
  has no bias and no activation, the second the original bias and activation.
- `separable` (k×k Conv2D; Jaderberg et al. 2014, Tai et al. 2016): a k×1 conv to r channels
  then a 1×k conv, from the SVD of the kernel unfolded as [(kh, cin), (kw, cout)]. Stride,
  padding and dilation split per axis, so "same" padding and strides are reproduced exactly.
- `tucker2` (k×k Conv2D; Kim et al. 2016): 1×1 conv cin→r1, k×k conv r1→r2, 1×1 conv
  r2→cout, from a Tucker-2 decomposition of the kernel along its channel modes (HOSVD refined
  by three HOOI sweeps).
- `auto`: `svd` for Dense and 1×1 convs; for k×k convs the one of `separable` and `tucker2`
  that meets the goal with fewer MACs (energy mode) or keeps more energy (budget mode).

Ranks come from `energy` (the smallest rank whose reconstruction keeps that share of
‖W‖², i.e. 1 − ‖W − Ŵ‖²/‖W‖²) or `budget` (the largest rank whose MACs are at most that share
of the layer's). A factorised layer must cost fewer MACs than the original: a layer named in
`layers=` that cannot is refused with an error; others are left as they are, with a reason in
the report. Factorising costs accuracy; `edgekit.keras.fine_tune` recovers most of it.

Keras 3 in, Keras 3 out (tf_keras in, tf_keras out): the new layers are written into the
model's config in its own Keras's format and the model is rebuilt with that Keras.

>>> smaller, report = factorize(model, energy=0.9, return_report=True)  # doctest: +SKIP
>>> fine_tune(smaller, x, y, epochs=3, teacher=model)                    # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.errors import UsageError
from edgekit.keras import surgery
from edgekit.keras._compat import tensorflow_backend
from edgekit.keras.bisect import bisect
from edgekit.keras.channels import keras_macs

METHODS = ("auto", "svd", "separable", "tucker2")


@dataclass
class Factorization:
    """One layer's candidate: the chain of layers replacing it and what it costs."""

    method: str
    ranks: tuple[int, ...]
    chain: list[dict]  # {"class_name", "config"} entries, the last one takes the layer's name
    weights: list[list[np.ndarray]]  # weights per chain entry
    macs: int
    energy: float  # 1 - |W - What|^2 / |W|^2


@dataclass
class FactorizedLayer:
    name: str
    method: str
    ranks: tuple[int, ...]
    macs_before: int
    macs_after: int
    energy: float


@dataclass
class LowRankReport:
    layers: list[FactorizedLayer] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per layer left as it was
    macs_before: int = 0
    macs_after: int = 0
    params_before: int = 0
    params_after: int = 0

    def table(self) -> str:
        lines = [
            "| layer | method | ranks | MACs before | MACs after | energy kept |",
            "|---|---|---|---|---|---|",
        ]
        for f in self.layers:
            ranks = "×".join(str(r) for r in f.ranks)
            lines.append(
                f"| {f.name} | {f.method} | {ranks} | {f.macs_before:,} | "
                f"{f.macs_after:,} | {f.energy:.3f} |"
            )
        return "\n".join(lines)


# --- the decompositions -------------------------------------------------------------------


def _energy(original: np.ndarray, approx: np.ndarray) -> float:
    total = float(np.sum(original.astype(np.float64) ** 2))
    return 1.0 - float(np.sum((original - approx) ** 2)) / max(total, 1e-30)


Pair = tuple[int, int]


def _conv(
    name: str,
    filters: int,
    kernel: Pair,
    strides: Pair,
    dilation: Pair,
    padding: str,
    bias: bool,
    activation: Any,
) -> dict:
    return {
        "class_name": "Conv2D",
        "config": {
            "name": name,
            "filters": int(filters),
            "kernel_size": list(kernel),
            "strides": list(strides),
            "padding": padding,
            "dilation_rate": list(dilation),
            "use_bias": bias,
            "activation": activation,
            "data_format": "channels_last",
            "trainable": True,
            "dtype": "float32",
        },
    }


def _dense(name: str, units: int, bias: bool, activation: Any) -> dict:
    return {
        "class_name": "Dense",
        "config": {
            "name": name,
            "units": int(units),
            "use_bias": bias,
            "activation": activation,
            "trainable": True,
            "dtype": "float32",
        },
    }


class _Layer:
    """What the decompositions need to know about one Dense or Conv2D layer."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.name = layer.name
        self.kind = type(layer).__name__
        weights = layer.get_weights()
        self.kernel = weights[0].astype(np.float64)
        self.bias = weights[1] if layer.use_bias else None
        config = layer.get_config()
        self.activation = config.get("activation", "linear")
        out = [int(d) for d in layer.output.shape[1:]]
        inp = [int(d) for d in layer.input.shape[1:]]
        self.out_positions = math.prod(out[:-1]) if len(out) > 1 else 1
        self.in_positions = math.prod(inp[:-1]) if len(inp) > 1 else 1
        if self.kind == "Conv2D":
            self.strides = tuple(layer.strides)
            self.dilation = tuple(layer.dilation_rate)
            self.padding = layer.padding
            # rows after the k×1 conv: the output height, the input width
            self.mid_positions = (out[0] * inp[1]) if len(out) == 3 else self.out_positions
        self.macs = self.out_positions * int(np.prod(self.kernel.shape))

    def last(self, weights: list[np.ndarray]) -> list[np.ndarray]:
        return weights + ([self.bias] if self.bias is not None else [])


def svd(info: _Layer, rho: float) -> Factorization:
    """Dense, or a 1×1 Conv2D, as two layers of rank ⌈rho·full rank⌉."""
    kernel = info.kernel
    matrix = kernel.reshape(-1, kernel.shape[-1])
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    rank = max(1, min(len(s), math.ceil(rho * len(s))))
    root = np.sqrt(s[:rank])
    first = (u[:, :rank] * root).astype(np.float32)
    second = (root[:, None] * vt[:rank]).astype(np.float32)
    approx = (first.astype(np.float64) @ second).reshape(kernel.shape)
    cin, cout = matrix.shape
    if info.kind == "Dense":
        chain = [
            _dense(f"{info.name}_lr", rank, False, "linear"),
            _dense(info.name, cout, info.bias is not None, info.activation),
        ]
        weights = [[first], info.last([second])]
        macs = info.out_positions * (cin * rank + rank * cout)
    else:
        chain = [
            _conv(
                f"{info.name}_lr",
                rank,
                (1, 1),
                info.strides,
                info.dilation,
                info.padding,
                False,
                "linear",
            ),
            _conv(
                info.name,
                cout,
                (1, 1),
                (1, 1),
                (1, 1),
                "valid",
                info.bias is not None,
                info.activation,
            ),
        ]
        weights = [[first.reshape(1, 1, cin, rank)], info.last([second.reshape(1, 1, rank, cout)])]
        macs = info.out_positions * (cin * rank + rank * cout)
    return Factorization("svd", (rank,), chain, weights, macs, _energy(kernel, approx))


def separable(info: _Layer, rho: float) -> Factorization:
    """A k×k Conv2D as k×1 (cin→r) then 1×k (r→cout)."""
    kernel = info.kernel
    kh, kw, cin, cout = kernel.shape
    matrix = kernel.transpose(0, 2, 1, 3).reshape(kh * cin, kw * cout)
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    rank = max(1, min(len(s), math.ceil(rho * len(s))))
    root = np.sqrt(s[:rank])
    vertical = (u[:, :rank] * root).reshape(kh, 1, cin, rank)
    horizontal = (root[:, None] * vt[:rank]).reshape(rank, kw, cout).transpose(1, 0, 2)[None]
    approx = np.einsum("icr,jro->ijco", vertical[:, 0], horizontal[0])
    (sh, sw), (dh, dw) = info.strides, info.dilation
    chain = [
        _conv(f"{info.name}_v", rank, (kh, 1), (sh, 1), (dh, 1), info.padding, False, "linear"),
        _conv(
            info.name,
            cout,
            (1, kw),
            (1, sw),
            (1, dw),
            info.padding,
            info.bias is not None,
            info.activation,
        ),
    ]
    weights = [[vertical.astype(np.float32)], info.last([horizontal.astype(np.float32)])]
    macs = info.mid_positions * kh * cin * rank + info.out_positions * kw * rank * cout
    return Factorization("separable", (rank,), chain, weights, macs, _energy(kernel, approx))


def _leading(matrix: np.ndarray, rank: int) -> np.ndarray:
    u, _, _ = np.linalg.svd(matrix, full_matrices=False)
    return u[:, :rank]


def tucker2(info: _Layer, rho: float) -> Factorization:
    """A k×k Conv2D as 1×1 (cin→r1), k×k (r1→r2), 1×1 (r2→cout)."""
    kernel = info.kernel
    kh, kw, cin, cout = kernel.shape
    r1 = max(1, min(cin, math.ceil(rho * cin)))
    r2 = max(1, min(cout, math.ceil(rho * cout)))
    unfold_in = kernel.transpose(2, 0, 1, 3).reshape(cin, -1)
    unfold_out = kernel.transpose(3, 0, 1, 2).reshape(cout, -1)
    u_in, u_out = _leading(unfold_in, r1), _leading(unfold_out, r2)
    for _ in range(3):  # HOOI: each factor given the other
        projected = np.einsum("ijco,ob->ijcb", kernel, u_out)
        u_in = _leading(projected.transpose(2, 0, 1, 3).reshape(cin, -1), r1)
        projected = np.einsum("ijco,ca->ijao", kernel, u_in)
        u_out = _leading(projected.transpose(3, 0, 1, 2).reshape(cout, -1), r2)
    core = np.einsum("ijco,ca,ob->ijab", kernel, u_in, u_out)
    approx = np.einsum("ijab,ca,ob->ijco", core, u_in, u_out)
    chain = [
        _conv(f"{info.name}_in", r1, (1, 1), (1, 1), (1, 1), "valid", False, "linear"),
        _conv(
            f"{info.name}_core",
            r2,
            (kh, kw),
            info.strides,
            info.dilation,
            info.padding,
            False,
            "linear",
        ),
        _conv(
            info.name, cout, (1, 1), (1, 1), (1, 1), "valid", info.bias is not None, info.activation
        ),
    ]
    weights = [
        [u_in.reshape(1, 1, cin, r1).astype(np.float32)],
        [core.astype(np.float32)],
        info.last([u_out.T.reshape(1, 1, r2, cout).astype(np.float32)]),
    ]
    macs = (
        info.in_positions * cin * r1
        + info.out_positions * kh * kw * r1 * r2
        + info.out_positions * r2 * cout
    )
    return Factorization("tucker2", (r1, r2), chain, weights, macs, _energy(kernel, approx))


DECOMPOSE: dict[str, Callable[[_Layer, float], Factorization]] = {
    "svd": svd,
    "separable": separable,
    "tucker2": tucker2,
}


def _methods(info: _Layer, method: str) -> list[str]:
    pointwise = info.kind == "Dense" or info.kernel.shape[:2] == (1, 1)
    if method == "auto":
        return ["svd"] if pointwise else ["separable", "tucker2"]
    if pointwise and method != "svd":
        raise UsageError(f"layer {info.name}: {method} needs a k×k Conv2D; use svd")
    if not pointwise and method == "svd":
        raise UsageError(
            f"layer {info.name}: svd is for Dense and 1×1 convs; use separable or tucker2"
        )
    return [method]


def _search(
    info: _Layer, method: str, energy: float | None, budget: float | None
) -> Factorization | None:
    """The smallest rank reaching `energy`, or the largest within `budget`·MACs (bisection on
    the rank fraction; both are monotone in it)."""
    decompose = DECOMPOSE[method]

    def ok(candidate: Factorization) -> bool:
        if energy is not None:
            return candidate.energy >= energy
        return candidate.macs <= budget * info.macs

    # energy grows with the rank (the least that keeps enough); MACs too (the most that fit)
    return bisect(lambda rho: decompose(info, rho), ok, 0.0, 1.0, 10, smallest=energy is not None)


@tensorflow_backend
def factorize(
    model: Any,
    *,
    energy: float | None = None,
    budget: float | None = None,
    layers: list[str] | None = None,
    method: str | dict[str, str] = "auto",
    return_report: bool = False,
) -> Any:
    """A new model, of `model`'s own Keras, with Dense/Conv2D layers factorised (see the
    module docstring). `model` is a Sequential or Functional model, Keras 3 or tf_keras.

    Args:
      energy: share of each kernel's energy to keep (0 < energy < 1), or
      budget: share of each layer's MACs to spend (0 < budget < 1); exactly one of the two.
      layers: names to factorise (refused with an error if one cannot save MACs); default:
        every Dense and ungrouped, undilated-or-not Conv2D with more than 1 input channel.
      method: auto | svd | separable | tucker2, or {layer name: method}.

    Returns the model, or (model, LowRankReport) with `return_report`.
    """
    if (energy is None) == (budget is None):
        raise UsageError("factorize needs exactly one of energy= or budget=")
    goal = energy if energy is not None else budget
    if not 0.0 < float(goal) < 1.0:
        raise UsageError(
            f"{'energy' if energy is not None else 'budget'} must be between 0 "
            f"and 1; received {goal}"
        )
    model = surgery.graph_model(model)
    by_name = {layer.name: layer for layer in model.layers}
    if layers is not None:
        unknown = [n for n in layers if n not in by_name]
        if unknown:
            raise UsageError(
                f"no layer named {', '.join(unknown)} in {model.name}; layers: {', '.join(by_name)}"
            )
    explicit = layers is not None
    names = (
        layers
        if explicit
        else [n for n, la in by_name.items() if type(la).__name__ in ("Dense", "Conv2D")]
    )
    report = LowRankReport(macs_before=keras_macs(model), params_before=model.count_params())
    config = surgery.model_config(model)
    weights = surgery.weights_by_layer(model)
    for name in names:
        layer = by_name[name]
        kind = type(layer).__name__
        why = ""
        if kind not in ("Dense", "Conv2D"):
            why = f"a {kind} (low-rank takes Dense and Conv2D)"
        elif kind == "Conv2D" and layer.groups != 1:
            why = f"a grouped conv ({layer.groups} groups)"
        elif len(layer.get_weights()[0].shape) < 2 or min(layer.get_weights()[0].shape[-2:]) < 2:
            why = "fewer than 2 input or output channels"
        if why:
            if explicit:
                raise UsageError(f"layer {name} cannot be factorised: {why}")
            report.skipped.append(f"{name}: {why}")
            continue
        info = _Layer(layer)
        chosen_method = method.get(name, "auto") if isinstance(method, dict) else method
        if chosen_method not in METHODS:
            raise UsageError(
                f"unknown method {chosen_method!r}; expected one of {', '.join(METHODS)}"
            )
        candidates = [
            c
            for m in _methods(info, chosen_method)
            if (c := _search(info, m, energy, budget)) is not None
        ]
        cheaper = [c for c in candidates if c.macs < info.macs]
        if not cheaper:
            best = min(candidates, key=lambda c: c.macs, default=None)
            cost = (
                f"{best.macs:,} MACs ≥ the original {info.macs:,}"
                if best
                else (f"nothing fits {budget:.0%} of its {info.macs:,} MACs")
            )
            why = f"rank for the goal costs {cost}"
            if explicit:
                raise UsageError(
                    f"layer {name}: refused, the factorised layer would cost more "
                    f"than the original ({cost})"
                )
            report.skipped.append(f"{name}: {why}")
            continue
        if energy is not None:
            best = min(cheaper, key=lambda c: c.macs)
        else:
            best = max(cheaper, key=lambda c: c.energy)
        surgery.replace_layer(config, name, best.chain, surgery.is_sequential(model))
        for entry, values in zip(best.chain, best.weights, strict=True):
            weights[entry["config"]["name"] if entry is not best.chain[-1] else name] = values
        report.layers.append(
            FactorizedLayer(name, best.method, best.ranks, info.macs, best.macs, best.energy)
        )
    if not report.layers:
        raise UsageError(
            f"{model.name}: no layer can be factorised with fewer MACs ("
            + "; ".join(report.skipped)
            + ")"
        )
    rebuilt = surgery.from_config(model, config)
    surgery.set_weights(rebuilt, weights)
    report.macs_after = keras_macs(rebuilt)
    report.params_after = rebuilt.count_params()
    return (rebuilt, report) if return_report else rebuilt
