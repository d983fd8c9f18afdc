"""The load stage: the model, and the calibration and validation data checked against it.

What can be checked before TensorFlow loads is (:func:`precheck`): a bad data file or a
missing calibration set costs no time.

>>> from edgekit.stages.load import load_inputs                                  # doctest: +SKIP
>>> options = DeployOptions(calibration="x.npy")                                # doctest: +SKIP
>>> inputs = load_inputs("model.keras", profile, options)                      # doctest: +SKIP
>>> inputs.calibration.n, inputs.validation.source                             # doctest: +SKIP
(200, 'x.npy')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.data import (
    MAX_VALIDATION_SAMPLES,
    Dataset,
    check_array_file,
    load_dataset,
    random_calibration,
)
from edgekit.errors import UsageError
from edgekit.models import KERAS_SUFFIXES, QAT_CLASSES, LoadedModel, config_nodes, load_model
from edgekit.options import DeployOptions
from edgekit.signature import input_specs, keras_config
from edgekit.stages.convert import quantizes_tflite
from edgekit.targets import TargetProfile


@dataclass(frozen=True)
class Inputs:
    """The loaded model and the data a deploy uses, with what is worth knowing about them."""

    loaded: LoadedModel
    calibration: Dataset | None
    validation: Dataset
    notes: tuple[str, ...] = ()

    @property
    def detail(self) -> str:
        """One line: the model's kind and its inputs."""
        loaded = self.loaded
        written = f" written by {loaded.writer}" if loaded.writer else ""
        inputs = ", ".join(
            f"input {'' if len(loaded.input_specs) == 1 else s.name + ' '}{list(s.shape)} {s.dtype}"
            for s in loaded.input_specs
        )
        return f"{loaded.kind}{written}, {inputs}"


def load_inputs(
    model: Any,
    profile: TargetProfile,
    options: DeployOptions,
    example_data: tuple[Dataset, Dataset] | None = None,
) -> Inputs:
    """Load `model` (a path or a live Keras model) and the options' data, checked against it.

    `example_data` (calibration, validation) is a built-in example's own data."""
    loaded = load_model(model, options.custom_objects, unsafe=options.unsafe_deserialization)
    calib, val, notes = _datasets(
        loaded,
        profile,
        options.calibration,
        options.validation,
        example_data,
        options.min_calibration_samples,
    )
    if loaded.unsafe:
        notes.insert(0, "loaded with --unsafe-deserialization: the model file's Python code ran")
    return Inputs(loaded, calib, val, tuple(notes))


def precheck(model: Any, profile: TargetProfile, options: DeployOptions) -> DeployOptions:
    """Everything that can be checked before TensorFlow loads: data files' headers, a missing
    calibration set, and (where the model file says its input shape) the data's shapes and
    values. Returns the options with data files already read where that was possible."""
    _precheck_data(options.calibration, "calibration")
    _precheck_data(options.validation, "validation")
    if not isinstance(model, (str, Path)):
        return options
    if options.calibration is None and options.example is None:
        _early_calibration_check(model, profile)
    calibration, validation = _early_datasets(
        model, options.calibration, options.validation, options.min_calibration_samples
    )
    return options.with_(calibration=calibration, validation=validation)


def _datasets(
    loaded: LoadedModel,
    profile: TargetProfile,
    calibration: Any,
    validation: Any,
    example_data: tuple[Dataset, Dataset] | None,
    min_calibration_samples: int,
) -> tuple[Dataset | None, Dataset, list[str]]:
    notes: list[str] = []
    shape = loaded.inputs  # one shape, or every input's InputSpec
    calib: Dataset | None = None
    if isinstance(calibration, str) and calibration == "random":
        calib = random_calibration(shape)
        notes.append(
            "calibration was random: quantization ranges are not representative and every "
            "accuracy figure is meaningless"
        )
    elif calibration is not None:
        calib = load_dataset(
            calibration,
            shape,
            "calibration",
            dtype=loaded.input_dtype,
            min_samples=min_calibration_samples,
        )
    elif example_data is not None:
        calib = example_data[0]
    quantizes = quantizes_tflite(loaded, profile)
    needs = (
        profile.quantization.needs_calibration
        and not loaded.is_qat
        and (not loaded.is_tflite or quantizes)
    )
    if needs and calib is None:
        raise _no_calibration(profile, [s.name for s in loaded.input_specs])
    if validation is not None:
        val = load_dataset(
            validation, shape, "validation", MAX_VALIDATION_SAMPLES, dtype=loaded.input_dtype
        )
        if val.y is None:
            notes.append(
                f"validation data {val.source} has no labels (an .npz needs 'y' for accuracy): "
                "only agreement with the float model is measured"
            )
    elif example_data is not None:
        val = example_data[1].head(MAX_VALIDATION_SAMPLES)
    elif calib is not None:
        val = calib.head(MAX_VALIDATION_SAMPLES)
        notes.append(
            "no --validation given: verified on the calibration inputs, without labels"
            if calib.y is None
            else "no --validation given: verified on the calibration data, labels and all; "
            "the ranges were made from the same inputs, so accuracy may read high"
        )
    else:
        val = random_calibration(shape, n=100, seed=1)
        notes.append("no validation data: verified on random inputs, without labels")
    if loaded.is_tflite and calibration is not None and not quantizes:
        notes.append("calibration data ignored: a .tflite model is already converted")
    if loaded.is_qat:
        notes.append("QAT model: int8 ranges come from training, not from calibration data")
    return (None if loaded.is_tflite and not quantizes else calib), val, notes


def _no_calibration(profile: TargetProfile, names: list[str]) -> UsageError:
    files = (
        "FILE.npy (or .npz with 'x')"
        if len(names) == 1
        else f"FILE.npz with one array per input ({', '.join(names)}; or x0, x1...)"
    )
    return UsageError(
        f"target {profile.name} quantizes to {profile.quantization.scheme} and needs "
        f"calibration data: pass --calibration {files}, 100-500 representative inputs, "
        "or --calibration random for a smoke test"
    )


def _early_calibration_check(model: str | Path, profile: TargetProfile) -> None:
    """No calibration for an int8 target: said before the model loads when the file is a
    Keras file whose config holds no QAT layers (QAT models bring their own ranges)."""
    if not profile.quantization.needs_calibration:
        return
    if Path(model).suffix.lower() not in KERAS_SUFFIXES:
        return
    config = keras_config(model)
    classes = {
        str(node.get("class_name", "")).rsplit(">", 1)[-1] for node in config_nodes(config or {})
    }
    if config is None or classes & set(QAT_CLASSES):
        return
    specs = input_specs(model)
    raise _no_calibration(profile, [s.name for s in specs] if specs else ["x"])


def _early_datasets(
    model: str | Path, calibration: Any, validation: Any, min_calibration_samples: int
) -> tuple[Any, Any]:
    """Data files read and checked against the input the model file declares, before the
    model loads; each becomes a Dataset (checked again, cheaply, once the model is loaded)."""
    specs = input_specs(model)
    if specs is None:
        return calibration, validation

    def early(source: Any, what: str, **limits: Any) -> Any:
        if isinstance(source, (str, Path)) and str(source) != "random":
            data = load_dataset(source, specs, what, **limits)
            # Several inputs are matched by name again once the model has loaded: the file
            # is read again then (names from a config could differ from the live model's).
            return data if len(specs) == 1 else source
        return source

    return (
        early(calibration, "calibration", min_samples=min_calibration_samples),
        early(validation, "validation", limit=MAX_VALIDATION_SAMPLES),
    )


def _precheck_data(source: Any, what: str) -> None:
    """Read a data file's header before TensorFlow loads: a bad file costs no time."""
    if isinstance(source, (str, Path)) and str(source) != "random":
        check_array_file(source, what)
