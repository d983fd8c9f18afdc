"""Host side of the TFLM harness's serial line protocol (pyserial).

The host sends `EDGEKIT_RUN <warmup> <runs>` and reads `EDGEKIT_RESULT {json}` lines (kinds
`hello`, `run`, `memory`, `summary`, `error`) until the summary. Of the other console lines
(TFLM's own log, e.g. which kernel failed to prepare) the last few are kept, to name the cause
when an `error` arrives. Every read has a timeout: silence for `line_timeout` seconds, or the
whole run going past `timeout`, or the port vanishing (board reset, cable pulled) ends the run
as failed, with the runs seen so far in the reason.

>>> parse_line(b'EDGEKIT_RESULT {"kind":"run","i":0,"us":812}\\r\\n')
{'kind': 'run', 'i': 0, 'us': 812}
>>> parse_line(b"I (312) boot: ESP-IDF v5.1") is None
True
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import deque
from typing import Any

from edgekit import metrics as M
from edgekit.bench.result import BenchResult, DeviceFailure, latency_stats
from edgekit.errors import UsageError

PREFIX = b"EDGEKIT_RESULT "
LINE_TIMEOUT = 10.0
LOG_LINES = 2  # console lines kept before an error: TFLM's check and its "Node ... failed"


def log_text(lines: Any) -> str:
    """TFLM's console lines, shortened to one line: source paths cut to the file name.

    >>> log_text(["/src/tflite/kernels/cmsis_nn/conv.cc:116 x was not true.",
    ...           "Node CONV_2D (number 5) failed to prepare with status 1"])
    'conv.cc:116 x was not true.; Node CONV_2D (number 5) failed to prepare with status 1'
    """
    text = "; ".join(re.sub(r"\S*/(\w+\.(?:cc|c|h):\d+)", r"\1", line) for line in lines)
    return text if len(text) <= 400 else text[:397] + "..."


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """The JSON of an `EDGEKIT_RESULT` line, or None for any other console output."""
    text = raw.strip()
    start = text.find(PREFIX)
    if start < 0:
        return None
    try:
        message = json.loads(text[start + len(PREFIX) :])
    except json.JSONDecodeError:
        return None
    return message if isinstance(message, dict) and "kind" in message else None


def open_port(path: str, baud: int) -> Any:
    try:  # here, not at the top: without pyserial, only a serial run fails (in one line)
        import serial
    except ImportError:
        raise UsageError("pyserial is not installed (pip install pyserial)") from None
    if not os.path.exists(path):
        raise UsageError(f"serial port {path} does not exist (is the board plugged in?)")
    try:
        return serial.Serial(path, baudrate=baud, timeout=0.2)
    except (serial.SerialException, OSError) as exc:
        raise UsageError(f"cannot open serial port {path}: {exc}") from None


class Collector:
    """The messages of one run, fed line by line (serial board, QEMU, simulation)."""

    def __init__(self, runs: int | None = None) -> None:
        self.hello: dict[str, Any] | None = None
        self.runs_ms: list[float] = []
        self.ticks: list[int] = []
        self.memory: dict[str, Any] | None = None
        self.summary: dict[str, Any] | None = None
        self.expected = runs
        self.log: deque[str] = deque(maxlen=LOG_LINES)  # the last non-protocol lines

    def where(self) -> str:
        of = f" of {self.expected}" if self.expected else ""
        return f"after {len(self.runs_ms)}{of} runs"

    def feed_line(self, raw: bytes) -> bool:
        """Take one console line; True once the summary has arrived. A board error raises."""
        message = parse_line(raw)
        if message is None:
            text = raw.decode(errors="replace").strip()
            if text:
                self.log.append(text)
            return False
        return self.feed(message)

    def feed(self, message: dict[str, Any]) -> bool:
        """Take one parsed message; True once it is the summary. A board error raises."""
        kind = message["kind"]
        if kind == "hello":
            self.hello = message
        elif kind == "run":
            self.runs_ms.append(float(message["us"]) / 1000)
            self.ticks.append(int(message.get("ticks", 0)))
        elif kind == "memory":
            self.memory = message
        elif kind == "error":
            said = f" (the board's log: {log_text(self.log)})" if self.log else ""
            raise DeviceFailure(f"board error: {message.get('message', '?')}{said}")
        elif kind == "summary":
            self.summary = message
            return True
        return False

    def messages(self) -> dict[str, Any]:
        return {
            "hello": self.hello,
            "runs": self.runs_ms,
            "ticks": self.ticks,
            "memory": self.memory,
            "summary": self.summary,
        }


def read_run(port: Any, warmup: int, runs: int, timeout: float, line_timeout: float) -> dict:
    """Send EDGEKIT_RUN and collect messages until the summary (Collector.messages())."""
    import serial  # present: open_port imported it

    collector = Collector(runs)
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    buffer = b""
    try:
        port.reset_input_buffer()
        port.write(f"EDGEKIT_RUN {warmup} {runs}\n".encode())
        port.flush()
        while True:
            now = time.monotonic()
            if now > deadline:
                raise DeviceFailure(
                    f"serial run timed out after {timeout:.0f} s {collector.where()}"
                )
            if now - last > line_timeout:
                raise DeviceFailure(
                    f"no data from the board for {line_timeout:.0f} s {collector.where()}"
                )
            chunk = port.read(4096)
            if not chunk:
                continue
            last = time.monotonic()
            buffer += chunk
            while b"\n" in buffer:
                raw, buffer = buffer.split(b"\n", 1)
                if collector.feed_line(raw):
                    return collector.messages()
    except serial.SerialException as exc:
        raise DeviceFailure(f"serial port closed {collector.where()}: {exc}") from None
    except OSError as exc:
        raise DeviceFailure(f"serial port failed {collector.where()}: {exc}") from None


def result_from_messages(collected: dict, request: Any, runtime: str) -> BenchResult:
    """BenchResult from a hello/run/summary exchange (board or host simulation)."""
    hello = collected.get("hello") or {}
    summary = collected["summary"]
    latencies = collected["runs"]
    if not latencies:
        raise DeviceFailure("the board reported no timed runs")
    metrics: dict[str, Any] = {
        M.FIRST_INFERENCE_MS: summary.get("first_us", 0) / 1000,
        M.LATENCY_MS: latency_stats(latencies),
        M.OUTPUT_DIGEST: f"crc32:{summary.get('output_crc32')}",
    }
    if hello:  # the board's hello message: its arena fields are spelled as the metrics
        metrics.update(
            {
                M.INIT_MS: hello.get("init_us", 0) / 1000,
                M.ARENA_BYTES: hello.get(M.ARENA_BYTES),
                M.ARENA_USED_BYTES: hello.get(M.ARENA_USED_BYTES),
            }
        )
    settings = dict(request.settings)
    if summary.get("runs") != settings["runs"]:
        settings["runs_reported"] = summary.get("runs")  # a board running its boot defaults
    identity = request.identity()
    identity["settings"] = settings
    return BenchResult(
        status="ok",
        runtime=runtime,
        runtime_version=f"protocol {hello['protocol']}" if "protocol" in hello else None,
        delegate=None,
        metrics=metrics,
        device_info={"board": hello.get("harness"), "model": hello.get("model")},
        latencies_ms=latencies,
        **identity,
    )


def run_serial(request: Any) -> BenchResult:
    device = request.device
    port = open_port(device.path, device.baud)
    line_timeout = device.line_timeout or LINE_TIMEOUT
    request.progress(f"reading the board on {device.path} ({request.settings['runs']} runs)")
    try:
        collected = read_run(
            port,
            request.settings["warmup"],
            request.settings["runs"],
            request.timeout,
            line_timeout,
        )
    finally:
        port.close()
    return result_from_messages(collected, request, "tflm (board)")
