"""One trial of `edgekit fit`: a candidate (channels cut per group, how, how it is quantized)
made from the original model, fine-tuned by distillation from it, deployed in memory for the
target, and judged against the budgets on the figures the deploy measured.

>>> Candidate((("conv1", 0.5), ("conv2", 0.25)), criterion="fpgm").describe()
'conv1 -50%, conv2 -25%, fpgm, default calibration'
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.errors import UsageError
from edgekit.fit.budgets import Budgets, Verdict, verdicts
from edgekit.keras.channel_pruning import prune_channels
from edgekit.keras.channels import ChannelGraph
from edgekit.keras.finetune import fine_tune
from edgekit.keras.importance import CRITERIA, DATA_CRITERIA
from edgekit.options import DeployOptions
from edgekit.pipeline import Deployment, deploy
from edgekit.report import DeployReport
from edgekit.targets import TargetProfile


@dataclass(frozen=True)
class Candidate:
    """What a trial changes: the share of channels cut in each prunable group (named by its
    first producing layer), the importance criterion, and the calibration method."""

    ratios: tuple[tuple[str, float], ...] = ()
    criterion: str = "l1"
    calibration_method: str = "default"

    def __post_init__(self) -> None:
        if self.criterion not in CRITERIA:
            raise UsageError(
                f"unknown criterion {self.criterion!r}; expected one of: {', '.join(CRITERIA)}"
            )
        for name, share in self.ratios:
            if not 0.0 <= share < 1.0:
                raise UsageError(f"{name}: a share of channels to cut in [0, 1); received {share}")

    def describe(self) -> str:
        cuts = ", ".join(f"{name} -{100 * share:.0f}%" for name, share in self.ratios if share)
        return (
            f"{cuts or 'no channels cut'}, {self.criterion}, {self.calibration_method} calibration"
        )


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
    report: DeployReport
    verdicts: tuple[Verdict, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

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
) -> tuple[Trial, Any]:
    """Make, fine-tune, deploy (in memory) and judge one candidate; (trial, its Keras model).

    The original `model` is never modified; it is the teacher the candidate is distilled
    from, and labels the training inputs when `data.y` is None."""
    started = time.perf_counter()
    ratios = dict(candidate.ratios)
    labels = None
    if any(ratios.values()):
        labels = data.y if data.y is not None else _teacher_labels(model, data.x)
        needs_data = candidate.criterion in DATA_CRITERIA
        smaller = prune_channels(
            model,
            ratio=ratios,
            criterion=candidate.criterion,
            data=(data.x, labels) if needs_data else None,
            target=profile,
        )
    else:
        smaller = model
    if epochs and labels is not None:  # the original itself is not fine-tuned
        fine_tune(smaller, data.x, labels, epochs=epochs, teacher=model)
    deployed = _deploy(smaller, profile, data, candidate, options)
    judged = tuple(verdicts(deployed.report, budgets, profile, baseline_accuracy))
    return Trial(candidate, deployed.report, judged, time.perf_counter() - started), smaller


def _deploy(
    model: Any,
    profile: TargetProfile,
    data: FitData,
    candidate: Candidate,
    options: DeployOptions | None,
) -> Deployment:
    validation = data.x_val if data.y_val is None else (data.x_val, data.y_val)
    base = options or DeployOptions(analysis=False)
    return deploy(
        model,
        profile,
        base,
        calibration=data.x[:500],
        validation=validation,
        calibration_method=candidate.calibration_method,
        write_bundle=False,
    )


def _teacher_labels(model: Any, x: np.ndarray) -> np.ndarray:
    """Class indices the original model gives (unlabelled data is enough: it labels it)."""
    out = np.asarray(model.predict(x, verbose=0))
    return out.argmax(-1) if out.ndim > 1 and out.shape[-1] > 1 else (out.reshape(-1) > 0.5)
