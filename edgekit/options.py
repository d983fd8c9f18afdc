"""How a deploy runs: one options object instead of two dozen parameters.

`edgekit.deploy(model, target, options)` takes a :class:`DeployOptions`; the CLI builds one
from its flags, `TargetFitCheck` and `edgekit fit` from their own settings. Options are
checked when made (a typo is a usage error before anything loads).

>>> opts = DeployOptions(calibration="random", analysis=False)
>>> opts.with_(force=True).force, opts.force
(True, False)
>>> DeployOptions(task="segmentation")
Traceback (most recent call last):
...
edgekit.errors.UsageError: unknown task 'segmentation'; expected one of: classification, regression
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from edgekit.data import MIN_CALIBRATION_SAMPLES
from edgekit.errors import UsageError
from edgekit.quantization.calibration import parse_method
from edgekit.verify import TASKS

HOST_LATENCY_RUNS = 50  # timed runs for host_latency_ms, in a deploy and in TargetFitCheck


@dataclass(frozen=True)
class DeployOptions:
    """Everything about a deploy except the model and the target.

    Data:
      calibration: inputs for full-integer quantization: array, `.npy`/`.npz` path, or
        "random" (accuracy figures then mean nothing).
      validation: `(x, y)`, an array or a path; up to 500 samples are compared. For a model
        with several inputs, `x` is a list (the model's order) or a dict by input name, and a
        file is an `.npz` with one array per input (see :mod:`edgekit.data`).
      example: "digits" (or another built-in example) to deploy with its own data.
      min_calibration_samples: refuse calibration data with fewer inputs (default 10).
      task: "classification" or "regression"; detected from the outputs when None.

    Target:
      delegate: override the profile's delegate ("gpu" on Android: float16).
      targets_dir: a folder of extra target profiles.
      tflm_dir: MCU targets with a `[firmware]` profile section: a TFLM tree (else
        EDGEKIT_TFLM_DIR) to build the firmware with and run it under QEMU.

    Quantization:
      calibration_method: "minmax", "percentile[:P]", "mse", "kl", or "converter" (the plain
        TFLite converter); "default" is edgekit's measured best (docs/benchmarks.md).
      bias_correction: fold the mean shift weight rounding causes into int32 biases.
      rewrite: turn global average pools into MEAN (its own output scale) before quantizing.
      keep_float: output tensor names of ops to keep in float (mixed precision).
      rounding: "nearest" (the converter's) or "learned": AdaRound learns each conv/dense
        op's weight rounding on the calibration data (a few seconds to a minute).
      equalize: cross-layer equalisation of the float model before quantizing (conv or
        depthwise → conv pairs; mostly for per-tensor weights).
      optimize: "accuracy" searches every calibration method and bias correction, then the
        best method with learned rounding, then with equalisation switched.
      min_sqnr, max_agreement_drop: a mixed-precision goal: the fewest tensors carried in
        int16 or ops kept in float that reach it.
      mixed_with: what mixed precision keeps at higher precision: "int16" activations (16x8
        ops, no float: the default on TFLM targets), "float" ops (the default on LiteRT
        targets), or "auto".

    What to measure:
      analysis: the per-layer quantization analysis (and its chart) in the report.
      sparse_size: also the size in TFLite's sparse format (one more conversion).
      host_latency: time the deployed model on this host (not for MCU targets).
      firmware: build and run the MCU firmware under QEMU when a TFLM tree is given.

    Loading:
      unsafe_deserialization: let a Keras file's Lambda layers run their Python bytecode while
        loading (only for files you trust; the report records it).
      custom_objects: a Keras file's own layers, by name.

    Output:
      out: directory that receives `<model>-<target>/` (default `./edgekit-out`).
      force: replace an existing bundle.
      write_bundle: False keeps everything in memory (`Deployment.path` is None): what
        `TargetFitCheck` and `edgekit fit` use to measure many candidates.
      found_by: a :class:`~edgekit.report.FitSection`: how `edgekit fit` found the model
        (the report says so).
    """

    calibration: Any = None
    validation: Any = None
    example: str | None = None
    min_calibration_samples: int = MIN_CALIBRATION_SAMPLES
    task: str | None = None
    delegate: str | None = None
    targets_dir: str | Path | None = None
    tflm_dir: str | Path | None = None
    calibration_method: str = "default"
    bias_correction: bool = True
    rewrite: bool = True
    keep_float: tuple[str, ...] = ()
    rounding: str = "nearest"
    equalize: bool = False
    optimize: str | None = None
    min_sqnr: float | None = None
    max_agreement_drop: float | None = None
    mixed_with: str = "auto"
    analysis: bool = True
    sparse_size: bool = False
    host_latency: bool = True
    firmware: bool = True
    unsafe_deserialization: bool = False
    custom_objects: dict | None = field(default=None, compare=False)
    out: str | Path | None = None
    force: bool = False
    write_bundle: bool = True
    found_by: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.task is not None and self.task not in TASKS:
            raise UsageError(f"unknown task {self.task!r}; expected one of: {', '.join(TASKS)}")
        if self.optimize not in (None, "accuracy"):
            raise UsageError(f"optimize (--optimize) takes 'accuracy'; received {self.optimize!r}")
        if self.mixed_with not in ("auto", "int16", "float"):
            raise UsageError(
                "mixed_with (--mixed-with) takes auto, int16 or float; received "
                f"{self.mixed_with!r}"
            )
        if self.rounding not in ("nearest", "learned"):
            raise UsageError(
                f"rounding (--rounding) takes 'nearest' or 'learned'; received {self.rounding!r}"
            )
        if self.min_calibration_samples < 1:
            raise UsageError(
                "min_calibration_samples (--min-calibration-samples) must be at least 1; "
                f"received {self.min_calibration_samples}"
            )
        if self.calibration_method not in ("default", "converter"):
            parse_method(self.calibration_method, others=("converter", "default"))
        keep = (self.keep_float,) if isinstance(self.keep_float, str) else self.keep_float
        object.__setattr__(self, "keep_float", tuple(keep))

    def with_(self, **changes: Any) -> DeployOptions:
        """A copy with `changes`; an unknown name is a usage error."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise UsageError(
                f"unknown deploy option(s): {', '.join(unknown)}; expected one of: "
                f"{', '.join(sorted(known))}"
            )
        return replace(self, **changes)

    @property
    def mixed_precision(self) -> bool:
        """Ops are to be kept in float (by name or by a goal)."""
        return (
            bool(self.keep_float)
            or self.min_sqnr is not None
            or (self.max_agreement_drop is not None)
        )
