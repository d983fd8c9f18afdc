"""A Cortex-M in the loop: the bundle's TFLM firmware built with arm-none-eabi-gcc against TFLM +
CMSIS-NN (../shared/tflm/cortex-m) and run on QEMU's mps2-an386 (Cortex-M4F).

The TFLM library is built once per session (into the session's cache) and reused by every
test here. Missing toolchain or QEMU: the tests skip, unless helpers.required('QEMU') (CI, which
installs them) makes that a failure.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from helpers import REPO, run_edgekit, shared_dir

from edgekit.bench.firmware import PROGRESS_SECONDS
from edgekit.bench.qemu import elf_sizes, qemu_command, run_elf, run_firmware, smallest_arena
from edgekit.bench.result import DeviceFailure
from edgekit.bench.runner import bench
from edgekit.bench.store import ResultStore
from edgekit.bench.tflm_sources import all_sources, library_sources, ops_in
from edgekit.bench.uri import parse_device
from edgekit.errors import UsageError
from edgekit.targets import TargetProfile, load_target

# --- the product path: edgekit bench BUNDLE --device qemu --------------------------------------


@pytest.mark.slow
def test_bundle_runs_on_qemu_bit_exact_with_host_tflm(qemu_run, digits_m4):
    result, db, messages = qemu_run
    assert result.ok, result.error
    assert result.runtime == "tflm (qemu mps2-an386)"  # never "tflm (board)"
    assert result.device == "qemu" and result.device_info["kernels"] == "cmsis-nn"
    assert result.device_info["cpu_flags"][:2] == ["-mcpu=cortex-m4", "-mthumb"]
    host = bench(digits_m4, device="tflm-host", runs=1, warmup=0, record=False)
    assert result.metrics["output_digest"] == host.metrics["output_digest"]
    assert result.metrics["host_output_digest"] == host.metrics["output_digest"]
    # The deploy before built the library: this bench takes it from the cache.
    assert result.metrics["build_seconds"]["library_cached"] is True
    assert not any("building the TFLM library" in m for m in messages)
    assert any("compiling the harness and model for cortex-m4" in m for m in messages)
    assert any("smallest arena" in m for m in messages)
    stored = ResultStore(db).get(result.id)
    assert stored.runtime == result.runtime and stored.metrics["instructions"]


DIGITS_OPS = "".join(
    f"resolver.Add{op}();\n"
    for op in (
        "AveragePool2D",
        "Conv2D",
        "DepthwiseConv2D",
        "FullyConnected",
        "MaxPool2D",
        "Reshape",
        "Softmax",
    )
)


def test_the_library_holds_tflm_s_core_and_only_the_models_kernels(tflm_tree):
    everything = all_sources(tflm_tree)
    chosen = library_sources(tflm_tree, ops_in(DIGITS_OPS))
    assert len(chosen) < len(everything) / 2  # 317 files in the shared CMSIS-NN tree
    kernels = "tensorflow/lite/micro/kernels/"
    cmsis = "third_party/cmsis_nn/Source/"
    for needed in (
        "tensorflow/lite/micro/micro_interpreter.cc",  # the core
        f"{kernels}cmsis_nn/conv.cc",
        f"{kernels}conv_common.cc",  # an op, its helper
        f"{kernels}reshape.cc",
        f"{kernels}kernel_util.cc",  # reference, shared
        f"{cmsis}ConvolutionFunctions/arm_convolve_s8.c",
    ):
        assert needed in chosen, needed
    for unused in (
        f"{kernels}cmsis_nn/svdf.cc",
        f"{kernels}lstm_eval.cc",
        f"{kernels}cmsis_nn/add.cc",
        "signal/src/window.cc",
        "tensorflow/lite/micro/test_helpers.cc",
    ):
        assert unused not in chosen, unused
    # Every op MicroMutableOpResolver can register has its kernel found, in both trees.
    resolver = (tflm_tree / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
    every_op = re.findall(r"TfLiteStatus (Add\w+)\(", resolver)
    assert len(every_op) > 100
    assert set(chosen) < set(library_sources(tflm_tree, every_op))
    reference = shared_dir("tflm") / "host"
    library_sources(reference, every_op)  # raises if a registration is defined nowhere
    assert f"{kernels}conv.cc" in library_sources(reference, ["AddConv2D"])  # reference kernels
    # Helpers named by a function pointer, and tables (data) (found unlinked: see benchmarks.md)
    assert "signal/micro/kernels/fft_auto_scale_common.cc" in library_sources(
        tflm_tree, ["AddFftAutoScale"]
    )
    assert f"{cmsis}NNSupportFunctions/arm_nntables.c" in library_sources(
        tflm_tree, ["AddUnidirectionalSequenceLSTM"]
    )
    with pytest.raises(UsageError, match="calls AddTurbo, which this TFLM tree"):
        library_sources(tflm_tree, ["AddConv2D", "AddTurbo"])


@pytest.mark.slow
def test_a_cold_library_build_shows_progress_with_the_time_left(digits_m4_deploy, tflm_tree):
    bundle, notes = digits_m4_deploy
    starts = [m for _, m in notes if "building the TFLM library once" in m]
    if not starts:
        pytest.skip("the TFLM library was in the cache before this session (EDGEKIT_CACHE_DIR)")
    chosen = library_sources(tflm_tree, ops_in((bundle.path / "tflm/model_ops.h").read_text()))
    assert f": {len(chosen)} files (TFLM's core and the kernels of AveragePool2D" in starts[0]
    assert f"on {os.cpu_count()} cores" in starts[0]
    progress = re.compile(
        r"TFLM library \(cmsis-nn, cortex-m4\): (\d+)/(\d+) files, \d+ s, "
        r"(about \d+ s left|estimating the time left)$"
    )
    shown = [(t, progress.search(m)) for t, m in notes if progress.search(m)]
    assert shown and all(int(m.group(2)) == len(chosen) for _, m in shown)
    assert any(m.group(3).startswith("about") for _, m in shown)
    # every few seconds, whatever one file takes (a loaded CI machine: some slack)
    times = [t for t, _ in shown]
    assert max(b - a for a, b in zip(times, times[1:], strict=False)) < 4 * PROGRESS_SECONDS
    from edgekit.bench.firmware import cache_dir

    # other tests build cortex-m4 libraries for other kernel sets: one of them is this one
    listings = cache_dir("tflm-lib").glob("cortex-m4-cmsis-nn-*/sources.txt")
    assert chosen in [listing.read_text().split() for listing in listings]


@pytest.mark.slow
def test_json_output_keeps_progress_on_stderr(digits_m4, tflm_tree, tmp_path):
    benched = run_edgekit(
        "bench",
        str(digits_m4),
        "--device",
        "qemu",
        "--tflm-dir",
        str(tflm_tree),
        "--runs",
        "2",
        "--warmup",
        "0",
        "--no-record",
        "--json",
    )
    assert benched.returncode == 0, benched.stderr
    assert json.loads(benched.stdout)["metrics"]["instructions"]["per_inference"] > 0
    assert "... compiling the harness and model for cortex-m4" in benched.stderr
    deployed = run_edgekit(
        "deploy",
        "--example",
        "digits",
        "-t",
        "cortex-m4",
        "--tflm-dir",
        str(tflm_tree),
        "--no-analysis",
        "--out",
        str(tmp_path),
        "--json",
    )
    assert deployed.returncode == 0, deployed.stderr
    assert json.loads(deployed.stdout)["metrics"]["instructions_per_inference"] > 0
    assert "compiling the harness and model for cortex-m4" in deployed.stderr


@pytest.mark.slow
def test_instructions_are_deterministic_and_not_milliseconds(qemu_run, digits_m4, tflm_tree):
    result = qemu_run[0]
    ins = result.metrics["instructions"]
    assert 100_000 < ins["per_inference"] < 50_000_000
    assert ins["resolution"] == 40  # the 25 MHz timer: 40 ns ticks, 40 instructions
    assert ins["max"] - ins["min"] <= ins["per_inference"] // 1000  # runs agree within 0.1 %
    assert "latency_ms" not in result.metrics and result.latencies_ms == []  # no CPI given
    again = bench(digits_m4, device="qemu", tflm_dir=tflm_tree, runs=5, warmup=1, record=False)
    assert again.metrics["instructions"] == ins  # same firmware, same count
    assert again.metrics["build_seconds"]["library_cached"] is True
    assert again.metrics["build_seconds"]["tflm_library"] == 0


@pytest.mark.slow
def test_arena_is_bisected_on_the_32_bit_cpu_and_the_elf_is_measured(qemu_run):
    m = qemu_run[0].metrics
    assert 0 < m["arena_bytes"] < m["arena_host_bytes"]  # 4-byte pointers need less
    assert m["arena_used_bytes"] <= m["arena_bytes"]
    elf = m["elf"]
    assert elf["tensor_arena"] == m["arena_bytes"]  # rebuilt with exactly the bisected arena
    assert elf["bss"] >= elf["tensor_arena"]
    assert m["flash_bytes"] == elf["text"] + elf["data"] > 86_000  # the model alone is 86 KB
    assert 0 < m["stack_bytes"] < 65536 and m["heap_bytes"] >= 0
    assert m["ram_bytes"] == elf["data"] + elf["bss"] + m["stack_bytes"] + m["heap_bytes"]
    assert m["flash_budget_bytes"] == load_target("cortex-m4").memory.flash_bytes
    # The bisected arena runs, one byte less does not.
    firmware = qemu_run[0].device_info["elf"]
    from pathlib import Path

    run_elf(Path(firmware), "mps2-an386", "EDGEKIT_RUN 0 1")
    with pytest.raises(DeviceFailure, match="AllocateTensors failed"):
        run_elf(Path(firmware), "mps2-an386", f"arena={m['arena_bytes'] - 1} EDGEKIT_RUN 0 1")


@pytest.mark.slow
def test_smallest_arena_bisection_is_reproducible_from_any_lower_bound(qemu_run):
    from pathlib import Path

    elf = Path(qemu_run[0].device_info["elf"])
    found = smallest_arena(elf, "mps2-an386", 0, qemu_run[0].metrics["arena_host_bytes"])
    assert found == qemu_run[0].metrics["arena_bytes"]
    assert elf_sizes(elf)["tensor_arena"] == found


@pytest.mark.slow
def test_cli_prints_instructions_arena_flash_and_ram(qemu_run, digits_m4, tflm_tree):
    # The same runs as qemu_run: the same firmware gives the same instruction count.
    proc = run_edgekit(
        "bench",
        str(digits_m4),
        "--device",
        "qemu",
        "--tflm-dir",
        str(tflm_tree),
        "--runs",
        "5",
        "--warmup",
        "1",
        "--no-record",
    )
    assert proc.returncode == 0, proc.stderr
    m = qemu_run[0].metrics
    assert "[tflm (qemu mps2-an386) TFLM cmsis-nn; protocol 1]" in proc.stdout
    ins = m["instructions"]["per_inference"]
    assert f"instructions        {ins:,} per inference" in proc.stdout
    assert f"{m['arena_bytes']:,} B smallest that runs (32-bit)" in proc.stdout
    assert f"flash               {m['flash_bytes']:,} B of 1,048,576 B" in proc.stdout
    assert "TFLM library cached" in proc.stdout and "latency ms" not in proc.stdout


@pytest.mark.slow
def test_the_cmake_route_builds_the_same_firmware(qemu_run, digits_m4, tflm_tree, tmp_path):
    result = qemu_run[0]
    # The bundle carries the board port and toolchain file; CMake links against the cached
    # library (EDGEKIT_TFLM_LIBRARY) and the firmware prints the same CRC under QEMU.
    harness = digits_m4 / "harness"
    assert (harness / "boards" / "mps2" / "mps2.ld").is_file()
    assert (harness / "arm-none-eabi.cmake").is_file()
    from edgekit.bench.firmware import cache_dir

    # a cortex-m4 library with this model's kernels (other tests build others)
    needed = set(library_sources(tflm_tree, ops_in((digits_m4 / "tflm/model_ops.h").read_text())))
    library = next(
        lib
        for lib in cache_dir("tflm-lib").glob("cortex-m4-cmsis-nn-*/libtflm.a")
        if needed <= set((lib.parent / "sources.txt").read_text().split())
    )
    build = tmp_path / "build"
    configure = subprocess.run(
        [
            "cmake",
            "-S",
            str(harness),
            "-B",
            str(build),
            f"-DCMAKE_TOOLCHAIN_FILE={harness / 'arm-none-eabi.cmake'}",
            "-DEDGEKIT_CPU=cortex-m4",
            f"-DTFLM_DIR={tflm_tree}",
            f"-DEDGEKIT_TFLM_LIBRARY={library}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert configure.returncode == 0, configure.stdout + configure.stderr
    made = subprocess.run(
        ["cmake", "--build", str(build), "-j2"], capture_output=True, text=True, timeout=600
    )
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    assert "warning" not in made.stdout + made.stderr
    collected = run_elf(build / "edgekit_harness.elf", "mps2-an386", "EDGEKIT_RUN 0 2")
    assert f"crc32:{collected['summary']['output_crc32']}" == result.metrics["output_digest"]
    assert len(collected["runs"]) == 2


def _same_count(counted: int, instructions: dict) -> None:
    """Two runs of one firmware count the same instructions to the timer's resolution (40 ns
    ticks under -icount shift=0): the mean of N runs moves with where the first tick falls."""
    assert instructions["resolution"] == 40
    assert abs(counted - instructions["per_inference"]) <= instructions["resolution"], (
        counted,
        instructions,
    )


def _printed_commands(bundle) -> dict[str, str]:
    """report.md's benchmark commands by their label (the indented line under each)."""
    lines = (bundle / "report.md").read_text().splitlines()
    return {
        lines[i - 2].rstrip(":"): line.strip()
        for i, line in enumerate(lines)
        if line.startswith("    ") and i >= 2 and lines[i - 2].endswith(":")
    }


@pytest.mark.slow
def test_the_commands_report_md_prints_work_in_the_bundle_directory(
    qemu_run, digits_m4, tflm_tree, tmp_path
):
    # Pasted as printed into a shell in (a copy of) the bundle directory, TFLM_TREE filled in.
    # The serial line needs a board; every other line runs here. CMake compiles every source
    # of its tree: TFLM_TREE is the shared tree's headers with the sources this model needs
    # only, so the build is ~120 files, not 317 (and shows the selection links on its own).
    bundle = tmp_path / "bundle"
    shutil.copytree(digits_m4, bundle)
    printed = _printed_commands(bundle)
    wanted = set(library_sources(tflm_tree, ops_in((bundle / "tflm/model_ops.h").read_text())))
    subset = tmp_path / "tflm-tree"
    for path in tflm_tree.rglob("*"):
        relative = str(path.relative_to(tflm_tree))
        if path.is_file() and (path.suffix not in (".cc", ".c") or relative in wanted):
            (subset / relative).parent.mkdir(parents=True, exist_ok=True)
            (subset / relative).symlink_to(path)
    path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"
    env = dict(os.environ, EDGEKIT_DB=str(tmp_path / "r.db"), PATH=path)

    def run(label: str, tree=tflm_tree) -> subprocess.CompletedProcess:
        command = printed[label].replace("TFLM_TREE", shlex.quote(str(tree)))
        return subprocess.run(
            command, shell=True, cwd=bundle, env=env, capture_output=True, text=True, timeout=1800
        )

    built = run("Build the firmware yourself (CMake; see harness/README.md)", subset)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    collected = run_elf(
        bundle / "build-cortex-m4" / "edgekit_harness.elf", "mps2-an386", "EDGEKIT_RUN 0 1"
    )
    expected = qemu_run[0].metrics["output_digest"]
    assert f"crc32:{collected['summary']['output_crc32']}" == expected
    emulated = run("Cortex-M firmware under QEMU (instructions, 32-bit arena, flash/RAM)")
    assert emulated.returncode == 0, emulated.stderr
    counted = re.search(r"instructions +([\d,]+) per inference", emulated.stdout)
    assert counted, emulated.stdout
    _same_count(int(counted[1].replace(",", "")), qemu_run[0].metrics["instructions"])
    simulated = run("Host simulation (no board)")
    assert simulated.returncode == 0, simulated.stderr
    assert "host simulation" in simulated.stdout


@pytest.mark.slow
def test_a_missing_op_is_reported_as_such_not_as_a_small_arena(digits_m4, tflm_tree, tmp_path):
    from edgekit.bench.firmware import build_firmware

    sources = tmp_path / "tflm"
    shutil.copytree(digits_m4 / "tflm", sources)
    ops = sources / "model_ops.h"
    text = ops.read_text()
    assert "resolver.AddFullyConnected()" in text
    ops.write_text("\n".join(line for line in text.splitlines() if "AddFullyConnected" not in line))
    build = build_firmware(
        sources,
        tflm_tree,
        load_target("cortex-m4").firmware,
        tmp_path / "b",
        progress=lambda m: None,
    )
    with pytest.raises(DeviceFailure, match="op FULLY_CONNECTED is not registered in model_ops.h"):
        run_elf(build.elf, "mps2-an386", "EDGEKIT_RUN 0 1")


@pytest.mark.slow
def test_a_profile_cpi_gives_a_labelled_millisecond_estimate(
    qemu_run, digits_m4, tflm_tree, tmp_path
):
    profile = (
        (REPO / "targets" / "cortex-m4.toml")
        .read_text()
        .replace("clock_hz = 64000000", "clock_hz = 64000000\ncpi = 1.5")
    )
    (tmp_path / "m4-cpi.toml").write_text(profile.replace('name = "cortex-m4"', 'name = "m4-cpi"'))
    result = bench(
        digits_m4,
        tmp_path / "m4-cpi.toml",
        device="qemu",
        tflm_dir=tflm_tree,
        runs=3,
        warmup=0,
        record=False,
    )
    per_inference = result.metrics["instructions"]["per_inference"]
    assert result.metrics["latency_source"].startswith("estimate: instructions x CPI 1.5 / 64")
    assert result.metrics["latency_ms"]["p50"] == pytest.approx(
        per_inference * 1.5 / 64e3, rel=1e-3
    )


@pytest.mark.slow
def test_crc_mismatch_is_a_failed_check_naming_the_kernels(
    digits_m4, tflm_tree, monkeypatch, tmp_path
):
    # The kernels here are bit-exact, so a divergence is injected on the host side only: the
    # firmware still builds and runs for real.
    monkeypatch.setattr("edgekit.bench.qemu.host_crc", lambda *args: "00000000")
    result = bench(
        digits_m4, device="qemu", tflm_dir=tflm_tree, runs=2, warmup=0, db=tmp_path / "r.db"
    )
    assert result.status == "failed"
    assert "cmsis-nn kernels" in result.error
    assert "differs from host TFLM's 00000000" in result.error
    assert result.metrics["instructions"]["per_inference"] > 0  # the figures are kept


@pytest.mark.slow
def test_deploy_reports_32_bit_figures_and_where_they_came_from(digits_m4_bundle, qemu_run):
    bundle = digits_m4_bundle
    assert bundle.ok, [c.detail for c in bundle.report.failed_checks()]
    m, tflm = bundle.report.metrics, bundle.report.tflm
    assert m.tensor_arena_32bit_bytes == qemu_run[0].metrics["arena_bytes"]  # same firmware
    assert m.tensor_arena_32bit_bytes < m.tensor_arena_bytes  # the 64-bit host figure
    assert m.flash_bytes == qemu_run[0].metrics["flash_bytes"] and m.ram_bytes > 10_000
    _same_count(m.instructions_per_inference, qemu_run[0].metrics["instructions"])
    assert "QEMU mps2-an386, cmsis-nn kernels, -mcpu=cortex-m4" in tflm["arena_32bit_source"]
    assert "arm-none-eabi-size" in tflm["memory_source"]
    assert "not cycles" in tflm["instructions_source"]
    checks = {c.name: c for c in bundle.report.checks}
    assert checks["firmware_matches_host_tflm"].ok
    fits = checks["firmware_fits_memory"]
    assert fits.ok and "(ELF, 32-bit)" in fits.detail
    elf = bundle.path / "firmware" / "edgekit_harness-cortex-m4-cmsis-nn.elf"
    assert elf.read_bytes()[:4] == b"\x7fELF"
    text = (bundle.path / "report.md").read_text()
    assert "arena_32bit_bytes" in text and "firmware (qemu)" in text


@pytest.mark.slow
def test_run_firmware_is_deploys_firmware_step(digits_m4_bundle, qemu_run, tflm_tree):
    """edgekit.bench.run_firmware: the bundle's model and arena on QEMU, as deploy runs it."""
    from edgekit.report import Role

    bundle = digits_m4_bundle
    arena = bundle.report.metrics.tensor_arena_bytes
    model = bundle.file(Role.DEPLOYED_MODEL)
    result = run_firmware(model, bundle.profile, arena_bytes=arena, tflm_dir=tflm_tree)
    assert result.ok, result.error
    assert result.device == "qemu" and result.target == "cortex-m4"
    settings = {"runs": 3, "warmup": 1, "threads": 1, "delegate": "none", "input": "random"}
    assert result.settings == settings
    expected = qemu_run[0].metrics
    assert result.metrics["arena_bytes"] == expected["arena_bytes"]
    _same_count(result.metrics["instructions"]["per_inference"], expected["instructions"])


def test_run_firmware_records_a_device_failure(digits_tflite, monkeypatch):
    def fail(request):
        raise DeviceFailure("QEMU (mps2-an386) did not finish within 600 s")

    monkeypatch.setattr("edgekit.bench.qemu.run_qemu", fail)
    model = digits_tflite["int8"]
    result = run_firmware(model, load_target("cortex-m4"), arena_bytes=None, tflm_dir="unused")
    assert result.status == "failed" and "did not finish within 600 s" in result.error
    assert result.model_name == model.name and result.harness == "mcu"


@pytest.mark.slow
def test_deploy_without_a_tflm_tree_says_the_figures_are_host_estimates(
    example, tmp_path, monkeypatch
):
    import edgekit

    monkeypatch.delenv("EDGEKIT_TFLM_DIR", raising=False)
    bundle = edgekit.deploy(None, "cortex-m7", example="digits", analysis=False, out=tmp_path)
    assert bundle.ok and bundle.report.metrics.tensor_arena_32bit_bytes is None
    step = next(s for s in bundle.report.steps if s.name == "firmware (qemu)")
    assert not step.ran and "no TFLM tree (--tflm-dir or EDGEKIT_TFLM_DIR)" in step.detail
    assert any("64-bit host figure" in note for note in bundle.report.notes)


# --- clear errors ----------------------------------------------------------------------------


def test_qemu_device_uris():
    assert parse_device("qemu").params == {}
    assert parse_device("qemu:mps2-an500").redacted == "qemu:mps2-an500"
    with pytest.raises(UsageError, match="expected qemu or qemu:BOARD"):
        parse_device("qemu:bad board;rm")


def test_firmware_section_is_validated():
    base = load_target("cortex-m4").to_dict()
    assert TargetProfile.from_dict(base, "x.toml").firmware.qemu_board == "mps2-an386"
    for bad, message in (
        ({"cpu_flags": "-mcpu=cortex-m4"}, "cpu_flags"),
        ({"cpu": "cortex-m85"}, "must be one of cortex-m4, cortex-m7, cortex-m33, cortex-m55"),
        ({"qemu_board": "mps2 an386"}, "QEMU machine name"),
        ({"cpi": 0}, "must be > 0"),
        ({"turbo": True}, "is not a profile field"),
    ):
        table = dict(base, firmware={**base["firmware"], **bad})
        with pytest.raises(UsageError, match=message):
            TargetProfile.from_dict(table, "x.toml")
    linux = load_target("raspberry-pi-4").to_dict()
    with pytest.raises(UsageError, match="is for mcu targets"):
        TargetProfile.from_dict(dict(linux, firmware=base["firmware"]), "x.toml")


def test_qemu_errors_are_one_line(digits_m4, tflm_tree, tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEKIT_TFLM_DIR", raising=False)
    no_ops = tmp_path / "no-ops"  # model_ops.h names the kernels the library is built with
    shutil.copytree(digits_m4, no_ops)
    (no_ops / "tflm" / "model_ops.h").unlink()
    bundle = str(digits_m4)
    cases = [
        ([bundle, "--device", "qemu"], "pass --tflm-dir"),
        ([bundle, "--device", "qemu", "--tflm-dir", str(tmp_path)], "is not a TFLM tree"),
        ([bundle, "--device", "qemu:mps2-an500", "--tflm-dir", str(tmp_path)], "is a cortex-m7"),
        (
            [bundle, "--device", "qemu:mps2-an505", "--tflm-dir", str(tmp_path)],
            "is a cortex-m33",
        ),
        (
            [bundle, "--device", "qemu:mps2-an521", "--tflm-dir", str(tmp_path)],
            "unknown QEMU board",
        ),
        ([bundle, "--device", "qemu", "--target", "esp32-s3"], "has no [firmware] section"),
        ([str(no_ops), "--device", "qemu", "--tflm-dir", str(tflm_tree)], "no model_ops.h in"),
    ]
    for args, message in cases:
        proc = run_edgekit("bench", *args, "--no-record")
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_missing_toolchain_names_the_debian_package(digits_m4, tflm_tree, tmp_path):
    bin_dir = tmp_path / "bin"  # a PATH with python but no arm-none-eabi-gcc
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = dict(os.environ, PATH=str(bin_dir))
    proc = run_edgekit(
        "bench",
        str(digits_m4),
        "--device",
        "qemu",
        "--tflm-dir",
        str(tflm_tree),
        "--no-record",
        env=env,
    )
    assert proc.returncode == 2
    assert "arm-none-eabi-gcc not found: install Debian's gcc-arm-none-eabi" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_qemu_command_counts_instructions():
    from pathlib import Path

    command = qemu_command("mps2-an500", Path("fw.elf"), "arena=4096 EDGEKIT_RUN 0 1")
    assert command[command.index("-icount") + 1] == "shift=0"
    assert "enable=on,target=native" in command
    assert command[-2:] == ["-append", "arena=4096 EDGEKIT_RUN 0 1"]
