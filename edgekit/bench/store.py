"""The results store: every benchmark run, ok or failed, in one SQLite table.

The database is `edgekit.db` in the user data directory, or `EDGEKIT_DB`, or `--db PATH`.
WAL mode lets readers work while runs are written; each write is one short `BEGIN IMMEDIATE`
transaction with a 30 s busy timeout, so many processes can record at once without losing rows.

>>> import tempfile, os
>>> store = ResultStore(os.path.join(tempfile.mkdtemp(), "r.db"))
>>> from edgekit.bench.result import BenchResult
>>> run_id = store.add(BenchResult("m.tflite", "0" * 64, "cortex-m4", "tflm-host", "ok"))
>>> store.get(run_id).target
'cortex-m4'
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import platformdirs

from edgekit import jsonfile
from edgekit import metrics as M
from edgekit.bench.result import BenchResult
from edgekit.errors import UsageError

SCHEMA_VERSION = 1
# The one place the schema is written down (docs/bench.md describes each column).
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    created         TEXT NOT NULL,      -- UTC, ISO 8601
    edgekit_version TEXT NOT NULL,
    model_name      TEXT NOT NULL,
    model_sha256    TEXT NOT NULL,
    target          TEXT NOT NULL,
    device          TEXT NOT NULL,      -- device URI without credentials
    transport       TEXT NOT NULL,      -- local | ssh | adb | serial | tflm-host
    harness         TEXT,
    runtime         TEXT,
    runtime_version TEXT,
    delegate        TEXT,               -- applied delegate; NULL = plain CPU kernels
    status          TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error           TEXT,
    settings        TEXT NOT NULL,      -- JSON: threads, warmup, runs, delegate asked, input
    metrics         TEXT NOT NULL,      -- JSON: see edgekit.bench.result
    device_info     TEXT NOT NULL,      -- JSON: cpu, cores, os, ...
    latencies_ms    TEXT NOT NULL       -- JSON list, one entry per timed run
);
CREATE INDEX IF NOT EXISTS runs_model ON runs (model_sha256);
"""
COLUMNS = (
    "created",
    "edgekit_version",
    "model_name",
    "model_sha256",
    "target",
    "device",
    "transport",
    "harness",
    "runtime",
    "runtime_version",
    "delegate",
    "status",
    "error",
)
REQUIRED = {
    "created",
    "edgekit_version",
    "model_name",
    "model_sha256",
    "target",
    "device",
    "transport",
    "status",
}
# Metrics the CLI formats as numbers (see edgekit.bench.result): checked when rows are read.
NUMERIC_METRICS = (
    M.INIT_MS,
    M.FIRST_INFERENCE_MS,
    M.PEAK_RSS_MB,
    M.ARENA_USED_BYTES,
    M.ARENA_BYTES,
    M.ARENA_HOST_BYTES,
    M.FLASH_BYTES,
    M.RAM_BYTES,
    M.FLASH_BUDGET_BYTES,
    M.RAM_BUDGET_BYTES,
    M.STACK_BYTES,
    M.HEAP_BYTES,
    M.DELEGATE_NODES,
    M.TOTAL_NODES,
)
# Metrics that are objects of figures: {"p50": ..., ...}, {"per_inference": ..., ...}.
OBJECT_METRICS = (M.LATENCY_MS, M.TRANSPORT_MS, M.INSTRUCTIONS, M.ELF)
JSON_COLUMNS = ("settings", "metrics", "device_info", "latencies_ms")


def default_db_path() -> Path:
    env = os.environ.get("EDGEKIT_DB")
    if env:
        return Path(env)
    return Path(platformdirs.user_data_dir("edgekit")) / "edgekit.db"


class ResultStore:
    """SQLite results store (see the module docstring).

    Writers (`bench`) open it with `create=True` and check up front that they can write, so a
    benchmark never runs only to lose its result. Readers (`results ...`) pass `create=False`:
    a mistyped `--db` is an error, and a read-only database is read, not refused.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, create: bool = True) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.read_only = not create
        if self.path.is_dir():
            raise UsageError(f"results database {self.path} is a directory; give a file path")
        if not create:
            if not self.path.exists():
                raise UsageError(
                    f"no results database at {self.path} (run `edgekit bench` first, or pass --db)"
                )
            self._check_version()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"results database {self.path}: {exc.strerror or exc}") from None
        if self.path.exists() and not os.access(self.path, os.W_OK):
            raise UsageError(f"results database {self.path} is read-only: bench cannot record")
        if not os.access(self.path.parent, os.W_OK):
            raise UsageError(
                f"results database {self.path}: its directory is not writable (SQLite needs it "
                "for its journal)"
            )
        try:
            with self._connect() as db:
                self._check_schema(db)
                db.executescript(SCHEMA)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise UsageError(f"results database {self.path}: {exc}") from None

    def _check_schema(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise UsageError(
                f"results database {self.path} has schema {version}; this edgekit knows "
                f"{SCHEMA_VERSION} (upgrade edgekit)"
            )

    def _check_version(self) -> None:
        try:
            with self._connect() as db:
                self._check_schema(db)
                db.execute("SELECT COUNT(*) FROM runs").fetchone()
        except sqlite3.Error as exc:
            raise UsageError(f"results database {self.path}: {exc}") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            # A read-only file (or directory) cannot take WAL's side files: read it as is.
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            if not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
                uri += "&immutable=1"
            db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
        else:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            if not self.read_only:
                db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA busy_timeout = 30000")
            db.row_factory = sqlite3.Row
            yield db
        finally:
            db.close()

    def add(self, result: BenchResult) -> int:
        """Insert one run; returns its id (also set on `result.id`)."""
        if self.read_only:
            raise UsageError(f"results database {self.path} was opened read-only")
        values = [getattr(result, c) for c in COLUMNS]
        values += [json.dumps(getattr(result, c), sort_keys=True) for c in JSON_COLUMNS]
        names = ", ".join(COLUMNS + JSON_COLUMNS)
        marks = ", ".join("?" * len(values))
        try:
            with self._connect() as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    cursor = db.execute(f"INSERT INTO runs ({names}) VALUES ({marks})", values)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise UsageError(
                f"results database {self.path}: cannot record the run ({exc})"
            ) from None
        result.id = int(cursor.lastrowid)
        return result.id

    def get(self, run_id: int) -> BenchResult:
        rows = self._select("WHERE id = ?", (run_id,))
        if not rows:
            raise UsageError(f"no run with id {run_id} in {self.path}")
        return rows[0]

    def list(
        self, limit: int | None = None, model: str | None = None, fit: str | None = None
    ) -> list[BenchResult]:
        """Newest first; `model` filters by name or sha256 prefix, `fit` by the id of the
        `edgekit fit` search whose trials the rows are."""
        where, params = "", ()
        if model:
            where, params = "WHERE (model_name = ? OR model_sha256 LIKE ?)", (model, model + "%")
        if fit:
            where += (" AND" if where else "WHERE") + " device = ?"
            params += (f"fit:{fit}",)
        tail = f" ORDER BY id DESC{f' LIMIT {int(limit)}' if limit else ''}"
        return self._select(where + tail, params)

    def count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def _select(self, tail: str, params: tuple) -> list[BenchResult]:
        try:
            with self._connect() as db:
                rows = db.execute(f"SELECT * FROM runs {tail}", params).fetchall()
        except sqlite3.Error as exc:
            raise UsageError(f"results database {self.path}: {exc}") from None
        return [self._result(row) for row in rows]

    def _result(self, row: sqlite3.Row) -> BenchResult:
        """A row as a BenchResult, checked field by field: a row edited by hand (or by a
        hostile file) is one error naming its id, not a crash in whatever reads it later."""
        where = f"results database {self.path}: run {row['id']}"
        data: dict[str, Any] = {}
        for column in COLUMNS:
            value = row[column]
            if not isinstance(value, str) and (value is not None or column in REQUIRED):
                raise UsageError(f"{where} is corrupt ({column} is {value!r}, not text)")
            data[column] = value
        for column in JSON_COLUMNS:
            text = row[column]
            if not isinstance(text, (str, bytes)):
                raise UsageError(f"{where} is corrupt ({column} is {text!r}, not JSON)")
            expect = list if column == "latencies_ms" else dict
            data[column] = jsonfile.loads(text, f"{where}: {column}", expect=expect)
        for key in OBJECT_METRICS:
            if not isinstance(data["metrics"].get(key) or {}, dict):
                raise UsageError(f"{where} is corrupt (metrics.{key} is not an object)")
        metrics = data["metrics"]
        figures = [metrics.get(key) for key in NUMERIC_METRICS]
        for key in (M.LATENCY_MS, M.TRANSPORT_MS, M.ELF):
            figures += (metrics.get(key) or {}).values()
        instructions = metrics.get(M.INSTRUCTIONS) or {}
        figures += [instructions.get(key) for key in ("per_inference", "min", "max")]
        if not all(_finite(v) for v in [*figures, *data["latencies_ms"]] if v is not None):
            raise UsageError(f"{where} is corrupt (figures that are not finite numbers)")
        try:
            return BenchResult(id=row["id"], **data)
        except ValueError as exc:
            raise UsageError(f"{where} is corrupt ({exc})") from None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
