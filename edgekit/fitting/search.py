"""The search of `edgekit fit`: Optuna's constrained multi-objective TPE over the candidates of
a :class:`~edgekit.fitting.space.SearchSpace`, each trial deployed and measured for the target;
the most accurate candidate within every budget wins.

The search asks Optuna for as many candidates as its runner has slots (this process, local
worker processes, a Ray cluster), runs them at once, and tells Optuna the outcomes in trial
order: the same search whichever runs it. Trials are kept in an Optuna storage (an SQLite
file): run the same search again and it continues from the stored trials (a trial a stop
interrupted runs again first); the same seed proposes the same candidates. The first trials
are the space's uniform candidates (every group cut alike, what a hand setting does); a
candidate already measured is not run again: its stored figures are reused.

Accuracy is the first objective and the budgeted cost the second (a cost within its budget
counts as the budget: :func:`objective_cost`); the resource budgets (RAM,
flash, instructions, latency, Edge TPU placement) are Optuna's constraints, each as its
excess over the limit relative to the limit. The accuracy budget is not a constraint: it
would rank every candidate within the cost budget but short of the accuracy below a cheap
accurate one that misses the cost budget, and steer the search away from the candidates
the budget is about. Among those that meet the resource budgets TPE looks for the most
accurate; whether that is within the accuracy budget is the verdict on the trial.

>>> cost_metric(Budgets(max_instructions=10**6))
'instructions_per_inference'
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit import metrics as M
from edgekit.errors import UsageError
from edgekit.fitting.budgets import (
    ACCURACY_BUDGETS,
    EDGETPU_OPS_ON_CPU,
    Budgets,
    Verdict,
    verdicts,
)
from edgekit.fitting.jobs import FitContext, TrialOutcome
from edgekit.fitting.runners import InProcessRunner, Runner
from edgekit.fitting.space import SearchSpace, search_space
from edgekit.fitting.trial import Candidate, FitData, Trial, run_trial
from edgekit.report import DeployReport
from edgekit.targets import TargetProfile

STUDY = "edgekit-fit"
MAX_ASKS = 5  # candidates asked per trial at most (repeats are reused, not run)
STARTUP_TRIALS = 6  # random candidates before TPE models the trials (after the uniform ones)
# Budgets a cheaper candidate can meet (the early end checks them on the cheapest ones).
COST_BUDGETS = (
    "max_ram_bytes",
    "max_flash_bytes",
    "max_instructions",
    "max_latency_ms",
    EDGETPU_OPS_ON_CPU,
)


def cost_metric(budgets: Budgets) -> str:
    """The figure the search minimises beside accuracy: the budgeted one, else MACs."""
    if budgets.max_instructions is not None:
        return M.INSTRUCTIONS_PER_INFERENCE
    if budgets.max_latency_ms is not None:
        return M.HOST_LATENCY_MS
    return M.MACS


def cost_limit(budgets: Budgets) -> float | None:
    """The budget on the figure :func:`cost_metric` names (None: MACs, which have none)."""
    if budgets.max_instructions is not None:
        return float(budgets.max_instructions)
    if budgets.max_latency_ms is not None:
        return float(budgets.max_latency_ms)
    return None


def objective_cost(measured: float | None, limit: float | None) -> float:
    """The cost the search minimises: below its budget a cost counts as the budget, since
    within it the search is for the most accurate candidate (otherwise the cheap and
    inaccurate ones are on the front, and the sampler keeps proposing cheaper ones).

    >>> objective_cost(7.9e6, 1.5e7), objective_cost(1.7e7, 1.5e7), objective_cost(5.0, None)
    (15000000.0, 17000000.0, 5.0)
    """
    if measured is None:
        return math.inf
    return measured if limit is None else max(measured, limit)


@dataclass(frozen=True)
class Failure:
    """A trial that did not produce a model (its error, one line)."""

    number: int
    candidate: Candidate
    error: str


@dataclass(frozen=True)
class FitResult:
    """Every trial, the original model's own figures, and the winner (None: no candidate met
    every budget). `models` maps a trial's number to its fitted `.keras` file, when the
    search kept them."""

    baseline: Trial
    trials: tuple[Trial, ...]
    cost: str
    budgets: Budgets
    space: SearchSpace
    seed: int = 0
    where: str = "this process"
    seconds: float = 0.0
    failures: tuple[Failure, ...] = ()
    models: dict[int, Path] = field(default_factory=dict)
    data: FitData | None = field(default=None, repr=False, compare=False)
    fit_id: str = ""
    directory: Path | None = None  # edgekit.fit's folder (storage, trials, bundle)
    chosen: Path | None = None  # the chosen model's `.keras`
    bundle: Path | None = None  # its deployed bundle
    chart: Path | None = None  # pareto.png

    def to_dict(self) -> dict[str, Any]:
        """The search as JSON-ready data (`fit.json`, `edgekit fit --json`)."""
        best = self.best
        return {
            "fit_id": self.fit_id,
            "cost": self.cost,
            "budgets": {k: v for k, v in asdict(self.budgets).items() if v is not None},
            "space": self.space.describe(),
            "seed": self.seed,
            "where": self.where,
            "seconds": round(self.seconds, 1),
            "original": _row(self.baseline, self.cost),
            "trials": [_row(t, self.cost) for t in self.trials],
            "failures": [
                {"trial": f.number + 1, "candidate": f.candidate.describe(), "error": f.error}
                for f in self.failures
            ],
            "pareto": [t.number + 1 for t in self.pareto()],
            "best": None if best is None else best.number + 1,
            "closest": None
            if best is not None or self.closest() is None
            else self.closest().number + 1,
            "model": self.baseline.report.model.name,
            "target": self.baseline.report.target.name,
            "directory": None if self.directory is None else str(self.directory),
            "chosen": None if self.chosen is None else str(self.chosen),
            "bundle": None if self.bundle is None else str(self.bundle),
            "chart": None if self.chart is None else str(self.chart),
        }

    @property
    def best(self) -> Trial | None:
        feasible = [t for t in self.trials if t.ok]
        return max(feasible, key=lambda t: (t.accuracy or 0.0, -self._cost(t)), default=None)

    def _cost(self, trial: Trial) -> float:
        value = trial.measured(self.cost)
        return math.inf if value is None else value

    def pareto(self) -> list[Trial]:
        """The trials no other trial beats on both accuracy and cost, cheapest first."""
        front = []
        for t in self.trials:
            a, c = t.accuracy or 0.0, self._cost(t)
            beaten = any(
                (o.accuracy or 0.0) >= a
                and self._cost(o) <= c
                and ((o.accuracy or 0.0) > a or self._cost(o) < c)
                for o in self.trials
            )
            if not beaten:
                front.append(t)
        return sorted(front, key=self._cost)

    def closest(self) -> Trial | None:
        """With no winner, the nearest miss: the most accurate trial within every resource
        budget (only accuracy short), else the trial with the smallest cost reached."""
        within = [
            t for t in self.trials if all(v.ok or v.budget in ACCURACY_BUDGETS for v in t.verdicts)
        ]
        if within:
            return max(within, key=lambda t: (t.accuracy or 0.0, -self._cost(t)))
        return min(self.trials, key=self._cost, default=None)


def _row(trial: Trial, cost: str) -> dict[str, Any]:
    m = trial.report.metrics
    return {
        "trial": trial.number + 1,
        "candidate": trial.candidate.describe(),
        "accuracy": trial.accuracy,
        cost: trial.measured(cost),
        M.MACS: m.macs,
        "ram": ram_bytes(trial),
        M.MODEL_BYTES: m.model_bytes,
        "ok": trial.ok,
        "failed_budgets": trial.failed,
        "seconds": round(trial.seconds, 1),
    }


def ram_bytes(trial: Trial) -> float | None:
    """The RAM figure the RAM budget is judged on (the verdict's measured value)."""
    for verdict in trial.verdicts:
        if verdict.budget == "max_ram_bytes":
            return verdict.measured
    return None


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
    space: SearchSpace | None = None,
    runner: Callable[[FitContext, Any], Runner] | None = None,
    options: Any = None,
    models_dir: str | Path | None = None,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
    on_trial: Callable[[Trial | Failure, FitResult], None] | None = None,
) -> FitResult:
    """Search `trials` candidates (counting those already in `storage`) for `profile`.

    Args:
      storage: an SQLite file that keeps the trials, so a stopped search resumes.
      space: the candidates (default: :func:`~edgekit.fitting.space.search_space`).
      runner: makes the runner from the context and the live model (default: this process);
        see :mod:`edgekit.fitting.runners`.
      options: DeployOptions every trial deploys with (e.g. `tflm_dir` for the firmware).
      models_dir: keep each trial's fitted model there as `trial-NNN.keras`.
      device: an `edgekit bench` device URI where each trial's latency is measured.
      on_trial: called after each trial (or failure) with the result so far.
    """
    import optuna  # its import is slow (~0.5 s): only when a search runs

    from edgekit.fitting.jobs import keras_bytes
    from edgekit.options import DeployOptions

    started = time.perf_counter()
    space = space or search_space(model, profile)
    if not space.groups:
        raise UsageError(f"{getattr(model, 'name', 'model')}: no prunable channel group")
    budgets = budgets.for_target(profile)
    options = options or DeployOptions(analysis=False)
    say = progress or (lambda message: None)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=STUDY,
        storage=None if storage is None else f"sqlite:///{Path(storage).resolve()}",
        load_if_exists=True,
        directions=["maximize", "minimize"],
    )
    baseline = _baseline(study, model, profile, budgets, data, options, device, say)
    reference = baseline.accuracy
    if reference is None and (budgets.max_drop is not None or budgets.min_accuracy is not None):
        raise UsageError(
            "the original model's accuracy cannot be measured on these inputs (its top "
            "classes tie on every validation input, as an untrained model's do): an accuracy "
            "budget needs labelled validation data (--validation FILE.npz with y)"
        )
    cost = cost_metric(budgets)
    stored = len(study.trials)
    # A resumed search draws on from where it stopped, not from the seed's first draws again.
    study.sampler = optuna.samplers.TPESampler(
        seed=seed + stored, constant_liar=True, n_startup_trials=STARTUP_TRIALS
    )
    _requeue_interrupted(study, optuna)
    if not stored:
        for candidate in space.uniform():  # the hand settings first: TPE refines from them
            study.enqueue_trial(space.params(candidate))
    context = FitContext(
        keras_bytes(model),
        getattr(model, "name", "model") or "model",
        profile,
        budgets,
        data,
        options,
        epochs_per_trial,
        reference,
        device=device,
    )
    folder = Path(models_dir) if models_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    state = _State(baseline, cost, budgets, space, seed, folder, data)
    state.load(study, profile, reference, optuna)
    make = runner or (lambda ctx, live: InProcessRunner(ctx, live))
    pool = make(context, model)
    state.where = pool.where
    asks = 0
    try:
        while (left := trials - state.complete(study, optuna)) > 0:
            if asks >= MAX_ASKS * trials:
                say(f"the sampler keeps proposing measured candidates: stopping at {trials - left}")
                break
            asked = [study.ask() for _ in range(min(left, pool.slots))]
            asks += len(asked)
            batch = [(t, space.suggest(t)) for t in asked]
            first: dict[Candidate, int] = {}  # a candidate asked twice in a batch runs once
            for t, candidate in batch:
                if state.measured(candidate) is None and candidate not in first:
                    first[candidate] = t.number
                    say(f"trial {t.number + 1}/{trials}: {candidate.describe()}")
            outcomes = {o.number: o for o in pool.run([(n, c) for c, n in first.items()])}
            for t, candidate in batch:
                outcome = state.measured(candidate) or outcomes[first[candidate]]
                if not state.tell(study, t, candidate, outcome, profile, reference, optuna):
                    say(f"proposed again: trial {outcome.number + 1}'s candidate (reused)")
                elif on_trial is not None:
                    on_trial(state.last, state.result(time.perf_counter() - started))
    finally:
        pool.close()
    return state.result(time.perf_counter() - started)


def _baseline(
    study: Any,
    model: Any,
    profile: TargetProfile,
    budgets: Budgets,
    data: FitData,
    options: Any,
    device: str | None,
    say: Callable[[str], None],
) -> Trial:
    """The original model's figures: measured once, kept in the storage for a resume."""
    stored = study.user_attrs.get("baseline")
    if stored is not None:
        report = DeployReport.from_dict(stored, "the fit's storage")
    else:
        say("measuring the original model")
        trial, _ = run_trial(
            model, Candidate(), profile, budgets, data, epochs=0, options=options, device=device
        )
        report = trial.report
        study.set_user_attr("baseline", report.to_dict())
    own = Trial(Candidate(), report, (), 0.0).accuracy  # its drop is 0 by definition
    return Trial(Candidate(), report, tuple(verdicts(report, budgets, profile, own)), 0.0)


def _requeue_interrupted(study: Any, optuna: Any) -> None:
    """Trials a stop left RUNNING are failed, and their candidates queued to run first."""
    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
        # (not skip_if_exists: Optuna counts the trial just failed as existing)
        study.enqueue_trial(frozen.params)


def _excess(verdict: Verdict) -> float:
    """Optuna's constraint: ≤ 0 holds. Relative to the limit, so budgets weigh alike."""
    if verdict.measured is None:
        return 1.0
    return (verdict.measured - verdict.limit) / max(abs(verdict.limit), 1e-9)


class _State:
    """The trials so far (from the storage and this run), and the fitted models' files."""

    def __init__(
        self,
        baseline: Trial,
        cost: str,
        budgets: Budgets,
        space: SearchSpace,
        seed: int,
        folder: Path | None,
        data: FitData,
    ) -> None:
        self.baseline, self.cost, self.budgets, self.space = baseline, cost, budgets, space
        self.seed, self.folder, self.data = seed, folder, data
        self.trials: list[Trial] = []
        self.failures: list[Failure] = []
        self.models: dict[int, Path] = {}
        self.where = "this process"
        self.last: Trial | Failure | None = None

    def complete(self, study: Any, optuna: Any) -> int:
        """Trials that ended: measured, or failed with an error (a trial a stop interrupted
        does not count: it runs again), so a search whose every trial fails still ends. A
        candidate proposed again is not a trial: its stored figures are reused."""
        state = optuna.trial.TrialState
        return sum(
            (t.state == state.COMPLETE and "same_as" not in t.user_attrs)
            or (t.state == state.FAIL and "error" in t.user_attrs)
            for t in study.get_trials(deepcopy=False)
        )

    def load(self, study: Any, profile: TargetProfile, reference: Any, optuna: Any) -> None:
        failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
        for frozen in failed:
            if "error" in frozen.user_attrs:
                candidate = self.space.candidate(frozen.params)
                error = str(frozen.user_attrs["error"])
                self.failures.append(Failure(frozen.number, candidate, error))
        for frozen in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
            if "same_as" in frozen.user_attrs:  # a repeat: Optuna's, not a trial of ours
                continue
            report = DeployReport.from_dict(frozen.user_attrs["report"], "the fit's storage")
            candidate = self.space.candidate(frozen.params)
            judged = tuple(verdicts(report, self.budgets, profile, reference))
            seconds = float(frozen.user_attrs.get("seconds", 0.0))
            self.trials.append(Trial(candidate, report, judged, seconds, frozen.number))
            self._keep_model(frozen.number, None)

    def measured(self, candidate: Candidate) -> TrialOutcome | None:
        """A stored outcome for the same candidate (its figures are reused, not remeasured)."""
        for t in self.trials:
            if t.candidate == candidate:
                return TrialOutcome(t.number, t.report.to_dict(), 0.0, None)
        return None

    def tell(
        self,
        study: Any,
        asked: Any,
        candidate: Candidate,
        outcome: TrialOutcome,
        profile: TargetProfile,
        reference: Any,
        optuna: Any,
    ) -> bool:
        """Tell Optuna the outcome; False when it repeats a measured candidate (Optuna gets
        its figures again, but it is not a trial of the search's own)."""
        if not outcome.ok:
            asked.set_user_attr("error", outcome.error)
            study.tell(asked, state=optuna.trial.TrialState.FAIL)
            self.last = Failure(asked.number, candidate, outcome.error or "no report")
            self.failures.append(self.last)
            return True
        repeat = outcome.number != asked.number
        report = DeployReport.from_dict(outcome.report, "a fit trial")
        judged = tuple(verdicts(report, self.budgets, profile, reference))
        trial = Trial(candidate, report, judged, outcome.seconds, asked.number)
        # the model file first: a stop between the two leaves a file, never a told trial
        # without its model
        if not repeat:
            self._keep_model(asked.number, outcome.model)
        # the figures go into the storage, so a resumed search has them
        asked.set_user_attr("report", outcome.report)
        asked.set_user_attr("seconds", outcome.seconds)
        if repeat:
            asked.set_user_attr("same_as", outcome.number)
        for verdict in judged:
            if verdict.budget not in ACCURACY_BUDGETS:  # an objective, not a constraint
                asked.set_constraint(verdict.budget, _excess(verdict))
        cost = objective_cost(trial.measured(self.cost), cost_limit(self.budgets))
        study.tell(asked, [trial.accuracy or 0.0, cost])
        if repeat:
            return False
        self.trials.append(trial)
        self.last = trial
        return True

    def _keep_model(self, number: int, data: bytes | None) -> None:
        if self.folder is None:
            return
        path = self.folder / f"trial-{number + 1:03d}.keras"  # numbered as users see them
        if data is not None:
            partial = path.with_suffix(".keras.partial")
            partial.write_bytes(data)
            partial.replace(path)
        if path.exists():
            self.models[number] = path

    def result(self, seconds: float) -> FitResult:
        return FitResult(
            self.baseline,
            tuple(sorted(self.trials, key=lambda t: t.number)),
            self.cost,
            self.budgets,
            self.space,
            self.seed,
            self.where,
            seconds,
            tuple(self.failures),
            dict(self.models),
            self.data,
        )
