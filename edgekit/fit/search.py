"""The search of `edgekit fit`: Optuna's constrained multi-objective TPE over the candidates
(channels cut per group, importance criterion), each trial deployed and measured for the
target; the most accurate candidate within every budget wins.

Trials are kept in an Optuna storage (an SQLite file): run the same search again and it
continues from the stored trials; the same seed proposes the same candidates.

>>> cost_metric(Budgets(max_instructions=10**6))
'instructions_per_inference'
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit import metrics as M
from edgekit.errors import UsageError
from edgekit.fit.budgets import Budgets, Verdict, verdicts
from edgekit.fit.trial import Candidate, FitData, Trial, prunable_groups, run_trial
from edgekit.report import DeployReport
from edgekit.targets import TargetProfile

SHARES = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75)  # of a group's channels, per trial
CRITERIA = ("l1", "fpgm")  # data-free criteria: a trial needs no gradients


def cost_metric(budgets: Budgets) -> str:
    """The figure the search minimises beside accuracy: the budgeted one, else MACs."""
    if budgets.max_instructions is not None:
        return M.INSTRUCTIONS_PER_INFERENCE
    if budgets.max_latency_ms is not None:
        return M.HOST_LATENCY_MS
    return M.MACS


@dataclass(frozen=True)
class FitResult:
    """Every trial, the original model's own figures, and the winner (None: no candidate met
    every budget)."""

    baseline: Trial
    trials: tuple[Trial, ...]
    cost: str

    @property
    def best(self) -> Trial | None:
        feasible = [t for t in self.trials if t.ok]
        return max(feasible, key=lambda t: t.accuracy or 0.0, default=None)


def search(
    model: Any,
    profile: TargetProfile,
    budgets: Budgets,
    data: FitData,
    *,
    trials: int = 20,
    epochs_per_trial: int = 1,
    seed: int = 0,
    storage: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> FitResult:
    """Search `trials` candidates (counting those already in `storage`) for `profile`.

    `storage`: an SQLite file that keeps the trials, so a stopped search resumes."""
    import optuna  # its import is slow (~0.5 s): only when a search runs

    groups = prunable_groups(model)
    if not groups:
        raise UsageError(f"{getattr(model, 'name', 'model')}: no prunable channel group")
    budgets = budgets.for_target(profile)
    say = progress or (lambda message: None)
    say("measuring the original model")
    baseline, _ = run_trial(model, Candidate(), profile, budgets, data, epochs=0)
    reference = baseline.accuracy
    cost = cost_metric(budgets)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=f"edgekit-fit-{profile.name}",
        storage=None if storage is None else f"sqlite:///{Path(storage).resolve()}",
        load_if_exists=True,
        directions=["maximize", "minimize"],
        sampler=optuna.samplers.TPESampler(seed=seed),
    )

    def objective(t: Any) -> tuple[float, float]:
        candidate = Candidate(
            tuple((g, t.suggest_categorical(g, SHARES)) for g in groups),
            criterion=t.suggest_categorical("criterion", CRITERIA),
        )
        say(f"trial {t.number + 1}/{trials}: {candidate.describe()}")
        trial, _ = run_trial(
            model,
            candidate,
            profile,
            budgets,
            data,
            epochs=epochs_per_trial,
            baseline_accuracy=reference,
        )
        # the trial's figures go into the storage, so a resumed search has them
        t.set_user_attr("report", trial.report.to_dict())
        t.set_user_attr("seconds", trial.seconds)
        for verdict in trial.verdicts:
            t.set_constraint(verdict.budget, _excess(verdict))
        measured = trial.report.metrics[cost]
        return trial.accuracy or 0.0, math.inf if measured is None else float(measured)

    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    study.optimize(objective, n_trials=max(0, trials - len(finished)))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    kept = tuple(_trial(t, groups, budgets, profile, reference) for t in done[:trials])
    return FitResult(baseline, kept, cost)


def _excess(verdict: Verdict) -> float:
    """Optuna's constraint: ≤ 0 holds. Relative to the limit, so budgets weigh alike."""
    if verdict.measured is None:
        return 1.0
    return (verdict.measured - verdict.limit) / max(abs(verdict.limit), 1e-9)


def _trial(
    frozen: Any,
    groups: list[str],
    budgets: Budgets,
    profile: TargetProfile,
    reference: float | None,
) -> Trial:
    """A stored Optuna trial as a Trial (its report read back, its verdicts judged again)."""
    report = DeployReport.from_dict(frozen.user_attrs["report"], "the fit's storage")
    candidate = Candidate(
        tuple((g, frozen.params[g]) for g in groups), criterion=frozen.params["criterion"]
    )
    judged = tuple(verdicts(report, budgets, profile, reference))
    return Trial(candidate, report, judged, float(frozen.user_attrs.get("seconds", 0.0)))
