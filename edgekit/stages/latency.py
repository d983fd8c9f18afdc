"""The host-latency stage: the deployed model timed on this host (LiteRT, 1 thread, XNNPACK,
through edgekit's harness).

A figure to compare variants of one model (pruned, factorised) by, measured the same way every
time; the target's own latency is `edgekit bench`'s. MCU models run on the board (or QEMU), so
this host's CPU says nothing about them and they are not timed here.

>>> from edgekit.stages.latency import host_latency                              # doctest: +SKIP
>>> host_latency(deployed, profile).p50_ms                                       # doctest: +SKIP
0.0831
"""

from __future__ import annotations

from edgekit.errors import EdgekitError
from edgekit.options import HOST_LATENCY_RUNS
from edgekit.report import HostLatency
from edgekit.runtimes.timing import host_latencies
from edgekit.targets import TargetProfile
from edgekit.tflite_model import TFLiteModel

MCU_SKIP = "an MCU's latency is measured on the board (edgekit bench)"


def host_latency(
    model: TFLiteModel, profile: TargetProfile, runs: int = HOST_LATENCY_RUNS
) -> HostLatency:
    """p50 of `runs` timed runs, with how it was measured; a failure is recorded, not raised."""
    details: list[dict] = []
    try:
        p50 = host_latencies([model.data], rounds=1, runs=runs, details=details)[0]
    except (EdgekitError, KeyError, TypeError) as exc:
        return HostLatency(error=f"not measured: {str(exc).splitlines()[0][:160]}")
    device = details[0].get("device", {}) if details else {}
    what = "int8 model on this host's CPU"
    if profile.uses_edgetpu:
        what += " (the Edge TPU-compiled model needs the device)"
    return HostLatency(
        p50_ms=round(p50, 4),
        runs=runs,
        threads=1,
        delegate="xnnpack",
        cpu=device.get("cpu"),
        harness="devices/linux/edgekit_harness.py",
        what=what,
    )
