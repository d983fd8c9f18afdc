"""`edgekit.fit`: the most accurate model that fits a device, found and proven on the target.

One call runs the whole job: budgets checked against what the target can measure (before
any training), a cheap sensitivity pass, the search (:mod:`edgekit.fitting.search`), then the
chosen model saved as `.keras` and deployed as a normal bundle whose report says how it was
found. Everything lives in one folder, `<out>/<model>-<target>-fit/`:

- `fit.db`: the search's trials (Optuna storage): run again with `resume=True` to go on;
- `trials/trial-NNN.keras`: each trial's fitted model;
- `<model>-fit.keras` and the bundle `<model>-fit-<target>/`: the chosen model;
- `fit.json` (every trial's figures), `pareto.png` (accuracy against cost).

Every trial is also recorded in the results store (`edgekit results list --fit ID`).

>>> new_fit_id("/tmp/x", 0) != new_fit_id("/tmp/y", 0)
True
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from edgekit import metrics as M
from edgekit import plotting
from edgekit.errors import UsageError
from edgekit.fitting.budgets import Budgets, flag
from edgekit.fitting.search import COST_BUDGETS, Failure, FitResult, search
from edgekit.fitting.sensitivity import narrow
from edgekit.fitting.sensitivity import sensitivity as measure_sensitivity
from edgekit.fitting.space import SHARES, SearchSpace, search_space
from edgekit.fitting.trial import MIXED_AGREEMENT_DROP, FitData, Trial, run_trial
from edgekit.options import DeployOptions
from edgekit.report import FitBudget, FitSection
from edgekit.targets import TargetProfile, load_target

VALIDATION_SHARE = 0.2  # held out from the training data when no validation data is given
MAX_VALIDATION = 1000
META = "fit-meta.json"
DEFAULT_DROP = 0.01  # the sensitivity pass's yardstick when no accuracy budget is given


def fit(
    model: Any,
    target: str | TargetProfile,
    data: Any,
    budgets: Budgets | dict[str, Any] | None = None,
    *,
    validation: Any = None,
    trials: int = 20,
    epochs_per_trial: int = 1,
    workers: int | None = None,
    ray: str | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    tflm_dir: str | Path | None = None,
    device: str | None = None,
    targets_dir: str | Path | None = None,
    sensitivity: bool = True,
    store: Any = None,
    progress: Callable[[str], None] | None = None,
    on_trial: Callable[[Trial | Failure, FitResult], None] | None = None,
) -> FitResult:
    """Find the most accurate model derived from `model` that meets `budgets` on `target`.

    Args:
      model: a Keras model (Keras 3 or tf_keras) or a `.keras`/`.h5` path (loaded safely).
      target: a profile name or :class:`~edgekit.targets.TargetProfile`.
      data: training inputs: `.npz`/`.npy` path, array or `(x, y)`; labels are optional
        (the original model labels the inputs: candidates are distilled from it).
      budgets: :class:`~edgekit.fitting.budgets.Budgets` or its fields as a dict; the
        profile's RAM and flash fill what is not given.
      validation: held-out data every trial is measured on (default: 20 % of `data`).
      trials, epochs_per_trial, seed: the search (the same seed gives the same trials).
      workers: local worker processes (None: one per core, at most 4); 1 runs the trials in
        this process, on the live model: what a model with custom layers needs.
      ray: a Ray cluster's address (`127.0.0.1:6379`, `auto`) to run the trials on.
      out: the folder that receives `<model>-<target>-fit/` (default `./edgekit-out`).
      resume: go on from the trials stored there; `force`: start that folder afresh.
      tflm_dir: a TFLM tree: MCU trials are measured by their firmware under QEMU.
      device: Linux/Android targets: an `edgekit bench` device URI (`local`,
        `ssh://pi@host`, `adb://SERIAL`) where each trial's latency is measured.
      store: a :class:`~edgekit.bench.store.ResultStore` (default: the user's) for the trials.

    Returns the :class:`~edgekit.fitting.search.FitResult`, with `directory`, `chosen`
    (the `.keras`) and `bundle` set when a candidate met every budget.

    >>> import edgekit
    >>> callable(edgekit.fit)
    True
    """
    from edgekit.models import from_keras, load_model

    started = time.perf_counter()
    say = progress or (lambda message: None)
    profile = target if isinstance(target, TargetProfile) else load_target(target, targets_dir)
    budgets = _budgets(budgets).for_target(profile)
    tflm_dir = tflm_dir or os.environ.get("EDGEKIT_TFLM_DIR") or None
    check_measurable(budgets, profile, tflm_dir)
    if device is not None:
        check_device(profile, device)
    if trials < 1 or epochs_per_trial < 0:
        raise UsageError(f"--trials must be ≥ 1 and --epochs-per-trial ≥ 0; received {trials}")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers: at least 1; received {workers}")
    if isinstance(model, (str, Path)):
        loaded = load_model(model, isolate=False)  # (said nothing yet: an error is one line)
        if loaded.keras_model is None:
            raise UsageError(f"{model}: `edgekit fit` needs a Keras model (.keras or .h5)")
        model = loaded.keras_model
    else:
        loaded = from_keras(model)
    fit_data = _fit_data(data, validation, loaded)
    name = loaded.name
    directory = _directory(out, f"{name}-{profile.name}-fit", resume, force)
    made = not any(directory.iterdir())  # this run's own (empty) folder
    options = DeployOptions(analysis=False, tflm_dir=tflm_dir, targets_dir=targets_dir)
    meta = _meta(directory, name, profile, budgets, epochs_per_trial, seed)
    if "space" in meta:  # a resumed search keeps its space
        space = SearchSpace.from_dict(meta["space"])
    else:
        try:
            space = _reachable_space(model, profile, budgets, fit_data, options, sensitivity, say)
        except BaseException:  # nothing was searched: this run's folder is not left behind
            if made:
                shutil.rmtree(directory, ignore_errors=True)
            raise
        meta = _write_meta(directory, {**meta, "space": space.to_dict()})
    recorder = _Recorder(store, meta["fit_id"], name, profile)
    told: list[int] = []

    def each(trial: Trial | Failure, so_far: FitResult) -> None:
        told.append(trial.number)
        recorder.add(trial, so_far)
        if on_trial is not None:
            on_trial(trial, so_far)

    try:
        result = search(
            model,
            profile,
            budgets,
            fit_data,
            trials=trials,
            epochs_per_trial=epochs_per_trial,
            seed=seed,
            storage=directory / "fit.db",
            space=space,
            runner=_runner(workers, ray),
            options=options,
            models_dir=directory / "trials",
            device=device,
            progress=say,
            on_trial=each,
        )
    except UsageError:  # refused before a trial ran (e.g. an accuracy it cannot measure)
        if made and not told:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    recorder.backfill(result)  # trials a stop told the storage but not the results store
    result = replace(result, fit_id=meta["fit_id"], directory=directory)
    best = result.best
    if best is not None:
        say(f"deploying the chosen model (trial {best.number + 1})")
        result = _publish(result, best, name, profile, options, directory)
    if result.trials and plotting.available():
        from edgekit.fitting.chart import pareto_chart

        result = replace(result, chart=pareto_chart(result, directory / "pareto.png"))
    result = replace(result, seconds=time.perf_counter() - started)
    _write_summary(result, directory)
    return result


def check_measurable(budgets: Budgets, profile: TargetProfile, tflm_dir: str | Path | None) -> None:
    """A budget the target cannot measure here is one line, before any training."""
    firmware = profile.is_mcu and profile.firmware is not None and tflm_dir is not None
    if budgets.max_instructions is not None and not firmware:
        why = "no TFLM tree given" if profile.is_mcu and profile.firmware else "no firmware"
        raise UsageError(
            f"--max-instructions: instructions are counted by {profile.name}'s firmware under "
            f"QEMU ({why}): give --tflm-dir or set EDGEKIT_TFLM_DIR"
        )
    if budgets.max_latency_ms is not None and profile.is_mcu and not firmware:
        raise UsageError(
            f"--max-latency-ms: {profile.name}'s latency is estimated from the firmware's "
            "instructions under QEMU: give --tflm-dir or set EDGEKIT_TFLM_DIR"
        )
    if budgets.max_latency_ms is not None and profile.uses_edgetpu:
        raise UsageError(
            f"--max-latency-ms: {profile.name}'s latency needs the Edge TPU itself; give "
            "--max-ram/--max-flash (the parameter cache) and benchmark the bundle with "
            "`edgekit bench`"
        )


def check_device(profile: TargetProfile, device: str) -> None:
    """`--device` measures latency with the profile's harness: Linux and Android targets."""
    from edgekit.bench.uri import parse_device

    uri = parse_device(device)
    if profile.is_mcu or profile.uses_edgetpu:
        raise UsageError(
            f"--device: {profile.name}'s budgets are measured "
            + ("under QEMU (--tflm-dir)" if profile.is_mcu else "by the Edge TPU rules")
            + "; --device measures latency on Linux and Android devices"
        )
    if profile.harness == "android" and uri.scheme != "adb":
        raise UsageError(f"--device: {profile.name} is measured over adb; received {uri.redacted}")


def new_fit_id(directory: str | Path, created: float) -> str:
    """A short id for a search: its folder and when it started."""
    text = f"{Path(directory).resolve()}@{created}"
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _budgets(budgets: Budgets | dict[str, Any] | None) -> Budgets:
    if budgets is None:
        return Budgets()
    if isinstance(budgets, Budgets):
        return budgets
    if isinstance(budgets, dict):
        known = [f.name for f in fields(Budgets)]
        unknown = sorted(set(budgets) - set(known))
        if unknown:
            raise UsageError(
                f"budgets: unknown {', '.join(unknown)}; expected: {', '.join(known)} (sizes in "
                "bytes, max_drop a fraction: 0.01 = one point)"
            )
        return Budgets(**budgets)
    raise UsageError(f"budgets: a Budgets or a dict; received {type(budgets).__name__}")


def _fit_data(data: Any, validation: Any, loaded: Any) -> FitData:
    import numpy as np

    from edgekit.data import load_dataset

    if data is None:
        raise UsageError("`edgekit fit` needs training inputs (--data FILE.npz)")
    if len(loaded.input_specs) > 1:
        raise UsageError(f"{loaded.name}: `edgekit fit` takes models with one input")
    train = load_dataset(data, loaded.inputs, "--data", min_samples=10)
    x, y = np.asarray(train.x, np.float32), train.y
    if validation is not None:
        val = load_dataset(validation, loaded.inputs, "--validation", min_samples=10)
        return FitData(x, y, np.asarray(val.x, np.float32)[:MAX_VALIDATION], val.y)
    n = len(x)
    held = min(MAX_VALIDATION, max(10, int(n * VALIDATION_SHARE)))
    if n - held < 10:
        raise UsageError(f"--data: {n} inputs are too few to hold some out; give --validation")
    order = np.random.default_rng(0).permutation(n)
    train_i, val_i = order[held:], order[:held]
    y_train = None if y is None else np.asarray(y)[train_i]
    y_val = None if y is None else np.asarray(y)[val_i]
    return FitData(x[train_i], y_train, x[val_i], y_val)


def _directory(out: str | Path | None, name: str, resume: bool, force: bool) -> Path:
    root = Path(out) if out is not None else Path.cwd() / "edgekit-out"
    directory = (root / name).absolute()
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a folder")
    if directory.exists() and not resume and (directory / META).exists():
        if not force:
            raise UsageError(
                f"{directory} holds an earlier search: resume it (--resume) or start afresh "
                "(--force)"
            )
        shutil.rmtree(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{directory}: {exc.strerror or exc}") from None
    return directory


def _reachable_space(
    model: Any,
    profile: TargetProfile,
    budgets: Budgets,
    data: FitData,
    options: DeployOptions,
    sensitivity: bool,
    say: Callable[[str], None],
) -> SearchSpace:
    """The search space, narrowed per group by the sensitivity pass (no fine-tuning) where
    the narrowed space can still meet the cost budgets; ends before the search when even
    the whole space's cheapest candidates miss one."""
    whole = search_space(model, profile)
    if sensitivity:
        found = measure_sensitivity(model, profile, data, SHARES, progress=say)
        if budgets.max_drop is not None:
            drop = budgets.max_drop
        elif budgets.min_accuracy is not None:
            drop = max(0.0, found.baseline - budgets.min_accuracy)
        else:
            drop = DEFAULT_DROP
        narrowed = search_space(model, profile, shares=narrow(found, SHARES, drop))
        if narrowed == whole or not _misses(model, narrowed, profile, budgets, data, options, say):
            return narrowed
        say("the narrowed space cannot meet the budget: searching every share of every group")
    missed = _misses(model, whole, profile, budgets, data, options, say)
    if missed:
        raise UsageError(
            "no candidate can meet the budget: " + "; ".join(missed) + "; relax the budget or "
            "start from a smaller model"
        )
    return whole


def _misses(
    model: Any,
    space: SearchSpace,
    profile: TargetProfile,
    budgets: Budgets,
    data: FitData,
    options: DeployOptions,
    say: Callable[[str], None],
) -> list[str]:
    """The cost budgets that every one of the space's cheapest candidates misses (said with
    the smallest figure reached); [] when one of them meets them all."""
    best: dict[str, tuple[float, str]] = {}
    for candidate in space.cheapest():
        say(f"measuring a cheapest candidate ({candidate.describe()})")
        trial, _ = run_trial(model, candidate, profile, budgets, data, epochs=0, options=options)
        missed = [v for v in trial.verdicts if v.budget in COST_BUDGETS and not v.ok]
        if not missed:
            return []
        for v in missed:
            reached = math.inf if v.measured is None else v.measured
            if v.budget not in best or reached < best[v.budget][0]:
                text = (
                    f"{flag(v.budget)} {_value(v.budget, v.limit)}: the smallest candidate "
                    f"measures {_value(v.budget, v.measured)} ({v.source}; "
                    f"{candidate.describe()})"
                )
                best[v.budget] = (reached, text)
    return [text for _, text in best.values()]


def _value(budget: str, value: float | None) -> str:
    if value is None:
        return "not measured"
    if budget.endswith("_bytes"):
        return f"{value / 1024:,.1f} KB"
    if budget == "max_latency_ms":
        return f"{value:.3g} ms"
    return f"{value:,.0f}"


def _meta(
    directory: Path,
    name: str,
    profile: TargetProfile,
    budgets: Budgets,
    epochs: int,
    seed: int,
) -> dict[str, Any]:
    """The search's identity, kept beside its storage: a resume must be the same search."""
    from edgekit import jsonfile

    path = directory / META
    settings = {"model": name, "target": profile.name, "budgets": _plain(budgets)}
    settings.update({"epochs_per_trial": epochs, "seed": seed})
    if path.exists():
        meta = jsonfile.loads(path.read_text(), str(path), expect=dict)
        stored = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
        if stored != settings:
            changed = sorted(k for k in {*stored, *settings} if stored.get(k) != settings.get(k))
            parts = [f"{k} was {stored.get(k)!r}, now {settings.get(k)!r}" for k in changed]
            raise UsageError(
                f"{directory}: the stored search was run with other settings ("
                + "; ".join(parts)
                + "): run it as it was to resume, or --force to start afresh"
            )
        return meta
    return {"fit_id": new_fit_id(directory, time.time()), "settings": settings}


def _write_meta(directory: Path, meta: dict[str, Any]) -> dict[str, Any]:
    path = directory / META
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(meta, indent=2))
    partial.replace(path)
    return meta


def _plain(budgets: Budgets) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: v for k, v in asdict(budgets).items() if v is not None}


def _runner(workers: int | None, ray: str | None) -> Any:
    from edgekit.fitting.runners import InProcessRunner, LocalRunner, default_workers

    if ray is not None:
        from edgekit.fitting.ray_runner import RayRunner

        return lambda context, model: RayRunner(context, ray)
    count = workers or default_workers()
    if count == 1:
        return lambda context, model: InProcessRunner(context, model)
    return lambda context, model: LocalRunner(context, count)


def _publish(
    result: FitResult,
    best: Trial,
    name: str,
    profile: TargetProfile,
    options: DeployOptions,
    directory: Path,
) -> FitResult:
    """The chosen model as `<name>-fit.keras`, deployed as a bundle that says how it was
    found (measured again: the bundle's figures are its own)."""
    import edgekit

    source = result.models.get(best.number)
    if source is None:
        raise UsageError(f"trial {best.number + 1}'s model is missing from {directory}/trials")
    chosen = directory / f"{name}-fit.keras"
    shutil.copyfile(source, chosen)
    data = result.data
    validation = data.x_val if data.y_val is None else (data.x_val, data.y_val)
    deployed = edgekit.deploy(
        chosen,
        profile,
        options.with_(analysis=True),  # a normal bundle: the per-layer analysis too
        calibration=data.x[:500],
        validation=validation,
        calibration_method=best.candidate.calibration_method,
        max_agreement_drop=MIXED_AGREEMENT_DROP if best.candidate.precision == "mixed" else None,
        out=directory,
        force=True,
        found_by=_found_by(result, best, name),
    )
    return replace(result, chosen=chosen, bundle=deployed.path)


def _found_by(result: FitResult, best: Trial, name: str) -> FitSection:
    cost = result.cost
    judged = best.verdicts
    return FitSection(
        fit_id=result.fit_id,
        original=name,
        search=(
            f"Optuna TPE, multi-objective (accuracy up, {cost} down) with the budgets as "
            f"constraints, {len(result.trials)} trials on {result.where}"
        ),
        trial=best.number + 1,
        trials=len(result.trials),
        seed=result.seed,
        candidate=best.candidate.describe(),
        cost_metric=cost,
        original_cost=result.baseline.measured(cost),
        cost=best.measured(cost),
        budgets=tuple(FitBudget(v.budget, v.limit, v.measured, v.source, v.ok) for v in judged),
    )


def _write_summary(result: FitResult, directory: Path) -> None:
    path = directory / "fit.json"
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    partial.replace(path)


class _Recorder:
    """Each trial into the results store as it finishes (a resumed search adds only its new
    trials)."""

    def __init__(self, store: Any, fit_id: str, name: str, profile: TargetProfile) -> None:
        self.store, self.fit_id, self.name, self.profile = store, fit_id, name, profile
        self.seen: set[int] | None = None

    def backfill(self, result: FitResult) -> None:
        for trial in result.trials:
            self.add(trial, result)

    def add(self, trial: Trial | Failure, so_far: FitResult) -> None:
        from edgekit.bench.result import BenchResult
        from edgekit.bench.store import ResultStore

        if self.store is None:
            self.store = ResultStore()
        if self.seen is None:
            self.seen = {
                r.settings.get("trial")
                for r in self.store.list(fit=self.fit_id)
                if r.settings.get("trial") is not None
            }
        if trial.number + 1 in self.seen:
            return
        self.seen.add(trial.number + 1)
        settings = {
            "fit": self.fit_id,
            "trial": trial.number + 1,  # numbered as the tables show them
            "candidate": trial.candidate.describe(),
        }
        if isinstance(trial, Failure):
            row: Any = BenchResult(
                f"{self.name} trial {trial.number + 1}",
                "0" * 64,
                self.profile.name,
                f"fit:{self.fit_id}",
                "failed",
                error=trial.error,
                transport="fit",
                settings=settings,
            )
        else:
            path = so_far.models.get(trial.number)
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path else "0" * 64
            row = trial_result(trial, self.name, self.fit_id, settings, digest)
        self.store.add(row)


def trial_result(
    trial: Trial, name: str, fit_id: str, settings: dict[str, Any], sha256: str
) -> Any:
    """A fit trial as a results-store row: its deploy's figures under the store's names."""
    from edgekit.bench.result import BenchResult

    m = trial.report.metrics
    metrics: dict[str, Any] = {
        M.MACS: m.macs,
        M.FLASH_BYTES: m.model_bytes,
        M.ARENA_BYTES: m.tensor_arena_32bit_bytes or m.tensor_arena_bytes,
        M.DEPLOYED_ACCURACY: m.deployed_accuracy,
        M.TOP1_AGREEMENT: m.top1_agreement,
    }
    if m.instructions_per_inference is not None:
        metrics[M.INSTRUCTIONS] = {"per_inference": m.instructions_per_inference}
    if m.host_latency_ms is not None:
        metrics[M.LATENCY_MS] = {"p50": m.host_latency_ms}
    settings = {**settings, "ok": trial.ok, "failed_budgets": trial.failed}
    return BenchResult(
        f"{name} trial {trial.number + 1}",
        sha256,
        trial.report.target.name,
        f"fit:{fit_id}",
        "ok",
        transport="fit",
        harness="edgekit fit",
        settings=settings,
        metrics={k: v for k, v in metrics.items() if v is not None},
    )
