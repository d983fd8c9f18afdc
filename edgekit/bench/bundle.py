"""What a deploy bundle carries for benchmarking: its target's harness and the commands to run it.

- `linux` targets get `harness/edgekit_harness.py` (copy the bundle to the board and run the
  on-device command, or run `edgekit bench . --device ssh://...` from the host);
- `mcu` targets get the TFLM harness sources (`main.cc`, the platform and protocol headers,
  CMake with an arm-none-eabi toolchain file, PlatformIO, and board ports: `boards/mps2` for
  QEMU's Cortex-M4/M7/M33/M55 boards with its own Makefile, `boards/host` for this machine) beside
  the bundle's `tflm/` folder;
- `android` targets use Google's `benchmark_model` binary: the command pushes and runs it.

Every command is meant to be run in the bundle directory, with paths relative to it, and every
word is shell-quoted (a device URI such as `serial:///dev/ttyACM0?baud=115200` holds a `?`).

>>> bench_commands("mcu", "serial", "m_int8.tflite", 1, "none")["host"]
"edgekit bench . --device 'serial:///dev/ttyACM0?baud=115200'"
"""

from __future__ import annotations

import shlex
import shutil
from importlib import resources
from pathlib import Path

HARNESS_FILES = {
    "linux": ("edgekit.devices.linux", ("edgekit_harness.py",)),
    "mcu": (
        "edgekit.devices.mcu",
        (
            "main.cc",
            "edgekit_platform.h",
            "edgekit_protocol.h",
            "CMakeLists.txt",
            "arm-none-eabi.cmake",
            "platformio.ini",
            "README.md",
            "boards/mps2/Makefile",
            "boards/mps2/mps2.ld",
            "boards/mps2/an505.ld",
            "boards/mps2/an547.ld",
            "boards/mps2/sections.ld",
            "boards/mps2/mps2.h",
            "boards/mps2/device/ARMCM33.h",
            "boards/mps2/device/ARMCM55.h",
            "boards/mps2/device/armv8m_irqn.h",
            "boards/mps2/startup.c",
            "boards/mps2/board.c",
            "boards/host/host.c",
        ),
    ),
    "android": ("edgekit.devices", ()),
}
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
        source = Path(str(resources.files(package).joinpath(*name.split("/"))))
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, out / name)
        written.append(out / name)
    return written


def _line(*words: str) -> str:
    return " ".join(shlex.quote(word) for word in words)


def bench_commands(
    harness: str,
    transport: str,
    model_file: str,
    threads: int,
    delegate: str,
    host_delegate: str | None = None,
    cpu: str | None = None,
) -> dict[str, str]:
    """`host`: the edgekit bench line; `on_device`: the harness on the board itself;
    `simulate`: TFLM on this host (MCUs). All run in the bundle directory.

    `host_delegate` overrides the bundle's delegate on the host line (a Coral bundle without
    an Edge TPU-compiled model benchmarks the CPU with `xnnpack`). `cpu` (MCUs with a
    `[firmware]` profile section) adds `emulate` (QEMU) and `build` (CMake) lines.
    """
    host = ["edgekit", "bench", ".", "--device", EXAMPLE_DEVICE[transport]]
    if host_delegate:
        host += ["--delegate", host_delegate]
    commands = {"host": _line(*host)}
    if harness == "linux":
        words = ["python3", "harness/edgekit_harness.py", model_file, "--threads", str(threads)]
        commands["on_device"] = _line(*words, "--delegate", delegate)
    elif harness == "mcu":
        commands["simulate"] = _line("edgekit", "bench", ".", "--device", "tflm-host")
        if cpu:
            commands["emulate"] = _line(
                "edgekit", "bench", ".", "--device", "qemu", "--tflm-dir", "TFLM_TREE"
            )
            # CMake looks a relative toolchain file up in the build directory, then in the
            # source directory (harness/): "harness/arm-none-eabi.cmake" is found in neither.
            # A bare -j starts every one of TFLM's ~300 compilers at once: one per core.
            commands["build"] = (
                f"cmake -S harness -B build-{cpu} -DCMAKE_TOOLCHAIN_FILE=arm-none-eabi.cmake "
                f"-DEDGEKIT_CPU={cpu} -DTFLM_DIR=TFLM_TREE && "
                f'cmake --build build-{cpu} -j "$(nproc)"'
            )
    return commands
