"""What a worker runs for `edgekit fit`: one trial from a shared context, as plain data.

A search hands the same :class:`FitContext` (the original model as `.keras` bytes, the
target, the budgets, the data) to every worker once, then trial after trial: a number and a
:class:`~edgekit.fitting.trial.Candidate`. The worker answers with a :class:`TrialOutcome`: the
deploy report as a dict, the seconds it took, and the fitted model as `.keras` bytes. Plain
data both ways, so the same function serves this process, local worker processes and Ray.

>>> outcome = TrialOutcome(3, None, 1.5, None, "prune: no channel left")
>>> outcome.ok
False
"""

from __future__ import annotations

import hashlib
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.fitting.budgets import Budgets
from edgekit.fitting.trial import Candidate, FitData, run_trial
from edgekit.options import DeployOptions
from edgekit.targets import TargetProfile


@dataclass(frozen=True)
class FitContext:
    """Everything a trial needs that does not change from trial to trial."""

    model: bytes  # the original model, a `.keras` file's bytes
    model_name: str
    profile: TargetProfile
    budgets: Budgets
    data: FitData = field(repr=False)
    options: DeployOptions
    epochs: int = 1
    baseline_accuracy: float | None = None
    threads: int | None = None  # TensorFlow's threads in a worker (None: its default)
    device: str | None = None  # an `edgekit bench` URI where latency is measured

    @property
    def key(self) -> str:
        """Names this context in a worker's cache (the model's bytes and the settings)."""
        digest = hashlib.sha256(self.model)
        digest.update(repr((self.profile.name, self.budgets, self.epochs)).encode())
        digest.update(repr(self.baseline_accuracy).encode())
        for array in (self.data.x, self.data.y, self.data.x_val, self.data.y_val):
            if array is not None:
                digest.update(array.tobytes()[: 1 << 20])
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class TrialOutcome:
    """A trial's result as plain data: `report` is `DeployReport.to_dict()`, `model` the fitted
    model's `.keras` bytes; `error` (one line) when the trial failed."""

    number: int
    report: dict[str, Any] | None
    seconds: float
    model: bytes | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.report is not None


def keras_bytes(model: Any) -> bytes:
    """A Keras model (Keras 3 or tf_keras) as the bytes of a `.keras` file."""
    with tempfile.TemporaryDirectory(prefix="edgekit-fit-") as tmp:
        path = Path(tmp) / f"{getattr(model, 'name', 'model') or 'model'}.keras"
        model.save(path)
        return path.read_bytes()


def load_keras_bytes(data: bytes, name: str = "model") -> Any:
    """The Keras model in `.keras` bytes, loaded in safe mode (edgekit's own loader)."""
    from edgekit.models import load_model

    with tempfile.TemporaryDirectory(prefix="edgekit-fit-") as tmp:
        path = Path(tmp) / f"{name}.keras"
        path.write_bytes(data)
        return load_model(path, isolate=False).keras_model


_CACHE: dict[str, Any] = {}  # a worker's loaded context: {key: (context, Keras model)}


def prepare(context: FitContext) -> str:
    """Load `context` in this process once (a worker's first call); returns its key, which
    later :func:`run_job` calls pass instead of the whole context."""
    _load(context)
    return context.key


def adopt(context: FitContext, model: Any) -> None:
    """Use a live Keras model for `context` in this process (no copy from its bytes)."""
    _CACHE.clear()
    _CACHE[context.key] = (context, model)


def forget() -> None:
    """Drop the context this process holds."""
    _CACHE.clear()


def run_job(context: FitContext | str, number: int, candidate: Candidate) -> TrialOutcome:
    """Run one trial in this process (a worker's entry point); never raises for a failed
    trial: its error comes back in the outcome, and the search goes on."""
    started = time.perf_counter()
    try:
        context, model = _load(context)
        trial, fitted = run_trial(
            model,
            candidate,
            context.profile,
            context.budgets,
            context.data,
            epochs=context.epochs,
            baseline_accuracy=context.baseline_accuracy,
            options=context.options,
            device=context.device,
        )
        return TrialOutcome(number, trial.report.to_dict(), trial.seconds, keras_bytes(fitted))
    except EdgekitError as exc:
        return TrialOutcome(number, None, time.perf_counter() - started, None, str(exc))
    except Exception as exc:  # a trial's failure is the search's data, not its end
        where = traceback.extract_tb(exc.__traceback__)[-1]
        message = f"{type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})"
        return TrialOutcome(number, None, time.perf_counter() - started, None, message)


def _load(context: FitContext | str) -> tuple[FitContext, Any]:
    if isinstance(context, str):
        if context not in _CACHE:
            raise RuntimeError(f"fit context {context} was not prepared in this worker")
        return _CACHE[context]
    cached = _CACHE.get(context.key)
    if cached is None:
        if context.threads:
            _limit_threads(context.threads)
        _CACHE.clear()
        model = load_keras_bytes(context.model, context.model_name)
        cached = _CACHE[context.key] = (context, model)
    return cached


def _limit_threads(threads: int) -> None:
    """Share the cores between workers (only before TensorFlow runs anything here)."""
    from edgekit._tf import tensorflow

    tf = tensorflow()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started its pools in this process
        pass
