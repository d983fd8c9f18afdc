"""Searches over quantization choices, each scored end to end on real int8 models.

- :func:`best_configuration` (`--optimize accuracy`): every calibration method, with and without
  bias correction, then the best method with learned rounding; the one whose int8 model is
  closest to the float model on the calibration inputs wins.
- :func:`mixed_precision` (`--min-sqnr DB` / `--max-agreement-drop PTS`): the fewest ops kept in
  float that reach the goal. Ops are ranked by how much keeping each alone in float gains, added
  in that order until the goal holds, then each is dropped again if the goal holds without it.

Both score at the model's probe tensor: the logits when it ends in softmax (whose 1/256 output
grid caps the SQNR of any int8 model), else the output.

Both choose on half of the calibration inputs and judge on the other half (:func:`halves`:
every other sample), so a figure they report as met was reached on samples they did not
choose on: `--optimize accuracy` keeps its winner only if it also beats the starting
configuration on the held-out half, and a goal is met only where the held-out half meets it.
The deploy then judges the goal once more on the validation data (the `quantization_goal`
check), at the tensor the report names.

>>> Goal(min_sqnr_db=30.0).met(31.0, 0.99, 1.0)
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edgekit.data import as_float32
from edgekit.errors import UsageError
from edgekit.quantization.analysis import _outputs, probe_tensor
from edgekit.tflite_model import read_tflite
from edgekit.verify import sqnr_db

SEARCH_METHODS = ("minmax", "percentile:99.999", "percentile:99.99", "mse", "kl", "block")


@dataclass(frozen=True)
class Goal:
    """What mixed precision must reach: SQNR at the probe, and/or top-1 agreement kept."""

    min_sqnr_db: float | None = None
    max_agreement_drop: float | None = None  # percentage points below the float model's 100 %

    def __post_init__(self) -> None:
        for flag, value, low, high in (
            ("--min-sqnr", self.min_sqnr_db, -100.0, 300.0),
            ("--max-agreement-drop", self.max_agreement_drop, 0.0, 100.0),
        ):
            if value is not None and not low <= value <= high:  # NaN fails both
                raise UsageError(f"{flag} must be between {low:g} and {high:g}; received {value}")

    def met(self, sqnr_db: float | None, agreement: float, float_agreement: float = 1.0) -> bool:
        sqnr = np.inf if sqnr_db is None else sqnr_db
        if self.min_sqnr_db is not None and sqnr < self.min_sqnr_db:
            return False
        drop = 100.0 * (float_agreement - agreement)
        return self.max_agreement_drop is None or drop <= self.max_agreement_drop

    def describe(self) -> str:
        parts = []
        if self.min_sqnr_db is not None:
            parts.append(f"SQNR ≥ {self.min_sqnr_db:g} dB")
        if self.max_agreement_drop is not None:
            parts.append(f"agreement drop ≤ {self.max_agreement_drop:g} points")
        return " and ".join(parts)


def halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the samples a search chooses on and of those it is judged on: every other
    sample (data sorted by class stays balanced); one sample serves as both.

    >>> [h.tolist() for h in halves(5)]
    [[0, 2, 4], [1, 3]]
    """
    if n < 2:
        return np.arange(n), np.arange(n)
    return np.arange(0, n, 2), np.arange(1, n, 2)


@dataclass
class Scored:
    """One candidate at the probe: SQNR and top-1 agreement on the half the search chooses
    on, and on the held-out half."""

    label: str
    data: bytes
    sqnr_db: float | None
    agreement: float
    held_sqnr_db: float | None = None
    held_agreement: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "sqnr_db": self.sqnr_db,
            "agreement": self.agreement,
            "held_out_sqnr_db": self.held_sqnr_db,
            "held_out_agreement": self.held_agreement,
        }


class Scorer:
    """Scores int8 models against the float model's probe tensor on fixed inputs, split into
    the half a search chooses on and the held-out half (:func:`halves`)."""

    def __init__(self, float_data: bytes, x: np.ndarray) -> None:
        self.float_model = read_tflite(float_data)
        self.probe = self.float_model.tensors[probe_tensor(self.float_model)].name
        self.x = as_float32(x)
        self.reference = _outputs(self.float_model, self.x, "builtin", self.probe)
        self.choose, self.held = halves(len(self.x))
        self.runs = 0

    def __call__(self, label: str, data: bytes) -> Scored:
        self.runs += 1
        # The candidate's own probe (its softmax's input), not the float model's tensor by
        # name: with the logits' op kept in float, that name is the float logits before the
        # QUANTIZE that feeds the softmax, which is not what the model computes with (nor
        # what verification measures).
        got = _outputs(read_tflite(data), self.x, "reference")
        (sqnr, agreement), (held_sqnr, held_agreement) = (
            self._score(got, part) for part in (self.choose, self.held)
        )
        return Scored(label, data, sqnr, agreement, held_sqnr, held_agreement)

    def _score(self, got: np.ndarray, part: np.ndarray) -> tuple[float | None, float]:
        ref = self.reference[part]
        return sqnr_db(ref, got[part]), float(np.mean(got[part].argmax(1) == ref.argmax(1)))


@dataclass(frozen=True)
class Configuration:
    """One way of making the int8 model: calibration method, bias correction, rounding, and
    cross-layer equalisation of the float model first.

    >>> Configuration("mse", True, "learned").label
    'mse, learned rounding, bias correction'
    """

    method: str
    bias_correction: bool = True
    rounding: str = "nearest"
    equalize: bool = False

    @property
    def label(self) -> str:
        """How a configuration is named in progress lines and the report."""
        parts = [self.method]
        if self.equalize:
            parts.append("equalised")
        if self.rounding != "nearest":
            parts.append(f"{self.rounding} rounding")
        if self.bias_correction:
            parts.append("bias correction")
        return ", ".join(parts)


def best_configuration(
    float_data: bytes,
    x: np.ndarray,
    quantize: Callable[[Configuration], bytes],
    progress: Callable[[str], None] | None = None,
    start: Configuration | None = None,
    learned_rounding: bool = True,
    equalization: bool = True,
) -> tuple[tuple[Configuration, Scored], list[Scored]]:
    """((winning configuration, its scores), every candidate scored).

    First every method of SEARCH_METHODS with bias correction on and off; then, with
    `learned_rounding`, the best of those methods again with learned rounding (with and
    without bias correction; `quantize` learns it on the half the search chooses on); then,
    with `equalization`, the best so far with cross-layer equalisation switched, and min/max
    ranges equalised.
    `quantize(configuration) -> int8 bytes`. The winner has the best SQNR on the half it
    chooses on; it is kept only if on the held-out half it is no worse than `start` (the
    configuration before the search, scored too when it is not among the candidates), else
    `start` wins.
    """
    scorer = Scorer(float_data, x)
    configurations = [Configuration(m, b) for m in SEARCH_METHODS for b in (True, False)]
    if start is not None and start not in configurations:
        configurations.append(start)
    scored: dict[Configuration, Scored] = {}

    def score(batch: list[Configuration], total: int) -> None:
        for configuration in batch:
            if configuration in scored:
                continue
            if progress:
                progress(f"trying {configuration.label} ({len(scored) + 1}/{total})")
            scored[configuration] = scorer(configuration.label, quantize(configuration))

    def best() -> Configuration:
        return max(scored, key=lambda c: _rank(scored[c].sqnr_db))

    total = len(configurations) + 2 * learned_rounding + 2 * equalization
    score(configurations, total)
    if learned_rounding:
        top = best()
        score([replace(top, bias_correction=b, rounding="learned") for b in (True, False)], total)
    if equalization:  # the best so far switched, and min/max equalised (equalisation changes
        top = best()  # the ranges: the method that wins without it need not win with it)
        switched = [replace(top, equalize=not top.equalize)]
        switched += [replace(top, method="minmax", equalize=True)]
        score(switched, total)
    winner = best()
    if start is not None and _rank(scored[winner].held_sqnr_db) < _rank(scored[start].held_sqnr_db):
        winner = start  # chosen on one half, worse on the other: not a real gain
    return (winner, scored[winner]), list(scored.values())


def _rank(sqnr: float | None) -> float:
    return np.inf if sqnr is None else sqnr


@dataclass
class MixedPrecision:
    """Which ops stayed in float, and the search's steps."""

    goal: Goal
    kept_in_float: list[str]
    met: bool  # on the held-out half
    final: Scored
    start: Scored
    steps: list[dict[str, Any]] = field(default_factory=list)
    search_met: bool = False  # on the half the search chose on
    aimed_sqnr_db: float | None = None  # the SQNR it searched for on its half (goal + margin)


def mixed_precision(
    float_data: bytes,
    int8_data: bytes,
    x: np.ndarray,
    goal: Goal,
    requantize: Callable[[tuple[str, ...]], bytes],
    progress: Callable[[str], None] | None = None,
    candidates: list[str] | None = None,
) -> MixedPrecision:
    """The fewest ops kept in float (by output tensor name) so the int8 model meets `goal` on
    the half of `x` the search chooses on; `met` is the goal on the held-out half.

    An SQNR goal is searched for with a margin (:func:`aim`): stopping exactly at the goal on
    the half it chose on left models just under it on data the search did not see.

    `candidates` (names `requantize` takes) replaces the default, every op's output: with
    int16 activations the names are tensors carried in int16 (:mod:`.int16`)."""
    if goal.min_sqnr_db is None and goal.max_agreement_drop is None:
        raise UsageError("mixed precision needs a goal: --min-sqnr DB or --max-agreement-drop PTS")
    scorer = Scorer(float_data, x)
    start = scorer("int8", int8_data)
    result = MixedPrecision(goal, [], False, start, start)
    if goal.met(start.sqnr_db, start.agreement) and goal.met(
        start.held_sqnr_db, start.held_agreement
    ):
        return _judged(result)
    target = aim(goal, start)
    result.aimed_sqnr_db = target.min_sqnr_db
    if candidates is None:
        quantized = read_tflite(int8_data)
        float_names = {t.name for t in scorer.float_model.tensors}
        candidates = [
            quantized.tensors[op.outputs[0]].name
            for op in quantized.operators
            if op.name not in ("QUANTIZE", "DEQUANTIZE")
            and quantized.tensors[op.outputs[0]].name in float_names
        ]
    gains = []
    for i, name in enumerate(candidates):
        if progress:
            progress(f"sensitivity {i + 1}/{len(candidates)}")
        alone = scorer(name, requantize((name,)))
        gains.append((alone.sqnr_db if alone.sqnr_db is not None else 99.0, name))
    order = [name for _, name in sorted(gains, reverse=True)]
    chosen: list[str] = []
    current = start
    for name in order:  # add in order of single-op gain until the goal holds
        chosen.append(name)
        current = scorer("+" + name, requantize(tuple(chosen)))
        result.steps.append(
            {"added": name, "sqnr_db": current.sqnr_db, "agreement": current.agreement}
        )
        if progress:
            progress(f"{len(chosen)} at higher precision: {_db(current.sqnr_db)}")
        if target.met(current.sqnr_db, current.agreement):
            break
    if target.met(current.sqnr_db, current.agreement):
        needed = target
    elif goal.met(current.sqnr_db, current.agreement):
        needed = goal  # the margin is out of reach: the fewest that meet the goal itself
    else:
        result.kept_in_float, result.final = chosen, current
        return _judged(result)
    for name in list(chosen):  # then drop what the goal does not need
        trial = [n for n in chosen if n != name]
        scored = scorer("-" + name, requantize(tuple(trial)))
        if needed.met(scored.sqnr_db, scored.agreement):
            chosen, current = trial, scored
            result.steps.append(
                {"dropped": name, "sqnr_db": scored.sqnr_db, "agreement": scored.agreement}
            )
    result.kept_in_float, result.final = chosen, current
    return _judged(result)


MARGIN_DB = 0.5  # searched for above an SQNR goal, besides the gap between the halves


def aim(goal: Goal, start: Scored) -> Goal:
    """What the search looks for on its half: an SQNR goal raised by MARGIN_DB plus how much
    the all-int8 model's SQNR on that half exceeds the held-out half's (at most 3 dB).

    >>> aim(Goal(min_sqnr_db=24.0), Scored("int8", b"", 22.0, 0.97, 21.2, 0.96)).min_sqnr_db
    25.3
    """
    if goal.min_sqnr_db is None:
        return goal
    gap = 0.0
    if start.sqnr_db is not None and start.held_sqnr_db is not None:
        gap = min(max(start.sqnr_db - start.held_sqnr_db, 0.0), 3.0)
    return Goal(round(goal.min_sqnr_db + MARGIN_DB + gap, 2), goal.max_agreement_drop)


def _judged(result: MixedPrecision) -> MixedPrecision:
    """The goal on the half the search chose on, and on the held-out half (the verdict)."""
    final, goal = result.final, result.goal
    result.search_met = goal.met(final.sqnr_db, final.agreement)
    result.met = result.search_met and goal.met(final.held_sqnr_db, final.held_agreement)
    return result


def _db(value: float | None) -> str:
    return "exact" if value is None else f"{value:.1f} dB"
