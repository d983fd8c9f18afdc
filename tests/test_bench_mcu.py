"""The MCU path: protocol header (g++), a simulated board behind a real pty, tflm-host."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
import time
import zlib

import pytest
from helpers import REPO, need_gxx

from edgekit.bench.runner import bench
from edgekit.bench.serial_link import Collector, parse_line
from edgekit.bench.store import ResultStore
from edgekit.converters.tflm import measure_arena
from edgekit.tflite_model import load_tflite

DRIVER = r"""
#include "edgekit_protocol.h"
int main() {
  char line[EDGEKIT_LINE_MAX];
  const unsigned char data[] = "123456789";
  edgekit_format_hello(line, sizeof line, "digits_cnn", 78176, 11936, 11920, 1234, 40);
  fputs(line, stdout);
  fputs("some console noise\r\n", stdout);
  for (int i = 0; i < 3; ++i) {
    edgekit_format_run(line, sizeof line, i, 800 + i, 4294967295u - (uint32_t)i);
    fputs(line, stdout);
  }
  edgekit_format_memory(line, sizeof line, 1364, 0);
  fputs(line, stdout);
  edgekit_format_summary(line, sizeof line, 5, 3, 4000000000u, edgekit_crc32(data, 9));
  fputs(line, stdout);
  edgekit_format_error(line, sizeof line, "Invoke failed");
  fputs(line, stdout);
  int w = 0, r = 0, w2 = 0, r2 = 0;
  const int ok = edgekit_parse_run("EDGEKIT_RUN 2 30", &w, &r);
  const int bad = edgekit_parse_run("EDGEKIT_RUN 2 0", &w2, &r2);
  printf("parsed=%d %d %d bad=%d\n", ok, w, r, bad);
}
"""


def test_protocol_header_lines_parse_on_the_host(tmp_path):
    need_gxx()
    (tmp_path / "driver.cc").write_text(DRIVER)
    exe = tmp_path / "driver"
    subprocess.run(
        [
            "g++",
            "-std=c++17",
            "-Wall",
            "-Werror",
            "-I",
            str(REPO / "devices" / "mcu"),
            "-o",
            str(exe),
            str(tmp_path / "driver.cc"),
        ],
        check=True,
    )
    lines = subprocess.run([str(exe)], capture_output=True, check=True).stdout.splitlines()
    messages = [parse_line(line) for line in lines]
    assert messages[1] is None  # console noise is ignored
    hello, runs, memory = messages[0], messages[2:5], messages[5]
    summary, error = messages[6], messages[7]
    assert hello == {
        "kind": "hello",
        "protocol": 1,
        "harness": "edgekit-tflm",
        "model": "digits_cnn",
        "model_bytes": 78176,
        "arena_bytes": 11936,
        "arena_used_bytes": 11920,
        "init_us": 1234,
        "tick_ns": 40,
    }
    assert [m["us"] for m in runs] == [800, 801, 802]
    assert [m["ticks"] for m in runs] == [4294967295, 4294967294, 4294967293]  # 32-bit ticks
    assert memory == {"kind": "memory", "stack_bytes": 1364, "heap_bytes": 0}
    collector = Collector()
    assert [collector.feed_line(line) for line in lines[:7]] == [False] * 6 + [True]
    assert collector.ticks == [4294967295, 4294967294, 4294967293]
    assert collector.memory["stack_bytes"] == 1364 and collector.hello["tick_ns"] == 40
    assert summary["first_us"] == 4000000000  # 32-bit microseconds survive
    assert summary["output_crc32"] == f"{zlib.crc32(b'123456789'):08x}" == "cbf43926"
    assert error == {"kind": "error", "message": "Invoke failed"}
    assert lines[-1] == b"parsed=1 2 30 bad=0"


def _start_board(model, *extra):
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit.devices.mcu.simulated_board", str(model), *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    uri = proc.stdout.readline().strip()
    assert uri.startswith("serial:///dev/pts/"), uri
    return proc, uri


def test_simulated_board_over_a_pty_matches_tflm_host(digits_tflite, tmp_path):
    model = digits_tflite["int8"]
    arena = measure_arena(load_tflite(model))
    db = tmp_path / "r.db"
    board, uri = _start_board(model, "--arena", str(arena.tensor_arena_bytes))
    try:
        serial = bench(model, "cortex-m4", uri, runs=25, warmup=2, db=db)
    finally:
        board.kill()
        board.wait()
    assert serial.ok, serial.error
    assert serial.transport == "serial" and serial.runtime == "tflm (board)"
    assert len(serial.latencies_ms) == 25
    assert serial.metrics["arena_bytes"] == arena.tensor_arena_bytes

    host = bench(model, "cortex-m4", "tflm-host", runs=25, warmup=2, db=db)
    assert host.ok and "host simulation" in host.runtime
    assert host.metrics["arena_used_bytes"] == arena.minimum_bytes
    assert "RecordingMicroAllocator" in host.metrics["arena_used_source"]
    assert host.device_info["simulation"] is True
    # Both run the same TflmBoard class: this checks the pty transport carries the digest
    # unchanged. The board's own port is checked against main.cc in the next test.
    assert serial.metrics["output_digest"] == host.metrics["output_digest"]
    assert serial.metrics["output_digest"].startswith("crc32:")
    assert [r.transport for r in ResultStore(db).list()] == ["tflm-host", "serial"]


@pytest.mark.slow
def test_simulated_board_matches_the_compiled_harness(qemu_run, digits_m4_bundle):
    """An independent path: main.cc compiled with arm-none-eabi-gcc (CMSIS-NN kernels, its
    own xorshift input and CRC-32 in C) on QEMU, against the simulated board's Python port
    of the same harness over a pty: the same output digest on the same model."""
    compiled = qemu_run[0]
    assert compiled.ok, compiled.error
    assert compiled.runtime == "tflm (qemu mps2-an386)"
    from edgekit.report import Role

    model = digits_m4_bundle.file(Role.DEPLOYED_MODEL)
    board, uri = _start_board(model, "--arena", str(compiled.metrics["arena_host_bytes"]))
    try:
        simulated = bench(model, "cortex-m4", uri, runs=3, warmup=0, record=False)
    finally:
        board.kill()
        board.wait()
    assert simulated.ok and simulated.runtime == "tflm (board)", simulated.error
    assert simulated.metrics["output_digest"] == compiled.metrics["output_digest"]
    assert compiled.metrics["output_digest"].startswith("crc32:")


def test_board_dying_mid_run_is_a_recorded_failure(digits_tflite, tmp_path):
    db = tmp_path / "r.db"
    board, uri = _start_board(digits_tflite["int8"], "--arena", "65536", "--run-delay-ms", "20")
    # The cable is pulled two seconds after the runs start (not after the call: on a loaded
    # machine the set-up alone can take that long).
    killed_at = []

    def pull_the_cable() -> None:
        killed_at.append(time.monotonic())
        board.kill()

    killer = threading.Timer(2.0, pull_the_cable)

    def progress(message: str) -> None:
        if message.startswith("reading the board"):
            killer.start()

    try:
        result = bench(
            digits_tflite["int8"],
            "cortex-m4",
            uri,
            runs=100_000,
            db=db,
            timeout=600,
            on_progress=progress,
        )
    finally:
        killer.cancel()
        board.kill()
        board.wait()
    assert killed_at, "the runs never started"
    assert time.monotonic() - killed_at[0] < 60  # noticed, not waited out (600 s)
    assert result.status == "failed"
    assert "serial port" in result.error and "of 100000 runs" in result.error
    assert ResultStore(db).get(result.id).status == "failed"


def test_silent_board_times_out(digits_tflite, tmp_path):
    master, slave = pty.openpty()  # a port with nothing answering on it
    try:
        uri = f"serial://{os.ttyname(slave)}?baud=115200&line_timeout=1"
        result = bench(digits_tflite["int8"], "cortex-m4", uri, runs=3, db=tmp_path / "r.db")
    finally:
        os.close(master)
        os.close(slave)
    assert result.status == "failed" and "no data from the board for 1 s" in result.error


def test_a_board_error_names_what_tflm_logged_before_it():
    """TFLM prints which kernel refused in Prepare; the one-line failure carries it (a 16x8
    FULLY_CONNECTED with per-channel weights on CMSIS-NN was "arena too small" before)."""
    from edgekit.bench.result import DeviceFailure

    collector = Collector()
    console = [
        b"boot banner\r\n",
        b"/tflm/tensorflow/lite/micro/kernels/cmsis_nn/fully_connected.cc:116 "
        b"!data->reference_op_data.is_per_channel was not true.\r\n",
        b"Node FULLY_CONNECTED (number 5) failed to prepare with status 1\r\n",
        b'EDGEKIT_RESULT {"kind":"error","message":"AllocateTensors failed"}\r\n',
    ]
    assert [collector.feed_line(line) for line in console[:3]] == [False] * 3
    with pytest.raises(DeviceFailure) as failure:
        collector.feed_line(console[3])
    message = str(failure.value)
    assert "\n" not in message and "boot banner" not in message
    assert message.startswith("board error: AllocateTensors failed (the board's log: ")
    assert "fully_connected.cc:116 " in message and "/tflm/" not in message
    assert "Node FULLY_CONNECTED (number 5) failed to prepare" in message
