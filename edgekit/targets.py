"""Target profiles: what a device runs, what it accepts and how much room it has.

Profiles are TOML files (`targets/*.toml` ships thirteen). Users add their own from a directory
given by `--targets-dir` or `EDGEKIT_TARGETS_PATH` (os.pathsep-separated). A user profile with a
built-in's name replaces it. Every file is validated when loaded; a bad one is one error naming
the file and the field.

Profile layout (every key is documented in docs/targets.md)::

    name = "cortex-m4"                 # what --target takes
    aliases = []                       # other names
    description = "..."
    family = "mcu"                     # android | linux | coral | mcu
    runtime = "tflm"                   # litert | tflm: the reference runtime for verification
    runtime_version = "..."            # what devices typically carry
    runtime_label = "..."              # human description of that runtime
    harness = "mcu"                    # linux | android | mcu: which devices/ harness benchmarks it
    transport = "serial"               # local | ssh | adb | serial
    [quantization]
    scheme = "int8"                    # int8 | float16 | dynamic | int16x8 | float32
    io_dtype = "int8"                  # int8 | uint8 | float32 (int16 for int16x8)
    per_channel = true
    [ops]
    rules = "tflm"                     # litert | tflm | edgetpu: which rule set judges the ops
    allowed = []                       # optional allow-list of builtin op names
    coprocessors = []                  # e.g. ["ethos-u"]: NPUs whose custom ops the device runs
    [memory]                           # all optional; bytes
    flash_bytes, ram_bytes, reserve_flash_bytes, reserve_ram_bytes, parameter_cache_bytes
    [execution]
    threads = 1
    delegate = "none"                  # none | xnnpack | edgetpu | gpu | nnapi
    channel_tile = 16                  # optional: the int8 kernels' output-channel tile
    [firmware]                         # optional (mcu): how `--device qemu` builds and runs it
    cpu = "cortex-m4"                  # the board port's CPU
    cpu_flags = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]
    qemu_board = "mps2-an386"          # QEMU machine with that CPU
    clock_hz = 64000000                # optional, with cpi: a labelled ms estimate
    cpi = 1.3                          # optional: documented cycles per instruction
    [npu]                              # optional (mcu): an Arm Ethos-U beside the CPU, via Vela
    accelerator = "ethos-u55-128"      # Vela's --accelerator-config
    system_config = "Ethos_U55_High_End_Embedded"  # a section of Vela's config file
    memory_mode = "Shared_Sram"        # another section of it
    config = "Arm/vela.ini"            # the file: Vela's own (this name) or a path
    arena_cache_bytes = 393216         # optional: Vela's --arena-cache-size (Dedicated_Sram)
    sram_bytes = 393216                # optional: the SRAM Vela may use (default: the arena RAM)
    [delegates.gpu]                    # optional per-delegate overrides
    quantization = "float16"
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from edgekit.errors import UsageError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

FAMILIES = ("android", "linux", "coral", "mcu")
RUNTIMES = ("litert", "tflm")
HARNESSES = ("linux", "android", "mcu")
TRANSPORTS = ("local", "ssh", "adb", "serial")
SCHEMES = ("int8", "float16", "dynamic", "int16x8", "float32")
# Which delegates each harness can apply (an MCU's TFLM has none).
HARNESS_DELEGATES = {
    "linux": ("xnnpack", "none", "edgetpu"),
    "android": ("xnnpack", "gpu", "nnapi", "none"),
    "mcu": ("none",),
}
# A family's devices are benchmarked by one harness.
FAMILY_HARNESS = {"android": "android", "linux": "linux", "coral": "linux", "mcu": "mcu"}
DEFAULT_PRECISIONS = {
    "tflm": ("int8", "int16x8", "float32"),
    "litert": ("int8", "int16x8", "float16", "dynamic", "float32"),
}
IO_DTYPES = ("int8", "uint8", "int16", "float32")
OP_RULES = ("litert", "tflm", "edgetpu")
DELEGATES = ("none", "xnnpack", "edgetpu", "gpu", "nnapi")
MEMORY_FIELDS = (
    "flash_bytes",
    "ram_bytes",
    "reserve_flash_bytes",
    "reserve_ram_bytes",
    "parameter_cache_bytes",
)
ENV_TARGETS_PATH = "EDGEKIT_TARGETS_PATH"
# 2.16.1, 2.5.0.post1, 2.14.0rc1, 2.16.1+local
VERSION_PATTERN = r"\d+(\.\d+){0,3}(\.?(post|dev|rc|a|b)\d+)?([+-][0-9A-Za-z.]+)?"


@dataclass(frozen=True)
class Quantization:
    """How a target wants the model quantized."""

    scheme: str = "int8"
    io_dtype: str = "int8"
    per_channel: bool = True
    precisions: tuple[str, ...] = ("int8",)  # what the target's runtime has kernels for

    @property
    def needs_calibration(self) -> bool:
        """Full-integer schemes need representative inputs to fix activation ranges."""
        return self.scheme in ("int8", "int16x8")


@dataclass(frozen=True)
class MemoryBudget:
    """Flash and RAM on the device, and what code, stack and heap keep for themselves."""

    flash_bytes: int | None = None
    ram_bytes: int | None = None
    reserve_flash_bytes: int = 0
    reserve_ram_bytes: int = 0
    parameter_cache_bytes: int | None = None

    @property
    def model_flash_bytes(self) -> int | None:
        """Flash left for the model after the reserve, or None when unbounded."""
        return None if self.flash_bytes is None else self.flash_bytes - self.reserve_flash_bytes

    @property
    def arena_ram_bytes(self) -> int | None:
        """RAM left for the tensor arena after the reserve, or None when unbounded."""
        return None if self.ram_bytes is None else self.ram_bytes - self.reserve_ram_bytes


# what devices/mcu/boards/mps2 builds for
QEMU_CPUS = ("cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")
# Vela 5.2's --accelerator-config choices
NPU_ACCELERATORS = (
    "ethos-u55-32",
    "ethos-u55-64",
    "ethos-u55-128",
    "ethos-u55-256",
    "ethos-u65-256",
    "ethos-u65-512",
    "ethos-u85-128",
    "ethos-u85-256",
    "ethos-u85-512",
    "ethos-u85-1024",
    "ethos-u85-2048",
)


@dataclass(frozen=True)
class Npu:
    """An Arm Ethos-U NPU beside the microcontroller's CPU (`[npu]`): how Vela compiles for it.

    >>> Npu("ethos-u55-128", "Ethos_U55_High_End_Embedded", "Shared_Sram").macs_per_cycle
    128
    """

    accelerator: str
    system_config: str
    memory_mode: str
    config: str = "Arm/vela.ini"
    arena_cache_bytes: int | None = None
    sram_bytes: int | None = None  # the budget for Vela's SRAM figure; None: the arena RAM

    @property
    def macs_per_cycle(self) -> int:
        """The MAC units: the number at the end of the accelerator's name."""
        return int(self.accelerator.rsplit("-", 1)[1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "accelerator": self.accelerator,
            "system_config": self.system_config,
            "memory_mode": self.memory_mode,
            "config": self.config,
            "arena_cache_bytes": self.arena_cache_bytes,
            "sram_bytes": self.sram_bytes,
        }


@dataclass(frozen=True)
class Firmware:
    """How a microcontroller target's firmware is built and simulated (`[firmware]`)."""

    cpu: str
    cpu_flags: tuple[str, ...]
    qemu_board: str | None = None
    clock_hz: int | None = None
    cpi: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu": self.cpu,
            "cpu_flags": list(self.cpu_flags),
            "qemu_board": self.qemu_board,
            "clock_hz": self.clock_hz,
            "cpi": self.cpi,
        }


@dataclass(frozen=True)
class TargetProfile:
    """One device family's deployment rules. Load with :func:`load_target`.

    >>> profile = load_target("cortex-m4")
    >>> profile.runtime, profile.quantization.io_dtype
    ('tflm', 'int8')
    """

    name: str
    description: str
    family: str
    runtime: str
    runtime_version: str
    runtime_label: str
    harness: str
    transport: str
    quantization: Quantization
    op_rules: str
    memory: MemoryBudget
    threads: int = 1
    delegate: str = "none"
    aliases: tuple[str, ...] = ()
    allowed_ops: tuple[str, ...] = ()
    coprocessors: tuple[str, ...] = ()
    channel_tile: int | None = None  # channels the int8 kernels process at a time
    firmware: Firmware | None = None  # MCUs: CPU flags and QEMU board for --device qemu
    npu: Npu | None = None  # MCUs with an Ethos-U: what Vela compiles for
    delegate_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""

    @property
    def is_mcu(self) -> bool:
        """Runs TFLM on a microcontroller (no OS, no delegates, an arena to size)."""
        return self.runtime == "tflm"

    @property
    def uses_edgetpu(self) -> bool:
        """The model is compiled for and runs on an Edge TPU."""
        return self.delegate == "edgetpu"

    @property
    def runtime_text(self) -> str:
        """ "litert 2.16.1", "tflm (source build)": the runtime and the version devices run."""
        if self.runtime == "tflm":
            return f"tflm ({self.runtime_version})"
        return f"{self.runtime} {self.runtime_version}"

    def with_delegate(self, delegate: str) -> TargetProfile:
        """The same profile with another delegate, applying that delegate's overrides.

        >>> load_target("android-arm64").with_delegate("gpu").quantization.scheme
        'float16'
        """
        if delegate not in DELEGATES:
            raise UsageError(
                f"unknown delegate {delegate!r}; expected one of: {', '.join(DELEGATES)}"
            )
        allowed = HARNESS_DELEGATES[self.harness]
        if delegate not in allowed:
            if self.is_mcu:
                why = f"target {self.name} runs TFLM, which has no delegates"
            else:
                why = f"the {self.harness} harness of target {self.name} cannot apply it"
            raise UsageError(f"--delegate {delegate}: {why}; expected one of: {', '.join(allowed)}")
        override = self.delegate_overrides.get(delegate, {})
        quant = self.quantization
        if "quantization" in override:
            scheme = override["quantization"]
            io = "float32" if scheme in ("float16", "float32", "dynamic") else quant.io_dtype
            quant = replace(quant, scheme=scheme, io_dtype=io)
        rules = self.op_rules
        if rules == "edgetpu" and delegate != "edgetpu":
            rules = "litert"  # the CPU runs it: LiteRT's rules, not the compiler's
        return replace(self, delegate=delegate, quantization=quant, op_rules=rules)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for reports and `--json`."""
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "description": self.description,
            "family": self.family,
            "runtime": self.runtime,
            "runtime_version": self.runtime_version,
            "runtime_label": self.runtime_label,
            "harness": self.harness,
            "transport": self.transport,
            "quantization": {
                "scheme": self.quantization.scheme,
                "io_dtype": self.quantization.io_dtype,
                "per_channel": self.quantization.per_channel,
                "precisions": list(self.quantization.precisions),
            },
            "ops": {
                "rules": self.op_rules,
                "allowed": list(self.allowed_ops),
                "coprocessors": list(self.coprocessors),
            },
            "memory": {name: getattr(self.memory, name) for name in MEMORY_FIELDS},
            "execution": {
                "threads": self.threads,
                "delegate": self.delegate,
                "channel_tile": self.channel_tile,
            },
            "delegates": self.delegate_overrides,
            **({"firmware": self.firmware.to_dict()} if self.firmware else {}),
            **({"npu": self.npu.to_dict()} if self.npu else {}),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> TargetProfile:
        """Read back :meth:`to_dict` (a bundle's effective profile), validated like a file."""
        if not isinstance(data, dict):
            raise UsageError(f"{source}: the target profile is not a table")
        table = {k: v for k, v in data.items() if k != "source"}
        for section in ("memory", "execution", "firmware", "npu"):  # unset fields come back null
            values = table.get(section)
            if isinstance(values, dict):
                table[section] = {k: v for k, v in values.items() if v is not None}
        return parse_profile(table, source)


class _Fields:
    """Reads typed fields out of one TOML table, naming file and field on any error."""

    def __init__(self, source: str, table: dict[str, Any], prefix: str = "") -> None:
        self.source, self.table, self.prefix = source, table, prefix

    def fail(self, key: str, message: str) -> UsageError:
        return UsageError(f"{self.source}: field '{self.prefix}{key}' {message}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., choices=()) -> Any:
        if key not in self.table:
            if default is ...:
                raise self.fail(key, "is missing")
            return default
        value = self.table[key]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(key, f"must be {names}; received {value!r}")
        if choices and value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}; received {value!r}")
        if kind is int and value < 0:
            raise self.fail(key, f"must be >= 0; received {value}")
        return value

    def sub(self, key: str) -> _Fields:
        table = self.get(key, dict, default={})
        return _Fields(self.source, table, f"{self.prefix}{key}.")

    def reject_unknown(self, known: tuple[str, ...]) -> None:
        for key in self.table:
            if key not in known:
                raise self.fail(key, f"is not a profile field (known: {', '.join(known)})")


def parse_profile(data: dict[str, Any], source: str) -> TargetProfile:
    """Validate one profile's TOML table. Errors name `source` and the field."""
    top = _Fields(source, data)
    top.reject_unknown(
        (
            "name",
            "aliases",
            "description",
            "family",
            "runtime",
            "runtime_version",
            "runtime_label",
            "harness",
            "transport",
            "quantization",
            "ops",
            "memory",
            "execution",
            "delegates",
            "firmware",
            "npu",
        )
    )
    quant = top.sub("quantization")
    quant.reject_unknown(("scheme", "io_dtype", "per_channel", "precisions"))
    ops = top.sub("ops")
    ops.reject_unknown(("rules", "allowed", "coprocessors"))
    mem = top.sub("memory")
    mem.reject_unknown(MEMORY_FIELDS)
    exe = top.sub("execution")
    exe.reject_unknown(("threads", "delegate", "channel_tile"))
    delegates = top.get("delegates", dict, default={})
    for name, override in delegates.items():
        sub = top.sub("delegates").sub(name)
        if name not in DELEGATES:
            raise top.fail(f"delegates.{name}", f"is not a delegate ({', '.join(DELEGATES)})")
        sub.reject_unknown(("quantization",))
        sub.get("quantization", str, default="", choices=SCHEMES)
        delegates[name] = dict(override)

    runtime = top.get("runtime", str, choices=RUNTIMES)
    scheme = quant.get("scheme", str, choices=SCHEMES)
    io_dtype = quant.get("io_dtype", str, choices=IO_DTYPES)
    if scheme in ("float16", "float32", "dynamic") and io_dtype != "float32":
        raise quant.fail("io_dtype", f"must be float32 for scheme {scheme!r}")
    if runtime == "tflm" and scheme not in ("int8", "int16x8", "float32"):
        raise quant.fail("scheme", f"{scheme!r} is not supported by TFLM (use int8)")
    allowed = ops.get("allowed", list, default=[])
    if not all(isinstance(op, str) for op in allowed):
        raise ops.fail("allowed", "must be a list of builtin op names")
    runtime_version = top.get("runtime_version", str)
    if runtime == "litert" and not re.fullmatch(VERSION_PATTERN, runtime_version):
        raise top.fail(
            "runtime_version",
            f'must be a version such as "2.16.1" (op versions are checked against it); '
            f"received {runtime_version!r}",
        )
    coprocessors = ops.get("coprocessors", list, default=[])
    if not all(isinstance(c, str) for c in coprocessors):
        raise ops.fail("coprocessors", 'must be a list of names, e.g. ["ethos-u"]')
    precisions = quant.get("precisions", list, default=list(DEFAULT_PRECISIONS[runtime]))
    if not precisions or not all(isinstance(p, str) and p in SCHEMES for p in precisions):
        raise quant.fail("precisions", f"must be a list of: {', '.join(SCHEMES)}")
    if scheme not in precisions:
        raise quant.fail("precisions", f"must include the scheme {scheme!r}")
    memory = MemoryBudget(
        **{
            name: mem.get(name, int, default=0 if name.startswith("reserve") else None)
            for name in MEMORY_FIELDS
        }
    )
    for budget, reserve in (
        ("flash_bytes", "reserve_flash_bytes"),
        ("ram_bytes", "reserve_ram_bytes"),
    ):
        total = getattr(memory, budget)
        if total is not None and getattr(memory, reserve) >= total:
            raise mem.fail(reserve, f"must be smaller than {budget} ({total})")
    aliases = top.get("aliases", list, default=[])
    if not all(isinstance(a, str) and a.strip() for a in aliases):
        raise top.fail("aliases", f"must be a list of non-empty names; received {aliases!r}")
    name = top.get("name", str)
    if not name.strip() or name != name.strip() or "/" in name:
        raise top.fail("name", f"must be a non-empty name without spaces or '/'; received {name!r}")
    family = top.get("family", str, choices=FAMILIES)
    harness = top.get("harness", str, choices=HARNESSES)
    if FAMILY_HARNESS[family] != harness:
        raise top.fail(
            "harness",
            f"must be {FAMILY_HARNESS[family]!r} for family {family!r}; received {harness!r}",
        )
    if (runtime == "tflm") != (family == "mcu"):
        raise top.fail("runtime", f"{runtime!r} does not fit family {family!r} (TFLM is for mcu)")
    threads = exe.get("threads", int, default=1)
    channel_tile = exe.get("channel_tile", int, default=None)
    if channel_tile is not None and channel_tile < 1:
        raise exe.fail("channel_tile", f"must be >= 1; received {channel_tile}")
    if threads < 1:
        raise exe.fail("threads", f"must be >= 1; received {threads}")
    delegate = exe.get("delegate", str, default="none", choices=DELEGATES)
    if delegate not in HARNESS_DELEGATES[harness]:
        raise exe.fail(
            "delegate",
            f"must be one of {', '.join(HARNESS_DELEGATES[harness])} for the {harness} harness",
        )
    # Settings nothing would read are refused, not carried: a GPU override on an MCU.
    for override in delegates:
        if override not in HARNESS_DELEGATES[harness]:
            raise top.fail(
                f"delegates.{override}", f"is for a delegate the {harness} harness does not have"
            )
    if memory.parameter_cache_bytes is not None and family != "coral":
        raise mem.fail("parameter_cache_bytes", "is the Edge TPU's cache: for coral targets only")
    firmware = _firmware(top, family)
    npu = _npu(top, family, coprocessors)
    return TargetProfile(
        name=name,
        aliases=tuple(aliases),
        description=top.get("description", str),
        family=family,
        runtime=runtime,
        runtime_version=runtime_version,
        runtime_label=top.get("runtime_label", str, default=""),
        harness=harness,
        transport=top.get("transport", str, choices=TRANSPORTS),
        quantization=Quantization(
            scheme=scheme,
            io_dtype=io_dtype,
            per_channel=quant.get("per_channel", bool, default=True),
            precisions=tuple(precisions),
        ),
        op_rules=ops.get("rules", str, default=runtime, choices=OP_RULES),
        allowed_ops=tuple(allowed),
        coprocessors=tuple(coprocessors),
        channel_tile=channel_tile,
        firmware=firmware,
        npu=npu,
        memory=memory,
        threads=threads,
        delegate=delegate,
        delegate_overrides=delegates,
        source=source,
    )


def _firmware(top: _Fields, family: str) -> Firmware | None:
    if "firmware" not in top.table:
        return None
    fw = top.sub("firmware")
    fw.reject_unknown(("cpu", "cpu_flags", "qemu_board", "clock_hz", "cpi"))
    if family != "mcu":
        raise top.fail("firmware", "is for mcu targets (TFLM firmware)")
    flags = fw.get("cpu_flags", list)
    if not flags or not all(isinstance(f, str) and f.startswith("-") for f in flags):
        raise fw.fail("cpu_flags", f"must be a list of compiler flags; received {flags!r}")
    board = fw.get("qemu_board", str, default=None)
    if board is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", board):
        raise fw.fail("qemu_board", f"must be a QEMU machine name; received {board!r}")
    clock = fw.get("clock_hz", int, default=None)
    cpi = fw.get("cpi", (int, float), default=None)
    if isinstance(cpi, bool):
        raise fw.fail("cpi", f"must be a number; received {cpi!r}")
    for key, value in (("clock_hz", clock), ("cpi", cpi)):
        if value is not None and not value > 0:
            raise fw.fail(key, f"must be > 0; received {value!r}")
    return Firmware(
        cpu=fw.get("cpu", str, choices=QEMU_CPUS),
        cpu_flags=tuple(flags),
        qemu_board=board,
        clock_hz=clock,
        cpi=None if cpi is None else float(cpi),
    )


def _npu(top: _Fields, family: str, coprocessors: list[str]) -> Npu | None:
    if "npu" not in top.table:
        return None
    npu = top.sub("npu")
    npu.reject_unknown(
        ("accelerator", "system_config", "memory_mode", "config", "arena_cache_bytes", "sram_bytes")
    )
    if family != "mcu":
        raise top.fail("npu", "is for mcu targets (an Ethos-U beside a Cortex-M)")
    if "ethos-u" not in coprocessors:
        raise top.fail("npu", 'needs ops.coprocessors = ["ethos-u"] (the device runs its op)')
    names = {}
    for key in ("system_config", "memory_mode", "config"):
        value = npu.get(key, str, default="Arm/vela.ini" if key == "config" else ...)
        if not value.strip():
            raise npu.fail(key, "must not be empty")
        names[key] = value
    return Npu(
        accelerator=npu.get("accelerator", str, choices=NPU_ACCELERATORS),
        arena_cache_bytes=npu.get("arena_cache_bytes", int, default=None),
        sram_bytes=npu.get("sram_bytes", int, default=None),
        **names,
    )


def load_profile_file(path: str | os.PathLike[str]) -> TargetProfile:
    """Read and validate one profile file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read profile ({exc.strerror})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from exc
    return parse_profile(data, str(path))


def _search_dirs(targets_dir: str | os.PathLike[str] | None) -> list[Path]:
    dirs = [Path(p) for p in os.environ.get(ENV_TARGETS_PATH, "").split(os.pathsep) if p]
    if targets_dir is not None:
        dirs.append(Path(targets_dir))
    for directory in dirs:
        if not directory.is_dir():
            raise UsageError(f"targets directory {directory} does not exist")
    return dirs


def list_targets(targets_dir: str | os.PathLike[str] | None = None) -> list[TargetProfile]:
    """All profiles: the built-in ones, then user directories (a later name wins).

    >>> [p.name for p in list_targets()][:2]
    ['android-arm64', 'coral-devboard']
    """
    found: dict[str, TargetProfile] = {}
    builtin = resources.files("edgekit.profiles")
    for entry in sorted(builtin.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            with resources.as_file(entry) as path:
                profile = load_profile_file(path)
            found[profile.name] = replace(profile, source=f"built-in:{entry.name}")
    for directory in _search_dirs(targets_dir):
        for path in sorted(directory.glob("*.toml")):
            profile = load_profile_file(path)
            found[profile.name] = profile
    return sorted(found.values(), key=lambda p: p.name)


def load_target(
    name: str | os.PathLike[str] | TargetProfile,
    targets_dir: str | os.PathLike[str] | None = None,
) -> TargetProfile:
    """Find a profile by name or alias, or read it from a `.toml` path.

    >>> load_target("coral").name
    'coral-usb'
    """
    if isinstance(name, TargetProfile):
        return name
    name = os.fspath(name)
    if name.endswith(".toml") and Path(name).is_file():
        return load_profile_file(name)
    profiles = list_targets(targets_dir)
    for profile in profiles:
        if name == profile.name or name in profile.aliases:
            return profile
    names = [p.name for p in profiles] + [a for p in profiles for a in p.aliases]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UsageError(
        f"unknown target {name!r}{hint} (run 'edgekit targets list' to see all targets)"
    )
