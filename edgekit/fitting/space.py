"""The candidates `edgekit fit` searches: channels cut per prunable group, the importance
criterion, low-rank factorisation, the calibration method and, where the target has float
kernels, mixed precision. Each choice is an Optuna categorical parameter, so a stored trial
reads back as the same :class:`~edgekit.fitting.trial.Candidate`.

>>> space = SearchSpace((("conv1", (0.0, 0.5)),), criteria=("l1",))
>>> space.candidate({"cut/conv1": 0.5, "criterion": "l1"}).describe()
'conv1 -50%, l1, default calibration'
>>> space.size
2
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from edgekit.errors import UsageError
from edgekit.fitting.trial import Candidate
from edgekit.targets import TargetProfile

SHARES = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75)  # of a group's channels
CRITERIA = ("l1", "fpgm")  # data-free: a trial needs no gradients to choose channels
LOW_RANK = (0.75, 0.5)  # share of each factorised layer's MACs kept
CALIBRATION = ("default", "percentile", "mse")
UNIFORM = (0.25, 0.375, 0.5)  # the uniform cuts a search tries first


@dataclass(frozen=True)
class SearchSpace:
    """Per group the shares of channels a trial may cut, and the other choices."""

    groups: tuple[tuple[str, tuple[float, ...]], ...]
    criteria: tuple[str, ...] = CRITERIA
    low_rank: tuple[float | None, ...] = (None,)
    calibration: tuple[str, ...] = ("default",)
    precisions: tuple[str, ...] = ("int8",)

    @property
    def size(self) -> int:
        """How many distinct candidates the space holds."""
        choices = [len(shares) for _, shares in self.groups]
        choices += [len(self.criteria), len(self.low_rank), len(self.calibration)]
        return math.prod(choices) * len(self.precisions)

    def cheapest(self) -> list[Candidate]:
        """The cheapest candidates: every group cut most, without and with the lowest
        low-rank budget (factorising can cost more than it saves on some kernels)."""
        cut = tuple((g, max(shares)) for g, shares in self.groups)
        ranks = sorted({r for r in self.low_rank if r is not None})
        out = [Candidate(cut, criterion=self.criteria[0])]
        if ranks:
            out.append(Candidate(cut, criterion=self.criteria[0], low_rank=ranks[0]))
        return out

    def uniform(self, shares: tuple[float, ...] = UNIFORM) -> list[Candidate]:
        """Every group cut by the same share (a narrowed group: the most it allows up to
        it), no low-rank, default calibration, int8: the hand settings a search starts from.

        >>> space = SearchSpace((("a", (0.0, 0.25, 0.5)), ("b", (0.0, 0.25))))
        >>> [c.describe() for c in space.uniform()]
        ['a -25%, b -25%, l1, default calibration', 'a -50%, b -25%, l1, default calibration']
        """
        out: list[Candidate] = []
        for share in shares:
            # a group the sensitivity pass narrowed is cut by the most it allows up to `share`
            cut = tuple((g, max(s for s in allowed if s <= share)) for g, allowed in self.groups)
            if any(c.ratios == cut for c in out) or not any(s for _, s in cut):
                continue
            out.append(
                Candidate(
                    cut,
                    self.criteria[0],
                    calibration_method=self.calibration[0],
                    precision=self.precisions[0],
                )
            )
        return out

    def suggest(self, trial: Any) -> Candidate:
        """Ask an Optuna trial for a candidate."""
        params = {
            f"cut/{g}": trial.suggest_categorical(f"cut/{g}", list(shares))
            for g, shares in self.groups
        }
        for name, choices in self._choices():
            params[name] = trial.suggest_categorical(name, list(choices))
        return self.candidate(params)

    def candidate(self, params: dict[str, Any]) -> Candidate:
        """The candidate an Optuna trial's parameters name (a choice not searched: its only
        value)."""
        fixed = {name: choices[0] for name, choices in self._choices()}
        given = {**fixed, **params}
        return Candidate(
            tuple((g, float(given.get(f"cut/{g}", 0.0))) for g, _ in self.groups),
            criterion=given["criterion"],
            calibration_method=given["calibration"],
            low_rank=given["low_rank"],
            precision=given["precision"],
        )

    def params(self, candidate: Candidate) -> dict[str, Any]:
        """The Optuna parameters of `candidate` (to queue it again after a stop)."""
        params: dict[str, Any] = {f"cut/{g}": share for g, share in candidate.ratios}
        values = {
            "criterion": candidate.criterion,
            "low_rank": candidate.low_rank,
            "calibration": candidate.calibration_method,
            "precision": candidate.precision,
        }
        params.update({name: values[name] for name, _ in self._choices()})
        return params

    def _choices(self) -> list[tuple[str, tuple[Any, ...]]]:
        return [
            ("criterion", self.criteria),
            ("low_rank", self.low_rank),
            ("calibration", self.calibration),
            ("precision", self.precisions),
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (kept beside a search's storage, so a resume searches the same space)."""
        return {
            "groups": {g: list(shares) for g, shares in self.groups},
            "criteria": list(self.criteria),
            "low_rank": list(self.low_rank),
            "calibration": list(self.calibration),
            "precisions": list(self.precisions),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpace:
        """The space :meth:`to_dict` wrote.

        >>> space = SearchSpace((("c", (0.0, 0.5)),))
        >>> SearchSpace.from_dict(space.to_dict()) == space
        True
        """
        try:
            return cls(
                tuple(
                    (str(g), tuple(float(v) for v in shares))
                    for g, shares in data["groups"].items()
                ),
                tuple(data["criteria"]),
                tuple(None if r is None else float(r) for r in data["low_rank"]),
                tuple(data["calibration"]),
                tuple(data["precisions"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UsageError(f"a stored search space is not valid ({exc})") from None

    def describe(self) -> str:
        shares = sorted({s for _, choices in self.groups for s in choices})
        parts = [
            f"{len(self.groups)} prunable groups (shares {', '.join(f'{s:g}' for s in shares)})",
            f"criteria {'/'.join(self.criteria)}",
        ]
        if len(self.low_rank) > 1:
            parts.append(
                "low-rank " + "/".join("none" if r is None else f"{r:g}" for r in self.low_rank)
            )
        if len(self.calibration) > 1:
            parts.append("calibration " + "/".join(self.calibration))
        if len(self.precisions) > 1:
            parts.append("precision " + "/".join(self.precisions))
        return ", ".join(parts)


def search_space(
    model: Any,
    profile: TargetProfile,
    *,
    shares: dict[str, tuple[float, ...]] | None = None,
    low_rank: bool = True,
    quantization: bool = True,
) -> SearchSpace:
    """The space for `model` on `profile`: every prunable group (with `shares`, e.g. narrowed
    by the sensitivity pass), low-rank when the model has layers it can factorise, the
    calibration methods, and mixed precision when the profile has float kernels and is not a
    microcontroller."""
    groups = tuple(
        (name, realized(size, (shares or {}).get(name, SHARES), profile))
        for name, size in group_sizes(model)
    )
    factorisable = low_rank and _factorisable(model)
    # Float kernels are a choice where they are ordinary (Linux, Android CPUs); on an MCU
    # TFLM's float reference kernels are slow and not what a user expects from int8.
    mixed = quantization and "float32" in profile.quantization.precisions and not profile.is_mcu
    return SearchSpace(
        groups,
        low_rank=(None, *LOW_RANK) if factorisable else (None,),
        calibration=CALIBRATION if quantization else ("default",),
        precisions=("int8", "mixed") if mixed else ("int8",),
    )


def group_sizes(model: Any) -> list[tuple[str, int]]:
    """Each prunable group (by its first producing layer) and its channel count."""
    from edgekit.keras.channels import ChannelGraph

    return [(g.producers[0], int(g.size)) for g in ChannelGraph(model).prunable() if g.producers]


def realized(size: int, shares: Any, profile: TargetProfile) -> tuple[float, ...]:
    """The shares a group of `size` channels really gets after rounding to the profile's
    channel tile, once each: a share that keeps as many channels as a smaller one is no
    choice (it would describe a cut that does not happen).

    >>> from edgekit.targets import load_target
    >>> realized(16, SHARES, load_target("cortex-m4"))
    (0.0, 0.25, 0.5, 0.75)
    """
    from edgekit.keras.channel_pruning import kept_channels

    tile = profile.channel_tile
    counts = sorted({kept_channels(size, s, tile) for s in shares}, reverse=True)
    return tuple(round(1.0 - kept / size, 6) for kept in counts)


def _factorisable(model: Any) -> bool:
    """Has the model a Dense or Conv2D layer that low-rank factorisation can make cheaper?"""
    from edgekit.keras.lowrank import factorize

    try:
        _, report = factorize(model, budget=LOW_RANK[-1], return_report=True)
    except UsageError:  # no eligible layer: the choice is left out
        return False
    return bool(getattr(report, "layers", None))
