"""Activation statistics of a float model over the calibration set, and ranges from them.

:func:`collect` runs the calibrated float `.tflite` in LiteRT (in a worker process) and builds,
for every tensor the quantizer needs a range for, a 2048-bin histogram over its observed
[min, max] (two passes: the extremes, then the counts). :func:`choose_range` turns a histogram
into a range:

- `minmax`: the observed extremes (what the TFLite converter does);
- `percentile[:P]`: clip the P-th percentile on each side that has values (default 99.99);
- `mse`: the range whose 8-bit quantization error (clipping plus rounding) over the
  histogram is smallest, searched over both ends;
- `kl`: TensorRT's entropy calibration: the threshold whose quantized distribution (128 levels)
  is closest to the observed one in KL divergence;
- `block`: not from one histogram: among the ranges above, the one that moves the outputs of
  the ops reading the tensor least (:mod:`.block_ranges`).

>>> h = Histogram(lo=0.0, hi=10.0, counts=np.r_[np.full(2047, 10.0), 1.0])
>>> choose_range(h, "minmax")
(0.0, 10.0)
>>> round(choose_range(h, "percentile:99")[1], 2)
9.9
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from edgekit._fdcapture import capture_native_output
from edgekit.errors import UsageError

BINS = 2048
METHODS = ("minmax", "percentile", "mse", "kl", "block")
DEFAULT_PERCENTILE = 99.99


@dataclass
class Histogram:
    """Counts of one tensor's values in BINS equal bins over [lo, hi]."""

    lo: float
    hi: float
    counts: np.ndarray

    @property
    def centres(self) -> np.ndarray:
        width = (self.hi - self.lo) / len(self.counts)
        return self.lo + (np.arange(len(self.counts)) + 0.5) * width


@dataclass
class Statistics:
    """What :func:`collect` measured: a histogram per tensor."""

    histograms: dict[int, Histogram]
    samples: int = 0
    block: dict[int, tuple[float, float]] | None = None  # `block` ranges, once chosen


def parse_method(text: str, others: tuple[str, ...] = ()) -> tuple[str, float | None]:
    """'percentile:99.9' → ('percentile', 99.9); errors name the accepted forms, with
    `others` (names the caller handles itself, e.g. 'converter') among them."""
    name, _, arg = text.partition(":")
    if name not in METHODS:
        accepted = ", ".join(("minmax", "percentile[:P]", "mse", "kl", "block", *others))
        raise UsageError(f"unknown calibration method {text!r}; expected one of {accepted}")
    if name != "percentile":
        if arg:
            raise UsageError(f"calibration method {name} takes no argument; received {text!r}")
        return name, None
    if not arg:
        return name, DEFAULT_PERCENTILE
    try:
        value = float(arg)
    except ValueError:
        raise UsageError(
            f"percentile must be a number, e.g. percentile:99.99; received {arg!r}"
        ) from None
    if not 50.0 < value <= 100.0:
        raise UsageError(f"percentile must be in (50, 100]; received {value}")
    return name, value


# --- collection (worker-side) --------------------------------------------------------------


def binnable(lo: float, hi: float) -> bool:
    """Whether [lo, hi] splits into BINS float32 bins of non-zero width (a tensor that is
    constant up to rounding, e.g. 0.9999999 to 1.0, does not: it gets no histogram).

    >>> binnable(0.0, 1.0), binnable(1.0, 1.0), binnable(0.99999994, 1.0)
    (True, False, False)
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return False
    return (hi - lo) / BINS > 4 * float(np.spacing(np.float32(max(abs(lo), abs(hi)))))


def collect(
    model: bytes,
    feeds: list[np.ndarray],
    tensors: list[int],
    threads: int = 2,
) -> Statistics:
    """Histograms of `tensors` over inputs `feeds` (one array per model input, in its order,
    raw for the input's dtype). Runs LiteRT in this process: call it in a worker."""
    # LiteRT's native interpreter: only the worker that runs this loads it
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with capture_native_output(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = Interpreter(
            model_content=model,
            num_threads=threads,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            experimental_preserve_all_tensors=True,
        )
        interp.allocate_tensors()
    details = interp.get_input_details()
    samples = len(feeds[0])

    def run(sample: int) -> None:
        for detail, feed in zip(details, feeds, strict=True):
            interp.set_tensor(detail["index"], np.reshape(feed[sample], detail["shape"]))
        interp.invoke()

    lo = {t: np.inf for t in tensors}
    hi = {t: -np.inf for t in tensors}
    unreadable: set[int] = set()
    for sample in range(samples):  # pass 1: extremes
        run(sample)
        for t in tensors:
            try:
                values = interp.get_tensor(t)
            except ValueError:  # no data after invoke (a control-flow op's scratch tensor)
                unreadable.add(t)
                continue
            if values.size:
                lo[t] = min(lo[t], float(values.min()))
                hi[t] = max(hi[t], float(values.max()))
    tensors = [t for t in tensors if t not in unreadable]
    counts = {t: np.zeros(BINS) for t in tensors}
    binned = [t for t in tensors if binnable(lo[t], hi[t])]
    for sample in range(samples):  # pass 2: counts over the extremes
        run(sample)
        for t in binned:
            counts[t] += np.histogram(interp.get_tensor(t), BINS, (lo[t], hi[t]))[0]
    histograms = {
        t: Histogram(float(lo[t]), float(hi[t]), counts[t])
        for t in tensors
        if np.isfinite(lo[t]) and np.isfinite(hi[t])
    }
    return Statistics(histograms, samples)


# --- ranges --------------------------------------------------------------------------------


def quantization_error(h: Histogram, lo: float, hi: float, levels: int = 256) -> float:
    """Expected squared error of quantizing the histogram's values to `levels` steps over
    [lo, hi] (clipping outside, rounding inside), in value units squared, per count."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / (levels - 1)
    if scale <= 0:
        return float(np.sum(h.counts * h.centres**2))
    values = h.centres
    clipped = np.clip(values, lo, hi)
    rounded = np.round((clipped - lo) / scale) * scale + lo
    # Inside the range a bin's values are spread over it: add the uniform rounding noise.
    inside = (values >= lo) & (values <= hi)
    noise = np.where(inside, scale**2 / 12.0, 0.0)
    error = np.where(inside, noise, (values - rounded) ** 2)
    return float(np.sum(h.counts * error))


def _percentile(h: Histogram, p: float) -> tuple[float, float]:
    total = h.counts.sum()
    cdf = np.cumsum(h.counts) / total
    centres = h.centres
    hi = centres[min(len(centres) - 1, int(np.searchsorted(cdf, p / 100.0)))]
    lo = centres[int(np.searchsorted(cdf, 1.0 - p / 100.0))] if h.lo < 0 else h.lo
    return min(float(lo), 0.0) if h.lo < 0 else h.lo, max(float(hi), 0.0)


def _mse(h: Histogram) -> tuple[float, float]:
    best = (quantization_error(h, h.lo, h.hi), h.lo, h.hi)
    factors = np.linspace(0.05, 1.0, 96)
    lows = [h.lo * f for f in factors] if h.lo < 0 else [h.lo]
    for hi in (h.hi * f for f in factors) if h.hi > 0 else [h.hi]:
        for lo in lows:
            error = quantization_error(h, lo, hi)
            if error < best[0]:
                best = (error, lo, hi)
    return best[1], best[2]


def _kl_threshold(counts: np.ndarray, width: float, levels: int = 128) -> float:
    """TensorRT's entropy calibration over a histogram of |x| whose first bin starts at 0.

    The spike of exact zeros (a ReLU's inactive units) is left out: every threshold keeps it,
    and its weight would otherwise drown the tail the threshold is chosen from.
    """
    counts = counts.astype(np.float64).copy()
    counts[0] = 0.0
    n = len(counts)
    if n <= levels or counts.sum() == 0:
        return n * width
    best, best_i = np.inf, n
    total_nonzero = counts > 0
    for i in range(levels, n + 1, 2):
        reference = counts[:i].copy()
        reference[i - 1] += counts[i:].sum()  # clipped values land in the last bin
        merged = i // levels
        starts = np.arange(levels) * merged
        sums = np.add.reduceat(counts[:i], starts)
        nonzero = np.add.reduceat(total_nonzero[:i].astype(np.float64), starts)
        level = np.minimum(np.arange(i) // merged, levels - 1)
        fill = np.where(nonzero > 0, sums / np.maximum(nonzero, 1), 0.0)[level]
        candidate = np.where(total_nonzero[:i], fill, 0.0)
        p = reference / max(reference.sum(), 1e-12)
        q = candidate / max(candidate.sum(), 1e-12)
        mask = p > 0
        divergence = float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))))
        if divergence < best:
            best, best_i = divergence, i
    return best_i * width


def _kl(h: Histogram) -> tuple[float, float]:
    if h.lo >= 0:
        width = (h.hi - h.lo) / len(h.counts)
        # |x| from 0: prepend empty bins when the observed minimum is above 0
        offset = int(round(h.lo / width)) if width > 0 else 0
        counts = np.r_[np.zeros(offset), h.counts]
        return h.lo, min(h.hi, _kl_threshold(counts, width))
    # signed: a histogram of |x| on the larger side's scale
    edge = max(abs(h.lo), abs(h.hi))
    width = edge / len(h.counts)
    magnitude = np.abs(h.centres)
    counts = np.histogram(magnitude, len(h.counts), (0.0, edge), weights=h.counts)[0]
    threshold = _kl_threshold(counts, width)
    return max(h.lo, -threshold), min(h.hi, threshold)


def choose_range(h: Histogram, method: str) -> tuple[float, float]:
    """The (lo, hi) range for one tensor by `method` ("minmax", "percentile:P", "mse", "kl")."""
    name, arg = parse_method(method)
    if name == "block":
        raise ValueError("block ranges depend on the readers: see block_ranges.block_ranges")
    if h.hi <= h.lo or h.counts.sum() == 0 or name == "minmax":
        return h.lo, h.hi
    if name == "percentile":
        return _percentile(h, arg if arg is not None else DEFAULT_PERCENTILE)
    if name == "mse":
        return _mse(h)
    return _kl(h)
