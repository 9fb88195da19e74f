"""The results store of a sweep: one SQLite file (WAL mode, standard library ``sqlite3``).

The only module that speaks SQL. Guarantees:

- **Atomic claims.** :meth:`SweepStore.claim` moves one run from ``pending`` to ``running`` in a
  single ``BEGIN IMMEDIATE`` transaction and hands out a fresh claim token; two drivers on one
  store never hold the same run.
- **The dead are detected.** A claim carries a lease that the driver renews
  (:meth:`heartbeat`). A ``running`` run whose lease has expired, or whose driver process on
  this host is gone, goes back to ``pending`` at the next claim (its attempt is kept in
  ``history``).
- **Retired runs are kept.** A run the sweep's spec no longer produces (an earlier version
  of the spec) can be retired (:meth:`retire`): it is never claimed again and counts as
  ``retired``, not ``pending``; a retired run that had finished stays ``done`` with its
  result. A spec that produces it again brings it back (:meth:`unretire`).
- **Results are written once.** :meth:`finish` and :meth:`fail` only act while the caller
  still holds the claim token of a ``running`` run, so a ``done`` run is never overwritten or
  run again, and a result from a lost attempt is discarded.

SQLite must not be shared over a network file system by several writers: with remote
executors only the driver writes this file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import socket
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moescale.errors import MoescaleError
from moescale.sweeps.spec import RunSpec

STATUSES = ("pending", "running", "done", "failed")
COUNTED = (*STATUSES, "retired")  # keys of :meth:`SweepStore.counts`

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    sweep TEXT NOT NULL,
    ord INTEGER NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    token TEXT,
    host TEXT,
    pid INTEGER,
    lease_until REAL,
    heartbeat REAL,
    added REAL NOT NULL,
    started REAL,
    finished REAL,
    run_dir TEXT,
    job_id TEXT,
    result TEXT,
    error TEXT,
    history TEXT NOT NULL DEFAULT '[]',
    retired REAL
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, ord);
CREATE TABLE IF NOT EXISTS curves (
    run_id TEXT NOT NULL REFERENCES runs (id),
    step INTEGER NOT NULL,
    tokens INTEGER,
    flops REAL,
    train_loss REAL,
    eval_loss REAL,
    PRIMARY KEY (run_id, step)
);
"""
SCHEMA_VERSION = "1"


class DiskFull(MoescaleError):
    """The disk holding the store or a run folder is full."""


def _disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (an ``OSError`` or SQLite error) says the disk is full."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return "disk is full" in text or "disk full" in text or "no space left" in text


def is_disk_full(exc: BaseException) -> bool:
    return _disk_full(exc)


def sweep_name_conflict(store_names: Iterable[str], name: str, store: str | Path,
                        source: str) -> str | None:
    """The refusal when a store holds runs of other sweeps and none of ``name`` (None when
    not: a store that already holds ``name`` — merged before — takes its runs again)."""
    names = set(store_names)
    others = sorted(names - {name})
    if not others or name in names:
        return None
    held = ", ".join(repr(o) for o in others[:3]) + (", …" if len(others) > 3 else "")
    return (f"{store} holds sweep {held}, not {name!r} (the sweep of {source}); use another "
            f"`store`, or `merge` to add {name!r}'s runs to this store")


@dataclass(frozen=True)
class Claim:
    """A run handed to one driver: its spec, the claim token and the attempt number."""

    run: RunSpec
    token: str
    attempt: int


def this_host() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _history(text: str | None) -> list:
    """A run's attempt history; a damaged one starts again (the outcome matters, not it)."""
    try:
        value = json.loads(text or "[]")
    except json.JSONDecodeError:
        return [{"outcome": "history lost (the column was damaged)"}]
    return value if isinstance(value, list) else []


def result_problem(result: Any) -> str | None:
    """Why ``result`` (a run's ``result.json``) cannot be recorded as a finished run, or None:
    it must be an object with a finite, positive ``eval_loss`` and a positive ``tokens``."""
    if not isinstance(result, dict):
        return "has no result" if result is None else "has a result that is not a JSON object"
    missing = [k for k in ("eval_loss", "tokens") if result.get(k) is None]
    if missing:
        return f"its result has no {' and no '.join(missing)}"
    for key in ("eval_loss", "tokens"):
        v = result[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            return f"its result has {key} = {v!r} (a finite positive number is needed)"
    return None


def state(status: str, retired: float | None) -> str:
    """The status a person sees: ``retired`` for a retired run that never finished."""
    return "retired" if retired is not None and status != "done" else status


class SweepStore:
    """A sweep's SQLite store. Cheap to open; one connection per thread or process."""

    def __init__(self, path: str | Path, create: bool = True, readonly: bool = False,
                 durable: bool = True) -> None:
        """Open (``create``: or make) the store at ``path``. ``readonly`` opens it read-only
        (SQLite ``mode=ro``): nothing is ever written, and a file that is not a moescale
        store (an empty file, another program's database) is refused. ``durable=False``
        skips the fsync of every commit (throwaway stores: synthetic data, benchmarks)."""
        self.path = Path(path)
        self.readonly = readonly
        self.problems: list[str] = []  # rows read that could not be used (see :meth:`rows`)
        self._copy: str | None = None  # a temporary copy read in place of read-only media
        if (readonly or not create) and not self.path.is_file():
            raise MoescaleError(f"sweep store not found: {self.path}")
        if readonly:
            self._open_readonly()
            return
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None,
                                      check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA busy_timeout = 60000")
            self.db.execute("BEGIN IMMEDIATE")  # created whole or not at all
            try:
                if self._tables():  # an existing database must be ours before anything is added
                    self._verify()
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                columns = {r[1] for r in self.db.execute("PRAGMA table_info(runs)")}
                if "job_id" not in columns:  # stores written before remote executors
                    self.db.execute("ALTER TABLE runs ADD COLUMN job_id TEXT")
                if "retired" not in columns:  # stores written before retirement
                    self.db.execute("ALTER TABLE runs ADD COLUMN retired REAL")
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                                (SCHEMA_VERSION,))
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'OFF'}")
        except MoescaleError:
            self.db.close()
            raise
        except sqlite3.OperationalError as exc:
            if _disk_full(exc):
                raise DiskFull(f"disk full: cannot write the sweep store {self.path} ({exc}); "
                               "free some space and run the command again") from None
            raise MoescaleError(f"cannot open the sweep store {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise MoescaleError(f"{self.path} is not a moescale sweep store ({exc})") from None

    def _open_readonly(self) -> None:
        """Verify, then open with ``mode=ro``. Without a ``-wal`` file (no writer has the store
        open) the check reads the file as immutable, so that a file that turns out not to be
        ours gets no ``-wal``/``-shm`` companions either."""
        if self.path.stat().st_size == 0:
            raise MoescaleError(f"{self.path} is an empty file, not a moescale sweep store")
        uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
        quiet = not Path(str(self.path) + "-wal").exists()
        for check in ((True, False) if quiet else (False,)):
            try:
                self.db = sqlite3.connect(uri + ("&immutable=1" if check else ""), uri=True,
                                          timeout=60, isolation_level=None,
                                          check_same_thread=False)
                self.db.row_factory = sqlite3.Row
                self.db.execute("PRAGMA busy_timeout = 60000")
                if check or not quiet:
                    self._verify()
            except sqlite3.OperationalError as exc:
                self.db.close()
                if "unable to open" not in str(exc):
                    raise MoescaleError(f"{self.path} is not a moescale sweep store ({exc})") \
                        from None
                self._open_immutable(uri)  # WAL mode on read-only media
                return
            except sqlite3.DatabaseError as exc:
                self.db.close()
                raise MoescaleError(f"{self.path} is not a moescale sweep store ({exc})") from None
            except MoescaleError:
                self.db.close()
                raise
            if check:
                self.db.close()
        try:
            self.db.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        except sqlite3.OperationalError:  # WAL mode needs a -shm file it cannot make here
            self.db.close()
            self._open_immutable(uri)

    def _open_immutable(self, uri: str) -> None:
        """Open a store on read-only media (a mount, a snapshot), where SQLite cannot make the
        ``-shm`` file a WAL-mode store needs. A non-empty ``-wal`` beside it holds changes
        that only a reader of both files sees: the two are copied to a temporary folder and
        the copy is read. Otherwise the file is read as immutable."""
        wal = Path(str(self.path) + "-wal")
        if wal.is_file() and wal.stat().st_size:
            import shutil
            import tempfile

            self._copy = tempfile.mkdtemp(prefix="moescale-store-")
            for source in (self.path, wal):
                shutil.copyfile(source, Path(self._copy) / source.name)
            uri = ("file:" + urllib.parse.quote(str(Path(self._copy) / self.path.name))
                   + "?mode=ro")
        else:
            uri += "&immutable=1"
        self.db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        try:
            self._verify()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise MoescaleError(f"{self.path} is not a moescale sweep store ({exc})") from None
        except MoescaleError:
            self.close()
            raise

    def _tables(self) -> set[str]:
        return {r[0] for r in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _verify(self) -> None:
        """The database is a moescale store of a schema this version reads; one error else."""
        tables = self._tables()
        if not tables:
            raise MoescaleError(f"{self.path} is an empty SQLite database, not a moescale "
                                "sweep store")
        if not {"meta", "runs"} <= tables:
            shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
            raise MoescaleError(f"{self.path} is another program's SQLite database (tables: "
                                f"{shown}), not a moescale sweep store")
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            raise MoescaleError(f"{self.path} has no moescale schema version; it is not a "
                                "moescale sweep store")
        try:
            version = int(row[0])
        except (TypeError, ValueError):
            raise MoescaleError(f"{self.path} has an unreadable schema version {row[0]!r}; "
                                "it is not a moescale sweep store") from None
        if version > int(SCHEMA_VERSION):
            raise MoescaleError(f"{self.path} was written by a newer moescale (store schema "
                                f"version {version}; this version reads up to {SCHEMA_VERSION}); "
                                "upgrade moescale to use it")

    def close(self) -> None:
        """Close the store; a writer first folds the write-ahead log into ``sweep.db``, so
        the file alone is the whole store once no driver has it open (copying it is enough)."""
        if not self.readonly:
            try:  # never waits: with another connection writing, its own close checkpoints
                self.db.execute("PRAGMA busy_timeout = 0")
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
        self.db.close()
        if self._copy:  # a store on read-only media read through a copy
            import shutil

            shutil.rmtree(self._copy, ignore_errors=True)
            self._copy = None

    def __enter__(self) -> SweepStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----- transactions ----------------------------------------------------------------------
    def _write(self, fn, *args):
        """Run ``fn(*args)`` inside one ``BEGIN IMMEDIATE`` transaction. A full disk is one
        :class:`DiskFull` error (the transaction is rolled back: the store stays as it was)."""
        if self.readonly:
            raise MoescaleError(f"{self.path} was opened read-only")
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                out = fn(*args)
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if self.db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            if _disk_full(exc):
                raise DiskFull(f"disk full: cannot write the sweep store {self.path} ({exc}); "
                               "free some space and run the command again (finished runs are "
                               "kept, the others resume from their last checkpoint)") from None
            raise
        return out

    # ----- adding runs -------------------------------------------------------------------------
    def add_runs(self, runs: Iterable[RunSpec]) -> int:
        """Insert runs that are not in the store yet (by id); returns how many were new."""
        def add():
            start = self.db.execute("SELECT COALESCE(MAX(ord), -1) + 1 FROM runs").fetchone()[0]
            before = self.db.total_changes
            now = time.time()
            self.db.executemany(
                "INSERT OR IGNORE INTO runs (id, sweep, ord, spec, added) VALUES (?, ?, ?, ?, ?)",
                [(r.id, r.sweep, start + i, json.dumps(r.to_dict()), now)
                 for i, r in enumerate(runs)])
            return self.db.total_changes - before
        return self._write(add)

    def extend_trunks(self, runs: Iterable[RunSpec]) -> dict[str, int]:
        """Give trunks the spec the sweep has now (budgets added or removed change a trunk's end
        and kept points, never its id). A finished trunk whose end moved later is pending again,
        to resume from its last checkpoint; running ones are left alone. Returns the reopened
        trunks with the step they had reached."""
        trunks = [r for r in runs if r.role == "trunk"]

        def extend():
            reopened = {}
            for run in trunks:
                row = self.db.execute("SELECT status, spec, history FROM runs WHERE id = ?",
                                      (run.id,)).fetchone()
                new = json.dumps(run.to_dict())
                if row is None or row["status"] == "running" or row["spec"] == new:
                    continue
                old_end = int(json.loads(row["spec"])["train"]["stop_after_steps"])
                new_end = int(run.train["stop_after_steps"])
                if row["status"] == "done" and new_end > old_end:
                    reopened[run.id] = old_end
                    history = _history(row["history"]) + [
                        {"outcome": "extended", "from_step": old_end, "to_step": new_end,
                         "time": time.time()}]
                    self.db.execute("UPDATE runs SET spec = ?, status = 'pending', attempts = 0, "
                                    "finished = NULL, history = ? WHERE id = ?",
                                    (new, json.dumps(history), run.id))
                else:
                    self.db.execute("UPDATE runs SET spec = ? WHERE id = ?", (new, run.id))
            return reopened
        return self._write(extend)

    # ----- claiming ----------------------------------------------------------------------------
    def claim(self, ids: set[str] | None = None, lease_s: float = 60.0,
              pid: int | None = None, host: str | None = None,
              ready: Callable[[RunSpec, dict[str, str]], bool] | None = None) -> Claim | None:
        """Atomically take the first pending run (of ``ids`` when given) that is ``ready``
        (``ready(run, states)``, with every run's status: a branch waits for its trunk's
        checkpoint), or ``None``."""
        pid, host = pid or os.getpid(), host or this_host()

        def take():
            self._release_dead()
            rows = self.db.execute(
                "SELECT id, spec FROM runs WHERE status = 'pending' AND retired IS NULL "
                "ORDER BY ord").fetchall()
            rows = [r for r in rows if ids is None or r["id"] in ids]
            if ready is not None and rows:
                states = dict(self.db.execute("SELECT id, status FROM runs").fetchall())
                rows = [r for r in rows
                        if ready(RunSpec.from_dict(self._decode(r, "spec")), states)]
            row = rows[0] if rows else None
            if row is None:
                return None
            token, now = uuid.uuid4().hex, time.time()
            attempt = self.db.execute(
                "UPDATE runs SET status = 'running', attempts = attempts + 1, token = ?, "
                "host = ?, pid = ?, started = ?, heartbeat = ?, lease_until = ?, error = NULL "
                "WHERE id = ? AND status = 'pending' RETURNING attempts",
                (token, host, pid, now, now, now + lease_s, row["id"])).fetchone()[0]
            return Claim(RunSpec.from_dict(self._decode(row, "spec")), token, attempt)
        return self._write(take)

    def _orphans(self) -> list[sqlite3.Row]:
        """Running runs whose driver is gone: lease expired, or its process on this host dead."""
        now, host = time.time(), this_host()
        return [r for r in self.db.execute("SELECT * FROM runs WHERE status = 'running'")
                if r["lease_until"] < now or (r["host"] == host and not pid_alive(r["pid"]))]

    def _release_dead(self) -> int:
        """Orphaned runs that never reached an executor (no job id) → pending. Orphans with a
        job id are the runner's to reconcile (:meth:`orphans`, :meth:`adopt`)."""
        lost = [r for r in self._orphans() if r["job_id"] is None]
        now = time.time()
        for r in lost:
            history = _history(r["history"]) + [
                {"attempt": r["attempts"], "outcome": "lost", "host": r["host"],
                 "pid": r["pid"], "time": now}]
            self.db.execute("UPDATE runs SET status = 'pending', token = NULL, job_id = NULL, "
                            "history = ? WHERE id = ?", (json.dumps(history), r["id"]))
        return len(lost)

    def orphans(self, ids: set[str] | None = None) -> list[dict[str, Any]]:
        """Orphaned runs that reached an executor (they have a job id), of ``ids`` if given."""
        return [dict(r) for r in self._orphans()
                if r["job_id"] is not None and (ids is None or r["id"] in ids)]

    def adopt(self, run_id: str, old_token: str, lease_s: float = 60.0,
              pid: int | None = None, host: str | None = None) -> Claim | None:
        """Take over an orphaned run (same attempt, new token); None if another driver did."""
        pid, host = pid or os.getpid(), host or this_host()

        def take():
            row = self.db.execute("SELECT id, spec, attempts FROM runs WHERE id = ? AND token = ? "
                                  "AND status = 'running'", (run_id, old_token)).fetchone()
            if row is None:
                return None
            token, now = uuid.uuid4().hex, time.time()
            self.db.execute("UPDATE runs SET token = ?, host = ?, pid = ?, heartbeat = ?, "
                            "lease_until = ? WHERE id = ?",
                            (token, host, pid, now, now + lease_s, run_id))
            return Claim(RunSpec.from_dict(self._decode(row, "spec")), token, row["attempts"])
        return self._write(take)

    def set_job(self, run_id: str, token: str, job_id: str | None) -> None:
        """Record the executor's id of the job running this attempt."""
        self._write(lambda: self.db.execute(
            "UPDATE runs SET job_id = ? WHERE id = ? AND token = ?", (job_id, run_id, token)))

    def heartbeat(self, claims: Iterable[tuple[str, str]], lease_s: float = 60.0) -> set[str]:
        """Renew the leases of ``(run id, token)`` pairs still held; returns the ids whose
        claim was lost (another driver took the run over after this one's lease expired)."""
        now = time.time()

        def beat():
            lost = set()
            for i, t in claims:
                if self.db.execute("UPDATE runs SET heartbeat = ?, lease_until = ? WHERE id = ? "
                                   "AND token = ? AND status = 'running'",
                                   (now, now + lease_s, i, t)).rowcount == 0:
                    lost.add(i)
            return lost
        return self._write(beat)

    def holds(self, run_id: str, token: str) -> bool:
        """Whether the claim ``token`` on ``run_id`` is still held."""
        return self.db.execute("SELECT 1 FROM runs WHERE id = ? AND token = ? AND "
                               "status = 'running'", (run_id, token)).fetchone() is not None

    def release(self, run_id: str, token: str, reason: str = "interrupted",
                error: str | None = None) -> bool:
        """Give a claimed run back (pending again; the attempt and ``error`` go to history)."""
        return self._settle(run_id, token, "pending", None, None, reason, note=error)

    # ----- outcomes ----------------------------------------------------------------------------
    def finish(self, run_id: str, token: str, result: dict[str, Any],
               curve: list[dict[str, Any]] = ()) -> bool:
        """Record a finished run and its curve; False if the claim was lost meanwhile."""
        return self._settle(run_id, token, "done", result, None, "done", curve)

    def fail(self, run_id: str, token: str, error: str) -> bool:
        """Record a failed run with its reason; False if the claim was lost meanwhile."""
        return self._settle(run_id, token, "failed", None, error, "failed")

    def _settle(self, run_id, token, status, result, error, outcome, curve=(),
                note: str | None = None) -> bool:
        def settle():
            row = self.db.execute("SELECT attempts, host, pid, history FROM runs WHERE id = ? "
                                  "AND token = ? AND status = 'running'",
                                  (run_id, token)).fetchone()
            if row is None:
                return False
            now = time.time()
            history = _history(row["history"]) + [
                {"attempt": row["attempts"], "outcome": outcome, "host": row["host"],
                 "pid": row["pid"], "time": now} | ({"error": error or note}
                                                     if error or note else {})]
            self.db.execute(
                "UPDATE runs SET status = ?, token = NULL, job_id = NULL, result = ?, error = ?, "
                "finished = CASE WHEN ? = 'pending' THEN NULL ELSE ? END, "
                "history = ? WHERE id = ?",
                (status, json.dumps(result) if result is not None else None, error, status, now,
                 json.dumps(history), run_id))
            self._insert_curve(run_id, curve)
            return True
        return self._write(settle)

    def set_run_dir(self, run_id: str, token: str, run_dir: str) -> None:
        self._write(lambda: self.db.execute(
            "UPDATE runs SET run_dir = ? WHERE id = ? AND token = ?", (run_dir, run_id, token)))

    def retry_failed(self, ids: set[str] | None = None) -> int:
        """Failed runs (of ``ids`` when given) → pending, to be run again."""
        def retry():
            rows = [r["id"] for r in self.db.execute("SELECT id FROM runs WHERE status='failed'")
                    if ids is None or r["id"] in ids]
            self.db.executemany("UPDATE runs SET status = 'pending', error = NULL WHERE id = ?",
                                [(i,) for i in rows])
            return len(rows)
        return self._write(retry)

    def stale(self, sweep: str, ids: set[str]) -> list[str]:
        """Runs of sweep ``sweep`` that are not in ``ids`` (an earlier version of its spec) and
        not retired yet; running runs are left to finish."""
        return [r["id"] for r in self.db.execute(
            "SELECT id, status FROM runs WHERE sweep = ? AND retired IS NULL ORDER BY ord",
            (sweep,)) if r["id"] not in ids and r["status"] != "running"]

    def retire(self, run_ids: Iterable[str]) -> int:
        """Retire runs: never claimed again, counted as ``retired`` (a done run keeps its
        status and result). Returns how many were retired."""
        now = time.time()
        return self._write(lambda: self.db.executemany(
            "UPDATE runs SET retired = ? WHERE id = ? AND retired IS NULL AND status != 'running'",
            [(now, i) for i in run_ids]).rowcount)

    def unretire(self, run_ids: Iterable[str]) -> int:
        """Bring retired runs back (their spec produces them again)."""
        return self._write(lambda: self.db.executemany(
            "UPDATE runs SET retired = NULL WHERE id = ? AND retired IS NOT NULL",
            [(i,) for i in run_ids]).rowcount)

    def import_done(self, run: RunSpec, result: dict[str, Any], curve: list[dict],
                    run_dir: str) -> bool:
        """Add a run finished outside any sweep (``moescale train``) as ``done``; False if its
        id is already in the store."""
        def add():
            if self.db.execute("SELECT 1 FROM runs WHERE id = ?", (run.id,)).fetchone():
                return False
            start = self.db.execute("SELECT COALESCE(MAX(ord), -1) + 1 FROM runs").fetchone()[0]
            now = time.time()
            self.db.execute(
                "INSERT INTO runs (id, sweep, ord, spec, status, attempts, added, finished, "
                "run_dir, result, history) VALUES (?, ?, ?, ?, 'done', 1, ?, ?, ?, ?, ?)",
                (run.id, run.sweep, start, json.dumps(run.to_dict()), now, now, run_dir,
                 json.dumps(result), json.dumps([{"attempt": 1, "outcome": "imported",
                                                  "time": now}])))
            self._insert_curve(run.id, curve)
            return True
        return self._write(add)

    def _insert_curve(self, run_id: str, curve) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO curves VALUES (?, ?, ?, ?, ?, ?)",
            [(run_id, c["step"], c.get("tokens"), c.get("flops"), c.get("train_loss"),
              c.get("eval_loss")) for c in curve])

    def meta(self, key: str, value: str | None = None) -> str | None:
        """Read (``value=None``) or write a small setting kept with the sweep."""
        if value is not None:
            self._write(lambda: self.db.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value)))
            return value
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row["value"] if row else None

    # ----- reading -----------------------------------------------------------------------------
    def rows(self, ids: set[str] | None = None) -> list[dict[str, Any]]:
        """Every run as a dict (spec and result decoded), in the spec's order.

        A column that is not JSON is one :class:`MoescaleError` naming the run. A ``done`` run
        without a usable result is left out and reported in :attr:`problems`."""
        out = []
        self.problems = []
        for r in self.db.execute("SELECT * FROM runs ORDER BY ord"):
            if ids is not None and r["id"] not in ids:
                continue
            row = dict(r)
            row["spec"] = self._decode(r, "spec")
            row["result"] = self._decode(r, "result") if row["result"] else None
            row["history"] = self._decode(r, "history")
            if not isinstance(row["spec"], dict):
                raise MoescaleError(f"{self.path}: run {r['id']} has a damaged spec (not a JSON "
                                    "object); the store was edited or damaged")
            if row["status"] == "done" and not isinstance(row["result"], dict):
                what = "has no result" if row["result"] is None else "has a result that is " \
                    "not a JSON object"
                self.problems.append(f"run {r['id']} is done but {what}; it is left out")
                continue
            out.append(row)
        return out

    def _decode(self, row, column: str) -> Any:
        try:
            return json.loads(row[column])
        except (json.JSONDecodeError, TypeError) as exc:
            raise MoescaleError(f"{self.path}: run {row['id']} has a corrupt {column} column "
                                f"(not JSON: {exc}); the store was edited or damaged") from None

    def sweep_names(self) -> set[str]:
        """Names of the sweeps whose runs the store holds (runs added by ``sweep import`` do
        not count: they belong to no spec)."""
        names = set()
        for r in self.db.execute("SELECT sweep, history FROM runs"):
            if '"outcome": "imported"' not in (r["history"] or "")[:200]:
                names.add(r["sweep"])
        return names

    def counts(self, ids: set[str] | None = None) -> dict[str, int]:
        """Runs by status (of ``ids`` when given); a retired run that never finished counts
        as ``retired``, one that finished as ``done``."""
        counts = dict.fromkeys(COUNTED, 0)
        for s in self.states(ids).values():
            counts[s] += 1
        return counts

    def states(self, ids: set[str] | None = None) -> dict[str, str]:
        """Each run's status (of ``ids`` when given), ``retired`` for retired unfinished runs."""
        return {r["id"]: state(r["status"], r["retired"])
                for r in self.db.execute("SELECT id, status, retired FROM runs ORDER BY ord")
                if ids is None or r["id"] in ids}

    def curve(self, run_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute(
            "SELECT step, tokens, flops, train_loss, eval_loss FROM curves WHERE run_id = ? "
            "ORDER BY step", (run_id,))]

    def curves_frame(self):
        """Every logged point of every run: run_id, step, tokens, flops, train_loss, eval_loss."""
        import pandas as pd

        return pd.read_sql_query("SELECT * FROM curves ORDER BY run_id, step", self.db)
