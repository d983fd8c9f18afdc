"""What "fits" means for `edgekit fit`: budgets, where each is measured, and the verdict.

A budget is checked against a deploy's report (:class:`~edgekit.report.DeployReport`), with
the figure measured where the model will run: the firmware under QEMU for an MCU when it ran
(32-bit arena, ELF flash and RAM, instructions), else the host TFLM estimate, labelled as such;
LiteRT latency on this host for Linux and Android targets. RAM and flash default to what the
target profile leaves after its reserves.

>>> budgets = Budgets(max_ram_bytes=parse_size("96K", "--max-ram"), max_drop=0.01)
>>> budgets.max_ram_bytes
98304
>>> parse_size("2 MB", "--max-flash")
2097152
>>> parse_size("-3", "--max-ram")
Traceback (most recent call last):
...
edgekit.errors.UsageError: --max-ram: expected a positive size such as 256K or 1.5MB; received '-3'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

from edgekit import metrics as M
from edgekit.errors import UsageError
from edgekit.targets import TargetProfile

if TYPE_CHECKING:  # the report pulls in numpy and the runtimes: `edgekit fit --help` stays light
    from edgekit.report import DeployReport

# Not a flag: on Coral targets every op must run on the Edge TPU (a budget of 0 ops on the CPU).
EDGETPU_OPS_ON_CPU = "edgetpu_ops_on_cpu"

# The budgets on accuracy (the others are on resources: RAM, flash, instructions, latency).
ACCURACY_BUDGETS = ("max_drop", "min_accuracy")

# A bare number is KB, as the flags (--max-ram KB, --max-flash KB) say.
_UNITS = {
    "": 1024,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1 << 20,
    "mb": 1 << 20,
    "mib": 1 << 20,
}


def parse_size(text: str | int | float, flag: str) -> int:
    """Bytes from `256`, `256K`, `256KB`, `1.5MB` or `4096B` (a bare number is KB)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS or float(match.group(1)) <= 0:
        raise UsageError(
            f"{flag}: expected a positive size such as 256K or 1.5MB; received {text!r}"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def parse_positive(text: str | int | float, flag: str, what: str, zero: bool = False) -> float:
    """A positive number (`--max-latency-ms 5`, `--max-instructions 2e6`); `zero`: 0 too."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = -1.0
    if not (value > 0 or (zero and value == 0)) or value == float("inf"):
        raise UsageError(f"{flag}: expected a positive {what}; received {text!r}")
    return value


@dataclass(frozen=True)
class Budgets:
    """The limits a fitted model must meet; None: not constrained.

    `max_drop` is in accuracy points as a fraction (0.01 = one point) below the original
    model's, measured on the same data; `min_accuracy` is absolute. At most one of each pair
    (latency or instructions, drop or accuracy) is given.
    """

    max_latency_ms: float | None = None
    max_instructions: int | None = None
    max_ram_bytes: int | None = None
    max_flash_bytes: int | None = None
    max_drop: float | None = None
    min_accuracy: float | None = None

    def __post_init__(self) -> None:
        if self.max_latency_ms is not None and self.max_instructions is not None:
            raise UsageError("give --max-latency-ms or --max-instructions, not both")
        if self.max_drop is not None and self.min_accuracy is not None:
            raise UsageError("give --max-drop or --min-accuracy, not both")
        if self.max_drop is not None and not 0 <= self.max_drop < 1:
            raise UsageError(
                "max_drop: a fraction of accuracy (0.01 = one point; the CLI's --max-drop "
                f"takes points); received {self.max_drop}"
            )
        if self.min_accuracy is not None and not 0 < self.min_accuracy <= 1:
            raise UsageError(
                f"--min-accuracy: a fraction in (0, 1] (0.9 = 90 %); received {self.min_accuracy}"
            )
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ("max_drop",) and value is not None and value <= 0:
                raise UsageError(f"{flag(f.name)}: must be positive; received {value}")

    def for_target(self, profile: TargetProfile) -> Budgets:
        """These budgets with the profile's flash and RAM where none was given, checked
        against what the target can measure (one line, before any training)."""
        memory = profile.memory
        flash = memory.model_flash_bytes
        if profile.uses_edgetpu and memory.parameter_cache_bytes:
            flash = memory.parameter_cache_bytes  # beyond it, weights stream in every inference
        filled = replace(
            self,
            max_ram_bytes=self.max_ram_bytes or memory.arena_ram_bytes,
            max_flash_bytes=self.max_flash_bytes or flash,
        )
        if filled.max_instructions is not None and not profile.is_mcu:
            raise UsageError(
                f"--max-instructions: {profile.name} is not a microcontroller (instructions are "
                "counted under QEMU); give --max-latency-ms"
            )
        if filled.max_latency_ms is not None and profile.is_mcu and not _has_clock(profile):
            raise UsageError(
                f"--max-latency-ms: {profile.name} has no clock_hz and cpi in its [firmware] "
                "section to turn instructions into milliseconds; give --max-instructions"
            )
        return filled


@dataclass(frozen=True)
class Verdict:
    """One budget against its measured figure, and where the figure came from."""

    budget: str
    limit: float
    measured: float | None
    source: str

    @property
    def ok(self) -> bool:
        return self.measured is not None and self.measured <= self.limit


def verdicts(
    report: DeployReport,
    budgets: Budgets,
    profile: TargetProfile,
    baseline_accuracy: float | None = None,
) -> list[Verdict]:
    """Each given budget against the figure `report` measured (accuracy budgets as the
    shortfall, so that every verdict reads `measured <= limit`)."""
    m = report.metrics
    firmware = m.tensor_arena_32bit_bytes is not None
    out = []
    if budgets.max_ram_bytes is not None:
        ram = m.tensor_arena_32bit_bytes if firmware else m.tensor_arena_bytes
        where = "firmware under QEMU (32-bit)" if firmware else "host TFLM (estimate, 64-bit)"
        if not profile.is_mcu:
            ram, where = m.activation_lower_bound_bytes, "activation lower bound (LiteRT)"
        out.append(Verdict("max_ram_bytes", budgets.max_ram_bytes, ram, where))
    if budgets.max_flash_bytes is not None:
        flash = m.model_bytes
        where = "model size (the firmware's code not counted)"
        if profile.uses_edgetpu:
            where = "model size against the Edge TPU's parameter cache"
        out.append(Verdict("max_flash_bytes", budgets.max_flash_bytes, flash, where))
    if profile.uses_edgetpu:
        out.append(_edgetpu_placement(report))
    if budgets.max_instructions is not None:
        out.append(
            Verdict(
                "max_instructions",
                budgets.max_instructions,
                m.instructions_per_inference,
                "firmware under QEMU" if firmware else "not measured (no TFLM tree given)",
            )
        )
    if budgets.max_latency_ms is not None:
        latency, where = _latency(report, profile)
        out.append(Verdict("max_latency_ms", budgets.max_latency_ms, latency, where))
    accuracy = m.deployed_accuracy if m.deployed_accuracy is not None else m.top1_agreement
    label = M.DEPLOYED_ACCURACY if m.deployed_accuracy is not None else M.TOP1_AGREEMENT
    if budgets.min_accuracy is not None:
        short = None if accuracy is None else max(0.0, budgets.min_accuracy - accuracy)
        out.append(Verdict("min_accuracy", 0.0, short, f"{label} below the minimum"))
    if budgets.max_drop is not None:
        drop = (
            None if accuracy is None or baseline_accuracy is None else baseline_accuracy - accuracy
        )
        out.append(Verdict("max_drop", budgets.max_drop, drop, f"{label} below the original's"))
    return out


def _edgetpu_placement(report: DeployReport) -> Verdict:
    """Every op on the Edge TPU: from the compiler's log where `edgetpu_compiler` ran, else
    from edgekit's rule analysis (labelled as such)."""
    section = report.edgetpu
    if section is None:
        return Verdict(EDGETPU_OPS_ON_CPU, 0, None, "not analysed")
    log = section.compiler.log or {}
    if section.compiler.ran and log.get("ops_on_cpu") is not None:
        return Verdict(EDGETPU_OPS_ON_CPU, 0, float(log["ops_on_cpu"]), "edgetpu_compiler's log")
    on_cpu = section.analysis.get("ops_on_cpu")
    where = "rule analysis (edgetpu_compiler not installed)"
    return Verdict(EDGETPU_OPS_ON_CPU, 0, None if on_cpu is None else float(on_cpu), where)


def _latency(report: DeployReport, profile: TargetProfile) -> tuple[float | None, str]:
    m = report.metrics
    if m.device_latency_ms is not None:
        return m.device_latency_ms, "p50 on the device (edgekit bench)"
    if not profile.is_mcu:
        return m.host_latency_ms, "LiteRT on this host (1 thread, XNNPACK)"
    firmware = profile.firmware
    if m.instructions_per_inference is None or firmware is None or not _has_clock(profile):
        return None, "not measured (no firmware run)"
    ms = m.instructions_per_inference * firmware.cpi / firmware.clock_hz * 1e3
    return ms, f"estimate: instructions under QEMU × cpi {firmware.cpi} at {firmware.clock_hz} Hz"


def _has_clock(profile: TargetProfile) -> bool:
    firmware = profile.firmware
    return firmware is not None and bool(firmware.cpi) and bool(firmware.clock_hz)


def flag(budget: str) -> str:
    """The command-line flag a budget is given by (`max_ram_bytes` → `--max-ram`).

    >>> flag("max_ram_bytes"), flag("max_latency_ms")
    ('--max-ram', '--max-latency-ms')
    """
    if budget == EDGETPU_OPS_ON_CPU:  # no flag: every op must run on the Edge TPU
        return "ops left on the CPU (every op on the Edge TPU)"
    return "--" + budget.replace("_bytes", "").replace("_", "-")
