"""Compatibility and budget checks of a `.tflite` model against a target profile.

Each check is a :class:`Check`: a name, whether it passed, and a one-line detail with the
numbers. `edgekit inspect --target` and `edgekit deploy` share these.

>>> from edgekit.checks import Check
>>> Check("flash_budget", False, "needs 1.2 MB, 0.9 MB available").to_dict()["ok"]
False
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from edgekit.errors import ToolError
from edgekit.runtimes.edgetpu import analyze
from edgekit.runtimes.tflm import describe_missing, measure_arena, missing_ops
from edgekit.targets import TargetProfile
from edgekit.tflite_model import TFLiteModel

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib

QUANTIZED = {"int8": ("INT8", "UINT8"), "int16x8": ("INT16",)}
GOAL_CHECK = "quantization_goal"  # --min-sqnr / --max-agreement-drop judged by verification
VARIABLE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE")
NUMPY_IO = {"int8": "INT8", "uint8": "UINT8", "int16": "INT16", "float32": "FLOAT32"}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:.1f} KiB"


@cache
def _runtime_table() -> dict[str, dict[int, str]]:
    text = resources.files("edgekit").joinpath("data/op_runtime_versions.toml").read_text()
    return {
        op: {int(v): rt for v, rt in versions.items()}
        for op, versions in tomllib.loads(text)["ops"].items()
    }


def version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def min_runtime_for(op: str, version: int) -> str | None:
    """The oldest LiteRT/TF Lite runtime that has `op` at `version`, or None if unknown."""
    return _runtime_table().get(op, {}).get(version)


def check_static_shapes(model: TFLiteModel, profile: TargetProfile | None = None) -> Check:
    """Every tensor has a concrete shape and no op computes shapes at run time.

    A `-1` in a tensor's `shape_signature` with a concrete `shape` (a Keras batch of None) is
    not dynamic for TFLM or LiteRT's CPU kernels: both run the concrete shape. The Edge TPU
    compiler refuses it.
    """
    variables = sorted({op.name for op in model.operators if op.name in VARIABLE_OPS})
    if variables:
        return Check(
            "static_shapes",
            False,
            f"resource-variable ops ({', '.join(variables)}): weights were not frozen into "
            "constants",
        )
    unknown = [t.name for t in model.tensors if any(d < 0 for d in t.shape)]
    shape_ops = [op.name for op in model.operators if op.name == "SHAPE"]
    if unknown or shape_ops:
        what = (
            f"tensors without a concrete shape: {', '.join(unknown[:3])}"
            if unknown
            else ("a SHAPE op computes shapes at run time")
        )
        return Check("static_shapes", False, f"{what}; convert with a fixed batch of 1")
    signature = [t.name for t in model.tensors if t.dynamic]
    if signature:
        if profile is not None and profile.uses_edgetpu:
            return Check(
                "static_shapes",
                False,
                f"shape_signature has -1 ({', '.join(signature[:3])}): the Edge TPU compiler "
                "needs static shapes; convert with a fixed batch of 1",
            )
        return Check(
            "static_shapes",
            True,
            f"every shape is concrete; {len(signature)} tensor(s) have -1 only in "
            "shape_signature (a free batch), which the runtime does not use",
        )
    return Check("static_shapes", True, "every tensor shape is static")


FLOATS = ("FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16")
WEIGHTED_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "TRANSPOSE_CONV",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "BATCH_MATMUL",
    "SVDF",
)


def core_activations(model: TFLiteModel) -> list[Any]:
    """Tensors the ops compute (and graph inputs), without constants, variables (state) and
    the float side of float-IO QUANTIZE/DEQUANTIZE boundary ops."""
    produced = {i for op in model.operators for i in op.outputs if i >= 0}
    boundary = set()
    for op in model.operators:
        if op.name == "QUANTIZE" and op.inputs and op.inputs[0] in model.inputs:
            boundary.add(op.inputs[0])
        if op.name == "DEQUANTIZE" and op.outputs and op.outputs[0] in model.outputs:
            boundary.add(op.outputs[0])
    return [
        model.tensors[i]
        for i in sorted(produced | set(model.inputs))
        if i not in boundary
        and not model.tensors[i].is_constant
        and not model.tensors[i].is_variable
    ]


def model_precision(model: TFLiteModel) -> str:
    """int8 | int16x8 | float16 | dynamic | float32: what the model computes in.

    A partly quantized model counts by its quantized part (`fully_quantized` then names the
    float tensors); integer state and LSTM intermediates do not count.
    """
    dtypes = {t.dtype for t in core_activations(model)}
    if "INT16" in dtypes:
        return "int16x8"
    if dtypes & {"INT8", "UINT8"}:
        return "int8"
    if any(t.is_constant and t.dtype == "FLOAT16" for t in model.tensors):
        return "float16"
    for op in model.operators:
        if op.name in WEIGHTED_OPS and len(op.inputs) > 1 and op.inputs[1] >= 0:
            weight = model.tensors[op.inputs[1]]
            if weight.is_constant and weight.dtype in ("INT8", "UINT8"):
                return "dynamic"
    return "float32"


PRECISION_COST = {
    "int16x8": "int16 activations take twice the arena of int8, and optimised kernel libraries "
    "(CMSIS-NN, XNNPACK) cover fewer int16 ops",
    "float32": "float kernels are slower and take 4x the memory of int8",
    "float16": "float16 weights are dequantized to float32 on CPUs",
    "dynamic": "activations stay float; only weights are int8",
    "int8": "",
}


def check_precision(model: TFLiteModel, profile: TargetProfile) -> Check:
    """Does the target's runtime have kernels for the precision the model computes in?"""
    precision = model_precision(model)
    quant = profile.quantization
    runtime = "TFLM" if profile.is_mcu else ("the Edge TPU" if profile.uses_edgetpu else "LiteRT")
    if precision not in quant.precisions:
        return Check(
            "precision",
            False,
            f"the model computes in {precision}; {profile.name} ({runtime}) runs "
            f"{', '.join(quant.precisions)}",
        )
    wide = [t for t in core_activations(model) if t.dtype == "INT16"]
    if (
        precision == "int16x8"
        and quant.scheme == "int8"
        and len(wide) < len(core_activations(model))
    ):
        return Check(
            "precision",
            True,
            f"int8 with {len(wide)} int16 activation(s) (the tensors carried in int16 and the "
            f"int16 copies 16x8 ops read; mixed precision): "
            f"{runtime} has int16x8 kernels; cost: {PRECISION_COST[precision]}",
        )
    if precision != quant.scheme:
        return Check(
            "precision",
            True,
            f"{precision} model on a {quant.scheme} target: {runtime} has {precision} kernels; "
            f"cost: {PRECISION_COST[precision]}",
        )
    return Check("precision", True, f"{precision}, as {profile.name} expects")


def check_quantization(model: TFLiteModel, profile: TargetProfile) -> list[Check]:
    quant = profile.quantization
    precision = model_precision(model)
    checks = [check_precision(model, profile)]
    io_want = NUMPY_IO[quant.io_dtype]
    io_have = {t.dtype for t in model.input_tensors() + model.output_tensors()}
    have = ", ".join(sorted(d.lower() for d in io_have))
    if precision == quant.scheme:
        checks.append(
            Check(
                "io_dtype",
                io_have == {io_want},
                f"inputs/outputs are {have}; {profile.name} expects {quant.io_dtype}",
            )
        )
    else:
        checks.append(Check("io_dtype", True, f"inputs/outputs are {have} ({precision} model)"))
    if precision in QUANTIZED:
        io = set(model.inputs + model.outputs)
        bad = sorted(
            {
                op.name
                for op in model.operators
                for idx in op.inputs + op.outputs
                if idx >= 0
                and idx not in io
                and model.tensors[idx].dtype in FLOATS
                and not model.tensors[idx].is_constant
            }
        )
        inner = {t.dtype for t in core_activations(model) if t.index not in io}
        io_types = {t.dtype for t in model.input_tensors() + model.output_tensors()}
        io_note = f" ({have} at the inputs/outputs)" if io_types - inner else ""
        in_float = float_ops(model)
        if bad and "float32" in quant.precisions:
            # Kept in float by the user, the search or the converter (an op with no int8
            # kernel): a choice the target's float kernels allow, stated, not a failure.
            names = ", ".join(in_float) or ", ".join(bad)
            detail = (
                f"{len(in_float)} op(s) run in float ({names}): "
                f"{profile.name} has float32 kernels; the rest is {precision}"
            )
            checks.append(Check("mixed_precision", True, detail))
        else:
            checks.append(
                Check(
                    "fully_quantized",
                    not bad,
                    f"float tensors around {', '.join(bad)}: {profile.name} runs only "
                    f"{', '.join(quant.precisions)}"
                    if bad
                    else f"no float activations: {precision}{io_note}",
                )
            )
    return checks


def float_ops(model: TFLiteModel) -> list[str]:
    """'#12 NEG' for each op that computes in float inside a quantized model (not the
    QUANTIZE/DEQUANTIZE ops at its edges)."""
    found = []
    for op in model.operators:
        if op.name in ("QUANTIZE", "DEQUANTIZE"):
            continue
        if any(idx >= 0 and model.tensors[idx].dtype in FLOATS for idx in op.outputs):
            found.append(f"#{op.index} {op.name}")
    return found


def check_runtime_ops(model: TFLiteModel, profile: TargetProfile) -> Check:
    """Would the device's runtime know every op at its version?"""
    if profile.op_rules == "tflm" or profile.runtime == "tflm":
        lacking = missing_ops(model, profile.coprocessors)
        if lacking:
            names = ", ".join(describe_missing(op) for op in lacking)
            return Check("runtime_ops", False, f"TFLM has no kernel for: {names}")
        return Check(
            "runtime_ops",
            True,
            f"TFLM has kernels for all {len(model.used_opcodes)} op types "
            "(TFLM resolves by builtin code and does not check op versions)",
        )
    runtime = profile.runtime_version
    too_new, unknown = [], []
    for op, version in model.used_opcodes:
        needed = min_runtime_for(op, version)
        if needed is None:
            unknown.append(f"{op} v{version}")
        elif version_tuple(needed) > version_tuple(runtime):
            too_new.append(f"{op} version {version} needs runtime {needed}")
    meta = model.min_runtime_version
    if meta and version_tuple(meta) > version_tuple(runtime):
        too_new.append(f"model metadata min_runtime_version {meta}")
    if too_new:
        return Check(
            "runtime_ops",
            False,
            f"{'; '.join(too_new)}; {profile.name} typically runs "
            f"{profile.runtime_label or runtime}"
            ' ("Didn\'t find op for builtin opcode" on the device)',
        )
    note = f"; versions not in edgekit's table: {', '.join(unknown)}" if unknown else ""
    return Check("runtime_ops", True, f"every op version runs on runtime {runtime} or newer{note}")


def check_allowed_ops(model: TFLiteModel, profile: TargetProfile) -> Check | None:
    if not profile.allowed_ops:
        return None
    extra = sorted({op for op, _ in model.used_opcodes} - set(profile.allowed_ops))
    return Check(
        "allowed_ops",
        not extra,
        f"not allowed on {profile.name}: {', '.join(extra)}" if extra else "all ops allowed",
    )


def check_flash(model_bytes: int, profile: TargetProfile) -> Check | None:
    memory = profile.memory
    return _budget(
        "flash_budget",
        "model",
        "flash",
        model_bytes,
        memory.model_flash_bytes,
        memory.flash_bytes,
        memory.reserve_flash_bytes,
    )


def check_ram(arena_bytes: int, profile: TargetProfile) -> Check | None:
    memory = profile.memory
    return _budget(
        "ram_budget",
        "tensor arena",
        "RAM",
        arena_bytes,
        memory.arena_ram_bytes,
        memory.ram_bytes,
        memory.reserve_ram_bytes,
    )


def _budget(
    name: str,
    what: str,
    where: str,
    used: int,
    available: int | None,
    total: int | None,
    reserve: int | None,
) -> Check | None:
    """`used` against what the profile leaves of `total` after its `reserve` (None: no
    budget)."""
    if available is None:
        return None
    detail = (
        f"{what} needs {kib(used)}; {kib(available)} of {where} available "
        f"({kib(total)} minus {kib(reserve)} reserve)"
    )
    return Check(name, used <= available, detail)


def check_edgetpu(model: TFLiteModel, profile: TargetProfile) -> tuple[list[Check], Any]:
    analysis = analyze(model, profile.memory.parameter_cache_bytes)
    first = analysis.first_cpu_op
    total = len(analysis.placements)
    boundary = analysis.boundary_ops
    note = f" ({len(boundary)} float IO conversion op(s) on the CPU)" if boundary else ""
    mapping = Check(
        "edgetpu_ops",
        first is None,
        f"{len(analysis.mapped)} of {total} ops map to the Edge TPU{note}"
        if first is None
        else f"{len(analysis.mapped)} of {total} ops on the Edge TPU; CPU from op #{first.index} "
        f"{first.op}: {first.reason}",
    )
    cache_check = Check(
        "edgetpu_parameter_cache",
        analysis.fits_cache,
        f"parameters {kib(analysis.parameter_bytes)} of {kib(analysis.cache_bytes)} on-chip cache",
    )
    return [mapping, cache_check], analysis


def check_model(
    model: TFLiteModel,
    profile: TargetProfile,
    arena_bytes: int | None = None,
    measure: bool = True,
) -> list[Check]:
    """Every check that needs only the model file, and the RAM budget when the arena is known.

    For MCU targets with no `arena_bytes`, the arena is measured here with TFLM unless
    `measure` is False (the deploy pipeline measures it in its own step).
    """
    runtime_ops = check_runtime_ops(model, profile)
    checks = [check_static_shapes(model, profile), *check_quantization(model, profile), runtime_ops]
    for extra in (check_allowed_ops(model, profile), check_flash(model.size_bytes, profile)):
        if extra is not None:
            checks.append(extra)
    if profile.uses_edgetpu:
        checks += check_edgetpu(model, profile)[0]
    if profile.is_mcu and arena_bytes is None and measure and runtime_ops.ok:
        try:
            arena_bytes = measure_arena(model).tensor_arena_bytes
        except ToolError as exc:
            checks.append(Check("tflm_runs", False, str(exc)))
    if profile.is_mcu and arena_bytes is not None:
        ram = check_ram(arena_bytes, profile)
        if ram is not None:
            checks.append(ram)
    return checks


# The checks that say whether a model fits the target's budgets and runtime (what
# TargetFitCheck and `edgekit fit` call "fits").
BUDGET_CHECKS = frozenset({"flash_budget", "ram_budget", "edgetpu_parameter_cache", "runtime_ops"})


def fits_budget(checks: tuple[Check, ...] | list[Check]) -> bool:
    """Every budget check among `checks` passed.

    >>> fits_budget([Check("ram_budget", True, ""), Check("top1_agreement", False, "")])
    True
    """
    return all(c.ok for c in checks if c.name in BUDGET_CHECKS)
