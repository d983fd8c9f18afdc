"""The greedy arm of `edgekit fit`, after NetAdapt (Yang et al., 2018): from the original
model, each step proposes cutting one more share of each prunable group, makes each proposal
a real trial (a short fine-tune by distillation, an in-memory deploy, the cost measured where
the budget is: instructions, latency, else MACs), keeps the one that loses the least accuracy
per unit of measured cost saved, and repeats until every budget holds.

A proposal is the kept candidate with one group's share raised to the next share of its
ladder that changes the model: a share the profile's channel tile rounds back to the same
channel count is passed over without a trial.

>>> ladder({"conv": (0.0, 0.5, 0.25)}, ("conv", "dense"))
{'conv': (0.25, 0.5), 'dense': (0.125, 0.25, 0.375, 0.5, 0.625, 0.75)}
>>> _per_unit(lost=0.02, saved=1000) < _per_unit(lost=0.02, saved=500)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from edgekit.errors import UsageError
from edgekit.fitting.budgets import ACCURACY_BUDGETS, Budgets, Verdict
from edgekit.fitting.search import FitResult, cost_metric
from edgekit.fitting.space import SHARES, SearchSpace
from edgekit.fitting.trial import Candidate, FitData, Trial, prunable_groups, run_trial
from edgekit.keras.channel_pruning import prune_channels
from edgekit.targets import TargetProfile


@dataclass(frozen=True)
class GreedyResult(FitResult):
    """A :class:`~edgekit.fitting.search.FitResult` (every trial run, proposals of every step,
    `.best` the most accurate within every budget) with the trial kept at each step, in
    order, and why the greedy stopped."""

    steps: tuple[Trial, ...] = ()
    stopped: str = ""

    @property
    def last(self) -> Trial:
        """The model the greedy reached: the last step kept, else the original."""
        return self.steps[-1] if self.steps else self.baseline


def ladder(
    shares: Sequence[float] | Mapping[str, Sequence[float]], groups: Sequence[str]
) -> dict[str, tuple[float, ...]]:
    """Each group's shares above 0, ascending: one sequence for every group, or one per group
    (as :func:`edgekit.fitting.sensitivity.narrow` gives; a group it omits gets `SHARES`)."""
    per_group = shares if isinstance(shares, Mapping) else dict.fromkeys(groups, shares)
    return {g: tuple(sorted({s for s in per_group.get(g, SHARES) if s > 0})) for g in groups}


def greedy(
    model: Any,
    profile: TargetProfile,
    budgets: Budgets,
    data: FitData,
    *,
    shares: Sequence[float] | Mapping[str, Sequence[float]] = SHARES,
    criterion: str = "l1",
    max_trials: int = 20,
    max_steps: int | None = None,
    epochs_per_trial: int = 1,
    options: Any = None,
    progress: Callable[[str], None] | None = None,
) -> GreedyResult:
    """Cut `model` for `profile` one group-step at a time until every budget holds, at most
    `max_trials` trials (the original's measurement not counted) and `max_steps` steps.

    `model` is never modified: each trial is cut from it with the candidate's shares and
    distilled from it for `epochs_per_trial` epochs. A step that `max_trials` cuts short
    keeps none of its proposals (they are still among the result's trials).
    `shares`: one ladder for every group, or one per group (:func:`ladder`)."""
    groups = prunable_groups(model)
    if not groups:
        raise UsageError(f"{getattr(model, 'name', 'model')}: no prunable channel group")
    budgets = budgets.for_target(profile)
    say = progress or (lambda message: None)
    cost = cost_metric(budgets)
    steps_of = ladder(shares, groups)
    say("measuring the original model")
    baseline, _ = run_trial(
        model, Candidate(criterion=criterion), profile, budgets, data, epochs=0, options=options
    )
    if baseline.report.metrics[cost] is None:
        raise UsageError(
            f"{profile.name}: the deploy did not measure {cost}, the cost the greedy lowers"
        )
    attempt = partial(  # a trial of one candidate, judged against the original's accuracy
        run_trial,
        model,
        profile=profile,
        budgets=budgets,
        data=data,
        epochs=epochs_per_trial,
        baseline_accuracy=baseline.accuracy,
        options=options,
    )
    current, shape, now = baseline, _shape(model), dict.fromkeys(groups, 0.0)
    ran: list[Trial] = []
    kept: list[Trial] = []
    while not (stopped := _stop(current, len(kept), max_steps)):
        proposals = []
        for group in groups:
            ratios = _next_cut(model, profile, now, group, steps_of[group], shape)
            if ratios is None:
                continue
            if len(ran) >= max_trials:
                stopped = f"{max_trials} trials run"
                break
            candidate = Candidate(tuple(ratios.items()), criterion=criterion)
            say(f"step {len(kept) + 1}, trial {len(ran) + 1}/{max_trials}: {candidate.describe()}")
            trial, smaller = attempt(candidate)
            trial = replace(trial, number=len(ran))
            ran.append(trial)
            proposals.append((trial, _shape(smaller)))
        if stopped:
            break
        choice = _choose(current, proposals, cost)
        if choice is None:
            stopped = (
                f"no proposal lowers the {cost}"
                if proposals
                else "every group is at the last share of its ladder"
            )
            break
        current, shape = choice
        now = dict(current.candidate.ratios)
        kept.append(current)
        reached = _cost(current, cost)
        say(f"step {len(kept)}: kept {current.candidate.describe()}, {cost} {reached:g}")
    if not current.ok:
        stopped += "; still over: " + ", ".join(_over(v) for v in current.verdicts if not v.ok)
    space = SearchSpace(tuple((g, (0.0, *steps_of[g])) for g in groups), criteria=(criterion,))
    return GreedyResult(
        baseline=baseline,
        trials=tuple(ran),
        cost=cost,
        budgets=budgets,
        space=space,
        steps=tuple(kept),
        stopped=stopped,
        data=data,
    )


def _stop(current: Trial, steps: int, max_steps: int | None) -> str:
    """Why the greedy stops at `current`, or "" to go on."""
    failing = {v.budget for v in current.verdicts if not v.ok}
    if not failing:
        return "every budget holds"
    if failing <= set(ACCURACY_BUDGETS):
        return "only accuracy is below its budget: cutting more will not bring it back"
    if max_steps is not None and steps >= max_steps:
        return f"{max_steps} steps taken"
    return ""


def _next_cut(
    model: Any,
    profile: TargetProfile,
    now: dict[str, float],
    group: str,
    shares: tuple[float, ...],
    shape: tuple,
) -> dict[str, float] | None:
    """The kept shares with `group` raised to its next share that changes the model (the
    channel counts depend on the share and the tile, not on the criterion: l1 tells them)."""
    for share in (s for s in shares if s > now[group]):
        ratios = {**now, group: share}
        if _shape(prune_channels(model, ratio=ratios, target=profile)) != shape:
            return ratios
    return None


def _choose(
    current: Trial, proposals: list[tuple[Trial, tuple]], cost: str
) -> tuple[Trial, tuple] | None:
    """The proposal that lowers the cost and loses the least accuracy per unit saved."""
    before = _cost(current, cost)
    ranked = [
        (_per_unit((current.accuracy or 0.0) - (t.accuracy or 0.0), before - _cost(t, cost)), i)
        for i, (t, _) in enumerate(proposals)
        if _cost(t, cost) < before
    ]
    return proposals[min(ranked)[1]] if ranked else None


def _per_unit(lost: float, saved: float) -> tuple[float, float]:
    """The ranking key: accuracy lost per unit of cost saved (a gain counts as no loss: a
    short fine-tune is noisy), then the larger saving."""
    return max(lost, 0.0) / saved, -saved


def _cost(trial: Trial, cost: str) -> float:
    measured = trial.report.metrics[cost]
    return math.inf if measured is None else float(measured)


def _shape(model: Any) -> tuple:
    return tuple(tuple(int(d) for d in w.shape) for w in model.weights)


def _over(verdict: Verdict) -> str:
    measured = "not measured" if verdict.measured is None else f"{verdict.measured:g}"
    return f"{verdict.budget} {measured} > {verdict.limit:g} ({verdict.source})"
