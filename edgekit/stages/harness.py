"""The harness stage: the target's benchmark harness, copied into the bundle, and the
commands that run it (relative to the bundle directory).

>>> from edgekit.stages.harness import add_harness                               # doctest: +SKIP
>>> add_harness(profile, staging, "digits_int8.tflite", None).section.host       # doctest: +SKIP
'edgekit bench . --device ssh://USER@HOST'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.bench.bundle import bench_commands, copy_harness
from edgekit.report import BenchSection
from edgekit.targets import TargetProfile

NO_EDGETPU_MODEL = (
    "no Edge TPU-compiled model in the bundle: the benchmark commands run the int8 model on the "
    "CPU; after compiling (command in the Edge TPU section), `edgekit bench . --device local` "
    "uses the Edge TPU"
)


@dataclass(frozen=True)
class Harness:
    """The harness files written into the bundle, and the commands."""

    files: tuple[Path, ...]
    section: BenchSection
    note: str | None = None


def add_harness(
    profile: TargetProfile, bundle_dir: Path, model_file: str, edgetpu_model: str | None
) -> Harness:
    """Copy the profile's harness into `bundle_dir`; the commands bench `model_file` (or, for
    the Edge TPU, the compiled `edgetpu_model`, when the compiler ran)."""
    files = tuple(copy_harness(profile.harness, bundle_dir))
    delegate, host_delegate, note = profile.delegate, None, None
    if profile.uses_edgetpu:
        if edgetpu_model is not None:
            model_file = edgetpu_model
        else:
            delegate = host_delegate = "xnnpack"
            note = NO_EDGETPU_MODEL
    commands = bench_commands(
        profile.harness,
        profile.transport,
        model_file,
        profile.threads,
        delegate,
        host_delegate,
        cpu=profile.firmware.cpu if profile.firmware else None,
    )
    section = BenchSection(harness=profile.harness, transport=profile.transport, **commands)
    return Harness(files, section, note)
