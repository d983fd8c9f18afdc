"""Writing the files users name (exports, plots, charts): whole or not at all, never over
something that is not a regular file.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "runs.csv")
>>> with atomic_write(path) as handle:
...     _ = handle.write("id\\n")
>>> open(path).read()
'id\\n'
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from platformdirs import user_cache_dir

from edgekit.errors import UsageError

FORCE_HINT = "pass --force (Python: force=True) to replace it"


def check_replaceable(path: str | Path, force: bool) -> Path:
    """`path`, if writing there replaces nothing or (with `force`) a regular file. A FIFO,
    device or directory is refused even with `force`: replacing a FIFO or /dev/full with a
    file breaks whatever uses it."""
    path = Path(path)
    try:
        info = path.stat()  # through a symlink: the link is replaced only if it names a file
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from None
    if info is not None:
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a device, FIFO or socket"
            raise UsageError(f"{path} is {kind}, not a file; --force replaces regular files only")
        if not force:
            raise UsageError(f"{path} exists; {FORCE_HINT}")
    if not path.parent.is_dir():
        raise UsageError(f"{path.parent} is not a directory")
    return path


@contextmanager
def atomic_write(path: str | Path, force: bool = False, binary: bool = False) -> Iterator[IO]:
    """Write to a temporary file beside `path`, rename on success; refuse to overwrite."""
    path = check_replaceable(path, force)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; an export is an ordinary file
        with os.fdopen(fd, "wb" if binary else "w", newline=None if binary else "") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cache_root() -> Path:
    """edgekit's cache folder: EDGEKIT_CACHE_DIR, else the user cache directory."""
    override = os.environ.get("EDGEKIT_CACHE_DIR")
    if override:
        return Path(override)
    return Path(user_cache_dir("edgekit"))
