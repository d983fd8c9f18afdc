"""A deploy bundle on disk: written atomically, read back with :meth:`Bundle.load`.

A bundle is a directory holding the deployed model, the float reference, target-specific files
(TFLM sources, the Edge TPU model, the benchmark harness) and `report.json`/`report.md`. It is
assembled in a hidden staging directory beside its final place and swapped in only when
complete, so the final path always holds either the old bundle or the new one.

>>> bundle = Bundle.load("edgekit-out/digits-cortex-m4")        # doctest: +SKIP
>>> bundle.profile.name, bundle.file(Role.DEPLOYED_MODEL).name    # doctest: +SKIP
('cortex-m4', 'digits_int8.tflite')
"""

from __future__ import annotations

import ctypes
import glob
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgekit import jsonfile
from edgekit.errors import UsageError
from edgekit.files import FORCE_HINT
from edgekit.isolation import process_alive
from edgekit.report import Artifact, DeployReport, Role
from edgekit.targets import TargetProfile

MAX_REPORT_BYTES = 32 * 1024 * 1024


@dataclass
class Bundle:
    """A bundle directory, its report and the effective profile it was made for."""

    path: Path
    report: DeployReport
    profile: TargetProfile

    @property
    def ok(self) -> bool:
        return self.report.ok

    def file(self, role: Role) -> Path | None:
        """The path of the first artifact with `role`, checked to lie inside the bundle."""
        artifact = self.report.artifact(role)
        return None if artifact is None else inside(self.path, artifact.path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Bundle:
        """Read and validate a bundle directory. Every problem is one UsageError."""
        root = Path(path)
        report_file = root / "report.json"
        if not root.is_dir():
            raise UsageError(f"{root}: not a deploy bundle directory")
        if not report_file.is_file():
            raise UsageError(f"{root}: not a deploy bundle (no report.json)")
        if report_file.stat().st_size > MAX_REPORT_BYTES:
            raise UsageError(f"{report_file}: larger than {MAX_REPORT_BYTES >> 20} MiB")
        data = jsonfile.loads(report_file.read_bytes(), str(report_file), expect=dict)
        try:
            report = DeployReport.from_dict(data, str(report_file))
        except (TypeError, ValueError, KeyError) as exc:
            raise UsageError(f"{report_file}: not an edgekit report ({exc})") from None
        for artifact in report.artifacts:
            inside(root, artifact.path)  # raises for paths outside the bundle
        return cls(root, report, report.target)


def inside(root: Path, relative: str) -> Path:
    """`root / relative`, refusing absolute paths and anything that resolves outside `root`."""
    if not isinstance(relative, str) or not relative or "\0" in relative:
        raise UsageError(f"{root}: artifact path {relative!r} is not a file name")
    if os.path.isabs(relative):
        raise UsageError(f"{root}: artifact path {relative!r} is not relative to the bundle")
    candidate = (root / relative).resolve()
    base = root.resolve()
    if candidate != base and base not in candidate.parents:
        raise UsageError(f"{root}: artifact path {relative!r} points outside the bundle")
    return root / relative


# --- writing ---------------------------------------------------------------------------------


def prepare(out: Path | str | None, name: str, force: bool) -> tuple[Path, Path]:
    """(final bundle path, staging directory). Fails early on an unwritable or taken path."""
    root = Path(out) if out is not None else Path.cwd() / "edgekit-out"
    final = root / name
    check_final(final, force)
    try:
        root.mkdir(parents=True, exist_ok=True)
        remove_stale(root, name)
        # The PID in the name tells a later deploy whether its writer is still alive.
        staging = Path(
            tempfile.mkdtemp(prefix=f".{name}.{os.getpid()}.", suffix=".partial", dir=root)
        )
        try:
            umask = os.umask(0)
            os.umask(umask)
            staging.chmod(0o777 & ~umask)  # mkdtemp makes 0700; a bundle is ordinary
        except BaseException:  # a failure or a signal here: the caller never sees staging
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except OSError as exc:
        raise UsageError(f"cannot write to --out {root} ({exc.strerror or exc})") from None
    return final, staging


def remove_stale(root: Path, name: str) -> list[Path]:
    """Remove what killed deploys of `name` left in `root` (SIGKILL skips every cleanup):
    staging directories `.NAME.PID.XXXX.partial` and set-aside bundles `.NAME.old-PID` whose
    process is gone. Those of live processes (a concurrent deploy) are left alone."""
    removed = []
    for path in root.glob(f".{glob.escape(name)}.*"):
        rest = path.name[len(name) + 2 :]
        if rest.startswith("old-"):
            pid = rest[4:]
        elif rest.endswith(".partial"):
            pid = rest.split(".", 1)[0]
        else:
            continue
        if pid.isdigit() and not process_alive(int(pid)):
            _remove(path)
            removed.append(path)
    return removed


def missing_dirs(root: Path) -> list[Path]:
    """`root` and its ancestors that do not exist yet, deepest first (what `prepare` creates)."""
    root = Path(os.path.abspath(root))
    return [p for p in (root, *root.parents) if not os.path.lexists(p)]


def abandon(staging: Path | None, created: list[Path]) -> None:
    """Remove an unfinished bundle's staging directory (None: not made yet) and the folders
    made for it (`created`, from :func:`missing_dirs`) that are still empty: an interrupted
    deploy leaves nothing."""
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
    for directory in created:
        if not os.path.lexists(directory):  # the signal landed before mkdir made this one
            continue
        try:
            directory.rmdir()
        except OSError:  # not empty (someone else's files): leave it and what holds it
            break


def check_final(final: Path, force: bool) -> None:
    """Refuse a taken final path (a bundle, a file, a symlink, even a dangling one)."""
    if os.path.lexists(final) and not force:
        kind = "a symlink" if final.is_symlink() else ("a file" if final.is_file() else "")
        what = f" ({kind})" if kind else ""
        raise UsageError(f"{final} already exists{what}; {FORCE_HINT}")
    if final.parent.exists() and not final.parent.is_dir():
        raise UsageError(f"--out {final.parent} is not a directory")


def check_writable(root: Path) -> None:
    """Refuse an --out that cannot be written, before any work: the directory, or the
    nearest existing one above it, must take a file (tried, not guessed: root passes
    permission bits, and a read-only mount says so only when written)."""
    probe = Path(root)
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"--out {probe} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write to --out {root} ({exc.strerror or exc})") from None


RENAME_EXCHANGE = 2
AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    result = renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    return result == 0


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def publish(staging: Path, final: Path, force: bool) -> None:
    """Move the finished bundle into place; with force, swap out the old one atomically.

    The final path never goes missing: with RENAME_EXCHANGE the old and new bundles trade
    places in one step (then the old one, now at the staging path, is deleted). Where the
    kernel lacks it, the old bundle is renamed aside first and restored if the second rename
    fails.
    """
    if not os.path.lexists(final):
        staging.rename(final)
        return
    check_final(final, force)
    if _exchange(staging, final):
        _remove(staging)
        return
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    final.rename(old)
    try:
        staging.rename(final)
    except OSError:
        old.rename(final)
        raise
    _remove(old)


class BundleFiles:
    """Files written into a (staging) bundle directory, each recorded as an Artifact.

    >>> import tempfile
    >>> files = BundleFiles(Path(tempfile.mkdtemp()))
    >>> files.write("a.tflite", b"TFL3", Role.DEPLOYED_MODEL).name, files.artifacts[0].bytes
    ('a.tflite', 4)
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.artifacts: list[Artifact] = []

    def write(self, relative: str, data: bytes | str, role: Role) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
        return self.add(path, role)

    def rewrite(self, relative: str, text: str) -> Path:
        """Replace a file written before, and its record (size, sha256)."""
        path = self.root / relative
        path.write_text(text, encoding="utf-8")
        self.artifacts = [
            Artifact.of(path, self.root, a.role) if a.path == relative else a
            for a in self.artifacts
        ]
        return path

    def add(self, path: Path, role: Role) -> Path:
        """Record a file already inside the bundle (a copy is made by :meth:`adopt`)."""
        self.artifacts.append(Artifact.of(path, self.root, role))
        return path

    def adopt(self, source: Path, relative: str, role: Role, move: bool = False) -> Path:
        """Copy (or move) `source` into the bundle as `relative`."""
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if move:
            source.rename(target)
        else:
            shutil.copyfile(source, target)
        return self.add(target, role)
