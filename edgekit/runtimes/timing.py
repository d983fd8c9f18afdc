"""TEMPORARY shim (H1 replaces)."""

from edgekit.bench.linux import host_latencies

__all__ = ["host_latencies"]
