"""A cheap per-group sensitivity pass for `edgekit fit`: each prunable group cut alone, at
each share, measured in Keras without fine-tuning or deploy, to narrow the space a search or
the greedy arm explores (issue 18, point 3).

A row is one group cut by one share: the float model's accuracy on the validation labels (or,
without labels, its top-1 agreement with the original), the drop from the original's, and the
MACs it saves. :func:`narrow` keeps, per group, the shares worth searching.

>>> rows = (
...     SensitivityRow("conv", 0.25, accuracy=0.93, drop=0.01, macs_saved=8704),
...     SensitivityRow("conv", 0.5, accuracy=0.90, drop=0.04, macs_saved=17408),
...     SensitivityRow("conv", 0.75, accuracy=0.52, drop=0.42, macs_saved=26112),
... )
>>> found = Sensitivity(M.FLOAT_ACCURACY, baseline=0.94, macs=35456, rows=rows)
>>> narrow(found, (0.0, 0.25, 0.5, 0.75), max_drop=0.01)
{'conv': (0.0, 0.25, 0.5)}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit import metrics as M
from edgekit.errors import UsageError
from edgekit.fitting.trial import FitData, prunable_groups, teacher_labels
from edgekit.keras.channel_pruning import prune_channels
from edgekit.keras.channels import keras_macs
from edgekit.keras.importance import DATA_CRITERIA
from edgekit.targets import TargetProfile

SAMPLES = 500  # validation inputs per measurement: enough to rank shares, quick to predict


@dataclass(frozen=True)
class SensitivityRow:
    """One group cut alone by `share`, without fine-tuning: accuracy (or agreement), its drop
    from the original's, and the MACs saved."""

    group: str
    share: float
    accuracy: float
    drop: float
    macs_saved: int


@dataclass(frozen=True)
class Sensitivity:
    """Every (group, share) row, what `accuracy` measures (`float_accuracy` on labels, else
    `top1_agreement` with the original), the original's figure and its MACs."""

    measure: str
    baseline: float
    macs: int
    rows: tuple[SensitivityRow, ...]

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(r.group for r in self.rows))

    def of(self, group: str) -> list[SensitivityRow]:
        """The rows of one group, by share."""
        return sorted((r for r in self.rows if r.group == group), key=lambda r: r.share)


def sensitivity(
    model: Any,
    profile: TargetProfile,
    data: FitData,
    shares: Sequence[float],
    *,
    criterion: str = "l1",
    samples: int = SAMPLES,
    progress: Callable[[str], None] | None = None,
) -> Sensitivity:
    """Cut each prunable group alone by each share (the profile's channel tile respected) and
    measure the float model on up to `samples` validation inputs; `model` is not modified.

    Cost: one `prune_channels` and one `predict` per (group, share) with a share above 0."""
    groups = prunable_groups(model)
    if not groups:
        raise UsageError(f"{getattr(model, 'name', 'model')}: no prunable channel group")
    say = progress or (lambda message: None)
    x_val = data.x_val[:samples]
    original = teacher_labels(model, x_val)
    if data.y_val is not None:
        truth, measure = np.asarray(data.y_val[:samples]).reshape(original.shape), M.FLOAT_ACCURACY
    else:
        truth, measure = original, M.TOP1_AGREEMENT
    baseline = float(np.mean(original == truth))
    scoring = None
    if criterion in DATA_CRITERIA:
        labels = data.y if data.y is not None else teacher_labels(model, data.x)
        scoring = (data.x, labels)
    macs = keras_macs(model)
    rows = []
    for group in groups:
        for share in sorted(s for s in set(shares) if s > 0):
            say(f"sensitivity: {group} -{100 * share:.0f}%")
            cut = prune_channels(
                model, ratio={group: share}, criterion=criterion, data=scoring, target=profile
            )
            accuracy = float(np.mean(teacher_labels(cut, x_val) == truth))
            saved = macs - keras_macs(cut)
            rows.append(SensitivityRow(group, share, accuracy, baseline - accuracy, saved))
    return Sensitivity(measure, baseline, macs, tuple(rows))


def threshold(max_drop: float) -> float:
    """The drop without fine-tuning above which a share is not searched: max(3 × max_drop,
    0.05). Generous, since fine-tuning recovers part of what a cut loses.

    >>> threshold(0.01), threshold(0.02)
    (0.05, 0.06)
    """
    return max(3 * max_drop, 0.05)


def narrow(
    found: Sensitivity, shares: Sequence[float], max_drop: float
) -> dict[str, tuple[float, ...]]:
    """Per group, the `shares` worth searching.

    The rule: a share whose single-group drop without fine-tuning exceeds
    :func:`threshold` (max(3 × max_drop, 0.05)) is left out, and so is every larger share of
    that group (cutting more channels of a group is not expected to lose less); 0.0 is always
    kept, and so are shares the pass did not measure below the first that failed.

    >>> row = SensitivityRow("dense", 0.5, accuracy=0.5, drop=0.4, macs_saved=100)
    >>> narrow(Sensitivity(M.FLOAT_ACCURACY, 0.9, 200, (row,)), (0.25, 0.5, 0.75), 0.01)
    {'dense': (0.0, 0.25)}
    """
    limit = threshold(max_drop)
    kept = {}
    for group in found.groups:
        failed = [r.share for r in found.of(group) if r.drop > limit]
        first = min(failed, default=float("inf"))
        kept[group] = tuple(sorted({0.0} | {s for s in shares if s < first}))
    return kept
