"""What a deploy bundle carries for benchmarking: its target's harness and the command to run it.

- `linux` targets get `harness/edgekit_harness.py` (copy the bundle to the board and run the
  on-device command, or run `edgekit bench BUNDLE --device ssh://...` from the host);
- `mcu` targets get the TFLM harness sources (`main.cc`, the platform and protocol headers,
  CMake and PlatformIO files) beside the bundle's `tflm/` folder;
- `android` targets use Google's `benchmark_model` binary: the command pushes and runs it.

>>> bench_commands("linux", "ssh", "/b/m-rpi4", "m_int8.tflite", 4, "xnnpack")["host"]
'edgekit bench /b/m-rpi4 --device ssh://USER@HOST'
"""

from __future__ import annotations

import shlex
import shutil
from importlib import resources
from pathlib import Path

HARNESS_FILES = {
    "linux": ("edgekit.devices.linux", ("edgekit_harness.py",)),
    "mcu": ("edgekit.devices.mcu", ("main.cc", "edgekit_platform.h", "edgekit_protocol.h",
                                    "CMakeLists.txt", "platformio.ini", "README.md")),
    "android": ("edgekit.devices", ()),
}  # fmt: skip
EXAMPLE_DEVICE = {
    "local": "local",
    "ssh": "ssh://USER@HOST",
    "adb": "adb://SERIAL",
    "serial": "serial:///dev/ttyACM0?baud=115200",
}


def copy_harness(harness: str, bundle: Path) -> list[Path]:
    """Copy the harness files into `bundle/harness/`; returns the written paths."""
    package, names = HARNESS_FILES[harness]
    if not names:
        return []
    out = bundle / "harness"
    out.mkdir(exist_ok=True)
    written = []
    for name in names:
        source = Path(str(resources.files(package) / name))
        shutil.copyfile(source, out / name)
        written.append(out / name)
    return written


def bench_commands(
    harness: str,
    transport: str,
    bundle: str,
    model_file: str,
    threads: int,
    delegate: str,
) -> dict[str, str]:
    """`host`: the edgekit bench line; `on_device`: run the harness on the board itself."""
    host = f"edgekit bench {shlex.quote(bundle)} --device {EXAMPLE_DEVICE[transport]}"
    commands = {"host": host}
    if harness == "linux":
        words = ["python3", "harness/edgekit_harness.py", model_file, "--threads", str(threads)]
        commands["on_device"] = " ".join(map(shlex.quote, [*words, "--delegate", delegate]))
    elif harness == "mcu":
        commands["simulate"] = f"edgekit bench {shlex.quote(bundle)} --device tflm-host"
    return commands
