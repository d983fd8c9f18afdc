"""One trial of `edgekit fit`: a candidate (channels cut per group, how, low-rank, how it is
quantized) made from the original model, fine-tuned by distillation from it, deployed in
memory for the target, and judged against the budgets on the figures the deploy measured.

>>> Candidate((("conv1", 0.5), ("conv2", 0.25)), criterion="fpgm").describe()
'conv1 -50%, conv2 -25%, fpgm, default calibration'
>>> Candidate(low_rank=0.5, precision="mixed").describe()
'no channels cut, l1, low-rank 50% MACs, default calibration, mixed precision'
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import DeviceFailure, UsageError
from edgekit.fitting.budgets import Budgets, Verdict, verdicts
from edgekit.keras.channel_pruning import prune_channels
from edgekit.keras.channels import ChannelGraph
from edgekit.keras.finetune import fine_tune
from edgekit.keras.importance import CRITERIA, DATA_CRITERIA
from edgekit.keras.lowrank import factorize
from edgekit.options import DeployOptions
from edgekit.pipeline import Deployment, deploy
from edgekit.report import DeployReport
from edgekit.targets import TargetProfile

PRECISIONS = ("int8", "mixed")
DEVICE_RUNS = 30  # timed runs per trial on a device (`--device`)
MIXED_AGREEMENT_DROP = 0.5  # points of top-1 agreement a mixed-precision candidate may lose


@dataclass(frozen=True)
class Candidate:
    """What a trial changes: the share of channels cut in each prunable group (named by its
    first producing layer), the importance criterion, and the calibration method."""

    ratios: tuple[tuple[str, float], ...] = ()
    criterion: str = "l1"
    calibration_method: str = "default"
    low_rank: float | None = None  # factorize(budget=...): share of each layer's MACs kept
    precision: str = "int8"  # "mixed": the fewest ops kept in float within MIXED_AGREEMENT_DROP

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UsageError(
                f"unknown precision {self.precision!r}; expected one of: {', '.join(PRECISIONS)}"
            )
        if self.low_rank is not None and not 0.0 < self.low_rank < 1.0:
            raise UsageError(f"low_rank: a share of MACs in (0, 1); received {self.low_rank}")
        if self.criterion not in CRITERIA:
            raise UsageError(
                f"unknown criterion {self.criterion!r}; expected one of: {', '.join(CRITERIA)}"
            )
        for name, share in self.ratios:
            if not 0.0 <= share < 1.0:
                raise UsageError(f"{name}: a share of channels to cut in [0, 1); received {share}")

    def describe(self) -> str:
        cuts = ", ".join(f"{name} -{100 * share:g}%" for name, share in self.ratios if share)
        parts = [cuts or "no channels cut", self.criterion]
        if self.low_rank is not None:
            parts.append(f"low-rank {100 * self.low_rank:.0f}% MACs")
        parts.append(f"{self.calibration_method} calibration")
        if self.precision != "int8":
            parts.append(f"{self.precision} precision")
        return ", ".join(parts)

    @property
    def changes_weights(self) -> bool:
        """Does this candidate change the model (then it is fine-tuned)?"""
        return any(share for _, share in self.ratios) or self.low_rank is not None


@dataclass(frozen=True)
class FitData:
    """Training inputs (labels optional: the original model labels them), and the held-out
    inputs every trial is verified on (labels optional: agreement is measured then)."""

    x: np.ndarray
    y: np.ndarray | None
    x_val: np.ndarray
    y_val: np.ndarray | None = None


@dataclass(frozen=True)
class Trial:
    """A candidate, the report of its deploy, and each budget's verdict."""

    candidate: Candidate
    report: DeployReport = field(repr=False)
    verdicts: tuple[Verdict, ...] = field(repr=False)
    seconds: float
    number: int = -1  # the search's trial number (-1: the original model, measured first)

    def __repr__(self) -> str:
        accuracy = "-" if self.accuracy is None else f"{self.accuracy:.3f}"
        holds = "fits" if self.ok else "misses " + ", ".join(self.failed)
        return f"Trial({self.number + 1}: {self.candidate.describe()}; {accuracy}; {holds})"

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    @property
    def failed(self) -> list[str]:
        """The budgets this trial misses."""
        return [v.budget for v in self.verdicts if not v.ok]

    def measured(self, metric: str) -> float | None:
        """A figure of the trial's deploy (a metrics name, e.g. `macs`)."""
        value = self.report.metrics[metric]
        return None if value is None else float(value)

    @property
    def accuracy(self) -> float | None:
        m = self.report.metrics
        return m.deployed_accuracy if m.deployed_accuracy is not None else m.top1_agreement


def prunable_groups(model: Any) -> list[str]:
    """The groups a candidate may cut, by the name of their first producing layer."""
    return [g.producers[0] for g in ChannelGraph(model).prunable() if g.producers]


def run_trial(
    model: Any,
    candidate: Candidate,
    profile: TargetProfile,
    budgets: Budgets,
    data: FitData,
    *,
    epochs: int = 1,
    baseline_accuracy: float | None = None,
    options: DeployOptions | None = None,
    device: str | None = None,
) -> tuple[Trial, Any]:
    """Make, fine-tune, deploy (in memory) and judge one candidate; (trial, its Keras model).

    The original `model` is never modified; it is the teacher the candidate is distilled
    from, and labels the training inputs when `data.y` is None. `device`: an `edgekit bench`
    device URI where the deployed model's latency is measured (Linux and Android targets)."""
    started = time.perf_counter()
    ratios = {name: share for name, share in candidate.ratios if share}
    labels = None
    smaller = model
    if candidate.changes_weights:
        labels = data.y if data.y is not None else teacher_labels(model, data.x)
    if ratios:
        needs_data = candidate.criterion in DATA_CRITERIA
        smaller = prune_channels(
            model,
            ratio=ratios,
            criterion=candidate.criterion,
            data=(data.x, labels) if needs_data else None,
            target=profile,
        )
    if candidate.low_rank is not None:
        smaller = factorize(smaller, budget=candidate.low_rank)
    if epochs and labels is not None:  # the original itself is not fine-tuned
        fine_tune(smaller, data.x, labels, epochs=epochs, teacher=model)
    deployed = _deploy(smaller, profile, data, candidate, options)
    report = deployed.report
    if device is not None:
        latency = device_latency(deployed.deployed.data, profile, device)
        report = replace(report, metrics=replace(report.metrics, device_latency_ms=latency))
    judged = tuple(verdicts(report, budgets, profile, baseline_accuracy))
    return Trial(candidate, report, judged, time.perf_counter() - started), smaller


def device_latency(model: bytes, profile: TargetProfile, device: str) -> float:
    """p50 latency of a `.tflite` on `device` with the profile's harness (`edgekit bench`,
    not recorded: the fit records its trials itself)."""
    from edgekit.bench.runner import bench

    with tempfile.TemporaryDirectory(prefix="edgekit-fit-") as tmp:
        path = Path(tmp) / "trial.tflite"
        path.write_bytes(model)
        result = bench(path, profile, device, runs=DEVICE_RUNS, record=False)
    if not result.ok or result.p50_ms is None:
        raise DeviceFailure(f"benchmark on {device} failed: {result.error or 'no latency'}")
    return float(result.p50_ms)


def _deploy(
    model: Any,
    profile: TargetProfile,
    data: FitData,
    candidate: Candidate,
    options: DeployOptions | None,
) -> Deployment:
    validation = data.x_val if data.y_val is None else (data.x_val, data.y_val)
    base = options or DeployOptions(analysis=False)
    mixed = MIXED_AGREEMENT_DROP if candidate.precision == "mixed" else None
    return deploy(
        model,
        profile,
        base,
        calibration=data.x[:500],
        validation=validation,
        calibration_method=candidate.calibration_method,
        max_agreement_drop=mixed,
        write_bundle=False,
    )


def teacher_labels(model: Any, x: np.ndarray) -> np.ndarray:
    """Class indices the original model gives (unlabelled data is enough: it labels it)."""
    out = np.asarray(model.predict(x, verbose=0))
    return out.argmax(-1) if out.ndim > 1 and out.shape[-1] > 1 else (out.reshape(-1) > 0.5)
