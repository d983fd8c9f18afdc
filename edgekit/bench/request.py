"""What a harness runner is handed: the model file and the run's settings.

:func:`edgekit.bench.runner.bench` builds a :class:`BenchRequest` from the user's arguments;
deploy builds one for its firmware run (:func:`edgekit.bench.qemu.run_firmware`). Each
runner (Linux, Android, TFLM on this host, a board, QEMU) returns a
:class:`~edgekit.bench.result.BenchResult`.

>>> from edgekit.bench.uri import parse_device
>>> from edgekit.targets import load_target
>>> model = BenchModel(Path("m.tflite"), "m.tflite", "ab" * 32)
>>> request = BenchRequest(model, parse_device("local"), load_target("raspberry-pi-4"), {})
>>> request.identity()["harness"], request.identity()["transport"]
('linux', 'local')
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.bench.uri import DeviceURI
from edgekit.data import regular_file
from edgekit.errors import UsageError
from edgekit.targets import TargetProfile
from edgekit.tflite_model import MAX_MODEL_BYTES


@dataclass
class BenchModel:
    """The model file to benchmark, and the arena its bundle measured at deploy time."""

    path: Path
    name: str
    sha256: str
    arena_bytes: int | None = None  # TFLM arena from the bundle's report


def model_file(path: Path) -> BenchModel:
    """`path` checked to be a readable `.tflite` flatbuffer, with its name and sha256.

    >>> model_file(Path("bundle/model.tflite")).sha256[:8]  # doctest: +SKIP
    '3f9c01aa'
    """
    regular_file(path, "model", MAX_MODEL_BYTES)
    data = path.read_bytes()
    if data[4:8] != b"TFL3":
        raise UsageError(f"{path}: not a TFLite flatbuffer")
    return BenchModel(path, path.name, hashlib.sha256(data).hexdigest())


@dataclass
class BenchRequest:
    """Everything a harness runner needs; runners return a BenchResult."""

    model: BenchModel
    device: DeviceURI
    profile: TargetProfile
    settings: dict[str, Any]  # runs, warmup, threads, delegate, input (as recorded)
    input: Path | None = None
    timeout: float = 300.0
    remote_python: str = "python3"
    ssh_config: str | Path | None = None
    benchmark_binary: str | Path | None = None
    tflm_dir: str | Path | None = None  # --device qemu: the TFLM tree to build against
    progress: Callable[[str], None] = print

    def identity(self) -> dict[str, Any]:
        """The BenchResult fields every run has, whatever happened on the device."""
        return dict(
            model_name=self.model.name,
            model_sha256=self.model.sha256,
            target=self.profile.name,
            device=self.device.redacted,
            transport=self.device.scheme,
            harness=self.profile.harness,
            settings=self.settings,
        )
