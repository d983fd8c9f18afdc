"""One import namespace, both install modes, and a CLI that starts without TensorFlow."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from a pristine copy of the source: an editable install's
    edgekit.egg-info/SOURCES.txt (or a stale build/) in the checkout would add files the
    pyproject does not declare, and hide a package missing from it."""
    import shutil

    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source") / "edgekit"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            "*.egg-info",
            "build",
            "dist",
            ".git",
            "__pycache__",
            ".venv",
            ".ruff_cache",
            ".pytest_cache",
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("edgekit-*.whl")
    return path


def test_wheel_has_only_the_edgekit_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"edgekit", next(t for t in tops if t.endswith(".dist-info"))}
    for expected in (
        "edgekit/converters/tflm.py",
        "edgekit/converters/edgetpu.py",
        "edgekit/profiles/coral-usb.toml",
        "edgekit/profiles/esp32-s3.toml",
        "edgekit/data/op_runtime_versions.toml",
        "edgekit/devices/__init__.py",
        "edgekit/devices/linux/edgekit_harness.py",
        "edgekit/devices/mcu/main.cc",
        "edgekit/devices/mcu/edgekit_protocol.h",
        "edgekit/devices/mcu/CMakeLists.txt",
        "edgekit/devices/mcu/arm-none-eabi.cmake",
        "edgekit/devices/mcu/boards/mps2/Makefile",
        "edgekit/devices/mcu/boards/mps2/mps2.ld",
        "edgekit/devices/mcu/boards/mps2/startup.c",
        "edgekit/devices/mcu/boards/host/host.c",
        "edgekit/devices/mcu/platformio.ini",
        "edgekit/devices/mcu/simulated_board.py",
        "edgekit/bench/store.py",
        "edgekit/runtimes/tflm.py",
        "edgekit/data/tflm_ops.toml",
        "edgekit/_worker.py",
    ):
        assert expected in names


def test_wheel_has_every_package_of_the_source_tree(wheel):
    # pyproject lists packages by hand (package-dir maps converters/, targets/, devices/ into
    # edgekit): a package missing from that list installs editable but not from a wheel.
    names = set(zipfile.ZipFile(wheel).namelist())
    roots = {
        "edgekit": "edgekit",
        "converters": "edgekit/converters",
        "targets": "edgekit/profiles",
        "devices": "edgekit/devices",
    }
    for source, installed in roots.items():
        for init in (REPO / source).rglob("__init__.py"):
            relative = init.relative_to(REPO / source).as_posix()
            assert f"{installed}/{relative}" in names, f"{source}/{relative} is not in the wheel"


def test_regular_install_in_a_venv(wheel, tmp_path):
    """The wheel in a new venv that sees this environment's dependencies (a .pth file), not
    its edgekit: works whether the tests run on a system Python or inside a venv."""
    import sysconfig

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    probe = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run(
        [str(py), "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "outer-deps.pth").write_text("\n".join(sorted(outer)) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    probe = (
        "import importlib.util, edgekit, edgekit.converters.tflm, edgekit.runtimes.tflm as t;"
        "assert t.op_table()[0]['CONV_2D'] == 'AddConv2D';"
        "print(edgekit.__file__);"
        "print(importlib.util.find_spec('converters'))"
    )
    out = subprocess.run(
        [str(py), "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0].startswith(str(venv)) and out[1] == "None"
    listing = subprocess.run(
        [str(venv / "bin" / "edgekit"), "targets", "list"], capture_output=True, text=True
    )
    assert listing.returncode == 0 and "coral-usb" in listing.stdout


def test_no_generic_top_level_package_in_this_environment(tmp_path):
    probe = "import importlib.util as u; print(u.find_spec('converters'), u.find_spec('targets'))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["None", "None"]


LIGHT = [
    ["--help"],
    ["targets", "list"],
    ["targets", "show", "coral"],
    ["bench", "--help"],
    ["results", "list", "--db", "r.db"],
]


@pytest.mark.parametrize("args", LIGHT)
def test_light_commands_do_not_import_tensorflow(args, tmp_path):
    from edgekit.bench.store import ResultStore

    ResultStore(tmp_path / "r.db")  # `results list` reads an existing store
    _assert_no_tensorflow(args, tmp_path)


def test_local_bench_does_not_import_tensorflow_on_the_host(digits_tflite, tmp_path):
    # The harness runs in its own process with LiteRT only; the host side needs no TF.
    args = ["bench", str(digits_tflite["int8"]), "-t", "rpi4", "--runs", "3", "--db", "r.db"]
    _assert_no_tensorflow(args, tmp_path)


def _assert_no_tensorflow(args, tmp_path):
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "edgekit", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    heavy = {m for m in imported if m.split(".")[0] in ("tensorflow", "tf_keras", "keras")}
    assert not heavy, sorted(heavy)[:5]
    assert "edgekit.cli" in imported


EXAMPLE_DATA = (
    "from edgekit.examples.digits import digits_splits\n"
    "from edgekit.examples.zoo import SPECS, splits\n"
    "digits_splits()\n"
    "for name in SPECS: splits(name)\n"
    "import sys; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
)


def _declared_closure() -> set[str]:
    """The distributions `pip install .` brings: pyproject's dependencies and, transitively,
    theirs (extras left out), as installed here; names normalised."""
    import importlib.metadata as metadata
    import re

    from packaging.requirements import Requirement

    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if norm(req.name) in seen:
            continue
        seen.add(norm(req.name))
        try:
            todo += [Requirement(r) for r in metadata.requires(req.name) or []]
        except metadata.PackageNotFoundError:
            pass
    return seen


def test_every_example_needs_only_what_pip_install_brings():
    # `pip install .` then `edgekit deploy --example resnet8` failed with "PIL is required":
    # scikit-learn's sample photos need Pillow, which nothing declared pulled in. Every module
    # the examples' data imports must come from a declared dependency (or their dependencies).
    import importlib.metadata as metadata
    import re

    out = subprocess.run(
        [sys.executable, "-c", EXAMPLE_DATA],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout.split()
    owners = metadata.packages_distributions()
    closure = _declared_closure()
    missing = {
        (module, dist)
        for module in out
        for dist in owners.get(module, [])
        if re.sub(r"[-_.]+", "-", dist).lower() not in closure | {"edgekit"}
    }
    assert not missing, sorted(missing)
