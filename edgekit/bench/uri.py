"""Device URIs for `edgekit bench --device`.

- `local`: this machine, the Linux harness in a subprocess.
- `ssh://[user@]host[:port]`: any host the system OpenSSH client reaches (aliases from
  `~/.ssh/config` work: `ssh://pi4`).
- `adb://SERIAL` (or `adb://` for the only attached device).
- `serial:///dev/ttyACM0?baud=115200`: a board running the TFLM harness.
- `tflm-host`: the TFLM Python interpreter on this machine (host simulation).
- `qemu` or `qemu:BOARD`: the bundle's TFLM firmware on a Cortex-M emulated by QEMU (the
  board from the target profile, or e.g. `qemu:mps2-an500`).

>>> parse_device("ssh://pi@raspberrypi.local:2222").port
2222
>>> parse_device("ssh://pi:secret@pi4").redacted
'ssh://pi@pi4'
>>> parse_device("serial:///dev/ttyACM0?baud=9600").baud
9600
>>> parse_device("qemu:mps2-an500").params
{'board': 'mps2-an500'}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from edgekit.errors import UsageError

SCHEMES = ("local", "ssh", "adb", "serial", "tflm-host", "qemu")
MIN_BAUD, MAX_BAUD = 50, 20_000_000
_HOST = re.compile(r"^[A-Za-z0-9_.:\[\]%-]+$")


@dataclass(frozen=True)
class DeviceURI:
    scheme: str
    host: str | None = None
    user: str | None = None
    port: int | None = None
    path: str | None = None  # serial port
    serial: str | None = None  # adb serial
    params: dict[str, str] = field(default_factory=dict)

    @property
    def baud(self) -> int:
        return int(self.params.get("baud", 115200))

    @property
    def line_timeout(self) -> float | None:
        value = self.params.get("line_timeout")
        return None if value is None else float(value)

    @property
    def redacted(self) -> str:
        """The URI as stored: never a password."""
        if self.scheme == "ssh":
            user = f"{self.user}@" if self.user else ""
            port = f":{self.port}" if self.port else ""
            return f"ssh://{user}{self.host}{port}"
        if self.scheme == "adb":
            return f"adb://{self.serial or ''}"
        if self.scheme == "serial":
            return f"serial://{self.path}?baud={self.baud}"
        if self.scheme == "qemu" and "board" in self.params:
            return f"qemu:{self.params['board']}"
        return self.scheme


MAX_SECONDS = 7 * 24 * 3600.0  # beyond this, timers overflow (1e308 s) and nothing is waited for


def positive_seconds(value: Any, what: str) -> float:
    """A positive number of seconds up to a week, or a UsageError naming `what`.

    >>> positive_seconds("2.5", "--timeout")
    2.5
    """
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be a number of seconds; received {value!r}") from None
    if not 0 < seconds <= MAX_SECONDS:  # NaN fails too
        raise UsageError(
            f"{what} must be a number of seconds > 0 and at most {MAX_SECONDS:.0f}; received "
            f"{value!r}"
        )
    return seconds


def parse_device(uri: str) -> DeviceURI:
    """Parse and validate a device URI (one-line error on anything malformed)."""
    if uri in ("local", "tflm-host", "qemu"):
        return DeviceURI(uri)
    if uri.startswith("qemu:") and "://" not in uri:
        board = uri[len("qemu:") :]
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", board):
            raise UsageError(
                f"bad device {uri!r}: expected qemu or qemu:BOARD, e.g. qemu:mps2-an386"
            )
        return DeviceURI("qemu", params={"board": board})
    if any(ord(ch) < 32 for ch in uri):
        raise UsageError(f"bad device {uri!r}: control characters")
    try:
        parts = urlsplit(uri)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for ssh://root@[::1;id]
        raise UsageError(f"bad device {uri!r}: {exc}") from None
    if parts.scheme not in SCHEMES or "://" not in uri:
        raise UsageError(
            f"bad device {uri!r}: expected local, tflm-host, qemu[:BOARD], "
            "ssh://[user@]host[:port], adb://SERIAL or serial:///dev/ttyX?baud=N"
        )
    params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    # Nothing reads them: a path or ?options on ssh:// or adb://, or a #fragment, would be
    # silently ignored.
    unused = "" if parts.scheme == "serial" or parts.path == "/" else parts.path
    unused += f"?{parts.query}" if parts.query and parts.scheme != "serial" else ""
    unused += f"#{parts.fragment}" if parts.fragment else ""
    if unused:
        raise UsageError(f"bad device {uri!r}: {parts.scheme}:// takes no {unused!r} part")
    if parts.scheme == "ssh":
        host = parts.hostname
        if not host or host.startswith("-") or not _HOST.match(host):
            raise UsageError(f"bad device {uri!r}: ssh:// needs a host name")
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            raise UsageError(f"bad device {uri!r}: the port must be a number from 1 to 65535")
        user = unquote(parts.username) if parts.username else None
        if user is not None and (user.startswith("-") or not _HOST.match(user)):
            raise UsageError(f"bad device {uri!r}: bad user name {user!r}")
        return DeviceURI("ssh", host=host, user=user, port=port, params=params)
    if parts.scheme == "adb":
        serial = unquote(parts.netloc) or None
        if serial is not None and serial.startswith("-"):
            raise UsageError(f"bad device {uri!r}: bad adb serial")
        return DeviceURI("adb", serial=serial, params=params)
    if parts.scheme == "serial":
        path = unquote(parts.path)
        if not path:
            raise UsageError(
                f"bad device {uri!r}: serial:// needs a port, e.g. serial:///dev/ttyACM0"
            )
        if "baud" in params and not (
            params["baud"].isdigit() and MIN_BAUD <= int(params["baud"]) <= MAX_BAUD
        ):
            raise UsageError(
                f"bad device {uri!r}: baud must be a number from {MIN_BAUD} to {MAX_BAUD:,}"
            )
        if "line_timeout" in params:
            positive_seconds(params["line_timeout"], f"bad device {uri!r}: line_timeout")
        unknown = set(params) - {"baud", "line_timeout"}
        if unknown:
            names = ", ".join(sorted(unknown))
            raise UsageError(f"bad device {uri!r}: unknown parameter(s) {names}")
        return DeviceURI("serial", path=path, params=params)
    raise UsageError(f"bad device {uri!r}")
