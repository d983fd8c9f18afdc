"""A simulated microcontroller: the TFLM harness's behaviour, on this host, behind a pty.

It runs the model in the real `tflite_micro` Python interpreter and speaks exactly the line
protocol `main.cc` speaks (`edgekit_protocol.h`): same deterministic input (xorshift32 over the
input bytes), same CRC-32 of the first output, same `EDGEKIT_RESULT {json}` lines. Use it to
develop host tooling without a board:

    python -m edgekit.devices.mcu.simulated_board bundle/tflm/../digits_cnn_int8.tflite
    # prints: serial:///dev/pts/7?baud=115200   (then serves until killed)
    edgekit bench bundle --device "serial:///dev/pts/7?baud=115200"

`--run-delay-ms` slows each run down (a slow MCU); tests use it to kill the board mid-run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from collections.abc import Iterator

import numpy as np

from edgekit.runtimes.tflm import interp_positions, measure_arena, tflm_interpreter, tflm_runtime
from edgekit.tflite_model import read_tflite

PROTOCOL_VERSION = 1


def xorshift_bytes(n: int) -> bytes:
    """The harness's input bytes (main.cc `fill_input`)."""
    state = 2463534242
    out = bytearray(n)
    for i in range(n):
        state ^= (state << 13) & 0xFFFFFFFF
        state ^= state >> 17
        state ^= (state << 5) & 0xFFFFFFFF
        out[i] = state & 0xFF
    return bytes(out)


class TflmBoard:
    """The harness loop around a tflite_micro interpreter (shared by `tflm-host`)."""

    def __init__(self, model: bytes, arena_bytes: int, name: str = "model") -> None:
        tflm_runtime()  # import outside the timed init, as a board has nothing to import
        started = time.perf_counter()
        self.interp = tflm_interpreter(model, arena_bytes)
        self.init_us = int((time.perf_counter() - started) * 1e6)
        self.model_bytes = len(model)
        self.arena_bytes = arena_bytes
        self.name = name
        # main.cc's fill_inputs: one xorshift stream over input 0's bytes, then input 1's...
        details = [self.interp.get_input_details(i) for i in interp_positions(self.interp)]
        sizes = [int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize for d in details]
        raw = xorshift_bytes(sum(sizes))
        self.output_positions = interp_positions(self.interp, "output")
        self.inputs: list[np.ndarray] = []
        offset = 0
        for detail, size in zip(details, sizes, strict=True):
            chunk = np.frombuffer(raw[offset : offset + size], np.dtype(detail["dtype"]))
            self.inputs.append(chunk.reshape(detail["shape"]))
            offset += size

    def hello(self, arena_used_bytes: int | None = None) -> dict:
        return {
            "kind": "hello",
            "protocol": PROTOCOL_VERSION,
            "harness": "edgekit-tflm",
            "model": self.name,
            "model_bytes": self.model_bytes,
            "arena_bytes": self.arena_bytes,
            "arena_used_bytes": arena_used_bytes or self.arena_bytes,
            "init_us": self.init_us,
        }

    def run(self, warmup: int, runs: int, delay_s: float = 0.0) -> Iterator[dict]:
        """Yield the protocol messages of one EDGEKIT_RUN: run lines, then the summary."""
        clock = time.perf_counter
        for i, values in enumerate(self.inputs):
            self.interp.set_input(values, i)
        started = clock()
        self.interp.invoke()
        first_us = int((clock() - started) * 1e6)
        crc = 0  # main.cc's outputs_crc32: over output 0's bytes, then output 1's...
        for i in self.output_positions:
            crc = zlib.crc32(np.ascontiguousarray(self.interp.get_output(i)).tobytes(), crc)
        for _ in range(warmup):
            self.interp.invoke()
        for i in range(runs):
            started = clock()
            self.interp.invoke()
            us = int((clock() - started) * 1e6)
            if delay_s:
                time.sleep(delay_s)
            yield {"kind": "run", "i": i, "us": us}
        yield {
            "kind": "summary",
            "warmup": warmup,
            "runs": runs,
            "first_us": first_us,
            "output_crc32": f"{crc:08x}",
        }


def line(message: dict) -> bytes:
    return b"EDGEKIT_RESULT " + json.dumps(message, separators=(",", ":")).encode() + b"\n"


def serve(fd: int, board: TflmBoard, delay_s: float, arena_used: int | None) -> None:
    """Answer EDGEKIT_RUN commands on the pty master `fd` until the other side goes away."""
    os.write(fd, b"booting edgekit-tflm (simulated)\r\n")  # console noise the host ignores
    os.write(fd, line(board.hello(arena_used)))
    buffer = b""
    while True:
        try:
            chunk = os.read(fd, 256)
        except OSError:  # the host closed the port for good
            return
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            raw, buffer = buffer.split(b"\n", 1)
            words = raw.decode("ascii", "replace").strip().split()
            if len(words) == 3 and words[0] == "EDGEKIT_RUN":
                try:
                    warmup, runs = int(words[1]), int(words[2])
                except ValueError:
                    continue
                os.write(fd, line(board.hello(arena_used)))  # like main.cc: each round
                for message in board.run(warmup, runs, delay_s):
                    os.write(fd, line(message))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A simulated TFLM board behind a pty.")
    parser.add_argument("model", help=".tflite model (int8 for a realistic MCU)")
    parser.add_argument(
        "--arena", type=int, default=None, help="tensor arena bytes (default: measured like deploy)"
    )
    parser.add_argument("--run-delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    import pty  # POSIX only: TflmBoard (tflm-host) needs neither
    import tty

    with open(args.model, "rb") as handle:
        model = handle.read()
    arena_used = None
    arena = args.arena
    if arena is None:
        measured = measure_arena(read_tflite(model))
        arena, arena_used = measured.tensor_arena_bytes, measured.minimum_bytes
    board = TflmBoard(model, arena, os.path.splitext(os.path.basename(args.model))[0])
    master, slave = pty.openpty()
    tty.setraw(slave)  # a serial line: no echo, no newline translation
    print(f"serial://{os.ttyname(slave)}?baud=115200", flush=True)
    serve(master, board, args.run_delay_ms / 1000, arena_used)
    return 0


if __name__ == "__main__":
    sys.exit(main())
