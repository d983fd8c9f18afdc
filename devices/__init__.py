"""On-device benchmark harnesses (installed as `edgekit.devices`); see devices/README.md."""
