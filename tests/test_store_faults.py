"""Issue 19, faults and the store: one writer per run folder (a worker's flock, tested with a
SIGSTOPped driver), a full disk (on a small tmpfs), reading commands that open stores
read-only and refuse what is not a moescale store, results validated before they are
recorded, and unreadable checkpoints moved aside."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from conftest import run_cli
from moescale.errors import MoescaleError
from moescale.sweeps import worker
from moescale.sweeps.executors import Outcome
from moescale.sweeps.runner import run_sweep
from moescale.sweeps.spec import SweepSpec
from moescale.sweeps.store import DiskFull, SweepStore
from sweep_helpers import micro_spec, moescale_cmd, run_moescale, shared_token_cache  # noqa: F401


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wait_for(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# ----- reading commands: read-only, and only moescale stores ----------------------------------
def _not_stores(tmp_path) -> dict[str, tuple[Path, str]]:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as db, db:
        db.execute("CREATE TABLE accounts (id INTEGER, name TEXT)")
        db.execute("INSERT INTO accounts VALUES (1, 'x')")
    text = tmp_path / "notes.db"
    text.write_text("these are notes, not a database\n" * 20)
    newer = tmp_path / "newer.db"
    SweepStore(newer).close()
    with closing(sqlite3.connect(newer)) as db, db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    return {"empty": (empty, "is an empty file, not a moescale sweep store"),
            "other": (other, "another program's SQLite database (tables: accounts)"),
            "text": (text, "is not a moescale sweep store"),
            "newer": (newer, "newer moescale (store schema version 99")}


READERS = [["sweep", "status"], ["sweep", "export", "-o", "{tmp}/out.csv"], ["sweep", "analyze"],
           ["fit", "--law", "chinchilla"], ["report", "-o", "{tmp}/report"],
           ["sweep", "suggest", "--law", "chinchilla", "--target-compute", "1e12"]]


@pytest.mark.parametrize("kind", ["empty", "other", "text", "newer"])
@pytest.mark.parametrize("command", READERS, ids=lambda c: " ".join(c[:2]))
def test_reading_commands_refuse_what_is_not_a_store_and_write_nothing(tmp_path, capsys,
                                                                       kind, command):
    path, fragment = _not_stores(tmp_path)[kind]
    before, files = _digest(path), sorted(os.listdir(tmp_path))
    args = [a.replace("{tmp}", str(tmp_path)) for a in command] + ["--store", str(path)]
    code, out, err = run_cli(args, capsys)
    assert code == 2 and fragment in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _digest(path) == before and sorted(os.listdir(tmp_path)) == files


def _mount_read_only(src: Path, ro: Path) -> None:
    """Bind-mount ``src`` read-only at ``ro`` (as a snapshot or a read-only share); skip with
    the reason where that is impossible."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("a read-only mount needs root on Linux")
    ro.mkdir()
    mounted = subprocess.run(f"mount --bind {src} {ro} && mount -o remount,bind,ro {ro}",
                             shell=True, capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount read-only here: {mounted.stderr.strip()}")


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder to fill (``src``) and its read-only view, mounted on first use."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    try:
        yield src, lambda: _mount_read_only(src, ro) or ro
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)


@pytest.mark.parametrize("command", READERS, ids=lambda c: " ".join(c[:2]))
def test_reading_commands_read_a_store_on_read_only_media(read_only_folder, tmp_path, capsys,
                                                          command):
    from synthetic_sweep import synthetic_store

    src, mount = read_only_folder
    synthetic_store(src / "s.db", budgets=(3e9, 1e10, 3e10), hidden_sizes=(16, 24, 32, 48))
    path = mount() / "s.db"
    with pytest.raises(OSError):  # the media is read-only indeed
        (path.parent / "probe").write_text("x")
    args = [a.replace("{tmp}", str(tmp_path)) for a in command] + ["--store", str(path)]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "Traceback" not in err and "unable to open" not in err


def test_changes_left_in_a_wal_are_read_on_read_only_media(read_only_folder, tmp_path, capsys):
    """A store copied with its -wal but without its -shm (no writer has it open): the changes
    the -wal holds are read too, not silently dropped."""
    from synthetic_sweep import synthetic_store

    src, mount = read_only_folder
    work = tmp_path / "work"
    work.mkdir()
    synthetic_store(work / "s.db", budgets=(3e9, 1e10), hidden_sizes=(16, 24))
    with closing(sqlite3.connect(work / "s.db")) as db:  # a writer that has not checkpointed
        db.execute("PRAGMA wal_autocheckpoint = 0")
        db.execute("UPDATE runs SET status = 'failed', error = 'in the wal' WHERE ord = 0")
        db.commit()
        assert (work / "s.db-wal").stat().st_size > 0
        for name in ("s.db", "s.db-wal"):
            (src / name).write_bytes((work / name).read_bytes())
    path = mount() / "s.db"
    code, out, err = run_cli(["sweep", "status", "--store", str(path)], capsys)
    assert code == 0 and "3 done, 1 failed" in out and "in the wal" in out, err


def test_sweep_plan_refuses_a_foreign_store(tmp_path, capsys):
    spec = micro_spec(tmp_path)
    path, fragment = _not_stores(tmp_path)["other"]
    before = _digest(path)
    code, _, err = run_cli(["sweep", "plan", str(spec), "--no-estimate", "--store", str(path)],
                           capsys)
    assert code == 2 and fragment in err and _digest(path) == before


@pytest.mark.parametrize("kind", ["other", "text", "newer"])
def test_writers_refuse_foreign_files_too(tmp_path, kind):
    path, fragment = _not_stores(tmp_path)[kind]
    before = _digest(path)
    with pytest.raises(MoescaleError, match="not a moescale sweep store|newer moescale"):
        SweepStore(path)
    assert _digest(path) == before


class InstantExecutor:
    """Finishes every run at once with a given result (no training)."""

    name, capacity, threads, description, address = "instant", 2, 1, "instant", None

    def __init__(self, result):
        self.result, self.pending = result, []

    def submit_batch(self, items):
        return [self.submit(run, run_dir) for run, run_dir in items]

    def submit(self, run, run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.pending.append(run.id)
        return None

    def poll(self):
        out = [Outcome(i, "done", result=self.result, curve=[]) for i in self.pending]
        self.pending = []
        return out

    def reattach(self, run, run_dir, job_id):
        return False

    def running(self):
        return set(self.pending)

    def shutdown(self):
        pass

    def close(self):
        pass


GOOD = {"eval_loss": 2.5, "train_loss": 2.6, "tokens": 512, "steps": 2}


def test_a_store_of_another_sweep_is_not_merged_silently(tmp_path):
    db = tmp_path / "s.db"
    first = SweepSpec.load(micro_spec(tmp_path, name="first"))
    run_sweep(first, db, InstantExecutor(GOOD))
    second = SweepSpec.load(micro_spec(tmp_path, name="second", budgets="[3e8]"))
    with pytest.raises(MoescaleError) as err:
        run_sweep(second, db, InstantExecutor(GOOD))
    assert "holds sweep 'first', not 'second'" in str(err.value) and "`merge`" in str(err.value)
    assert SweepStore(db).counts()["done"] == 2  # nothing added
    out = run_sweep(second, db, InstantExecutor(GOOD), merge=True)
    assert out.counts["done"] == 2 and SweepStore(db).counts()["done"] == 4
    # once merged, the store holds both: either sweep runs again without `merge` (an audit
    # found the original refused: "holds sweep 'second', not 'first'")
    again = run_sweep(first, db, InstantExecutor(GOOD))
    assert again.counts["done"] == 2 and not again.finished
    assert run_sweep(second, db, InstantExecutor(GOOD)).counts["done"] == 2


# (result.json a worker left, fragment of the failure recorded)
BAD_RESULTS = [({}, "has no eval_loss and no tokens"),
               ({"eval_loss": 2.5}, "has no tokens"),
               ({"eval_loss": float("nan"), "tokens": 512}, "eval_loss = nan"),
               ({"eval_loss": float("inf"), "tokens": 512}, "eval_loss = inf"),
               ({"eval_loss": -1.0, "tokens": 512}, "eval_loss = -1.0"),
               ({"eval_loss": "2.5", "tokens": 512}, "eval_loss = '2.5'"),
               ({"eval_loss": 2.5, "tokens": 0}, "tokens = 0")]


@pytest.mark.parametrize("result, fragment", BAD_RESULTS, ids=[str(r) for r, _ in BAD_RESULTS])
def test_results_are_validated_before_they_are_recorded(tmp_path, result, fragment):
    db = tmp_path / "s.db"
    spec = SweepSpec.load(micro_spec(tmp_path, grid="hidden_size = [16]"))
    out = run_sweep(spec, db, InstantExecutor(result))
    assert out.counts["done"] == 0 and out.counts["failed"] == 1
    (reason,) = out.failed.values()
    assert fragment in reason and "not recorded as done" in reason
    (row,) = SweepStore(db).rows()
    assert row["status"] == "failed" and row["result"] is None


def test_damaged_rows_are_one_line_or_reported(tmp_path, capsys):
    db = tmp_path / "s.db"
    spec = SweepSpec.load(micro_spec(tmp_path))
    run_sweep(spec, db, InstantExecutor(GOOD))
    ids = [r["id"] for r in SweepStore(db).rows()]
    with closing(sqlite3.connect(db)) as raw, raw:  # a done run whose result was lost
        raw.execute("UPDATE runs SET result = NULL WHERE id = ?", (ids[0],))
    code, out, err = run_cli(["sweep", "status", "--store", str(db)], capsys)
    assert code == 0 and f"run {ids[0]} is done but has no result; it is left out" in err
    code, out, err = run_cli(["sweep", "export", "--store", str(db), "-o",
                              str(tmp_path / "r.csv")], capsys)
    assert code == 0 and "wrote 1 runs" in out and f"run {ids[0]} is done but has no result" in err
    with closing(sqlite3.connect(db)) as raw, raw:  # a row whose spec is not JSON
        raw.execute("UPDATE runs SET spec = '{\"budget\": 2e8, \"arch' WHERE id = ?", (ids[1],))
    for command in (["sweep", "status"], ["sweep", "analyze"], ["fit", "--law", "chinchilla"]):
        code, out, err = run_cli([*command, "--store", str(db)], capsys)
        assert code == 2 and "Traceback" not in err
        assert f"run {ids[1]} has a corrupt spec column (not JSON" in err
        assert len(err.strip().splitlines()) == 1


# ----- one writer per run folder ----------------------------------------------------------
def test_a_second_worker_on_a_held_folder_writes_nothing(tmp_path):
    spec = SweepSpec.load(micro_spec(tmp_path, grid="hidden_size = [16]"))
    (run,) = spec.expand()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    worker.write_atomic(run_dir / worker.SPEC_FILE, run.to_dict())
    fd = worker.hold_folder(run_dir)
    try:
        assert worker.folder_locked(run_dir)
        before = sorted(os.listdir(run_dir))
        proc = subprocess.run([sys.executable, "-m", "moescale.sweeps.worker", str(run_dir)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == worker.EXIT_LOCKED
        assert "held by another worker" in proc.stderr
        assert sorted(os.listdir(run_dir)) == before  # no error.json, no result.json
        from moescale.sweeps.executors.local import start_worker

        with pytest.raises(MoescaleError, match="held by another worker"):
            start_worker(run, run_dir, 1, "-", dict(os.environ))
    finally:
        worker.release_folder(fd)
    assert not worker.folder_locked(run_dir)


def _start_one_run_driver(tmp_path):
    """A `sweep run` driver (subprocess) of one micro run with checkpoints every 20 steps and a
    2 s lease: (store path, its arguments, the process)."""
    pytest.importorskip("torch")
    spec = micro_spec(tmp_path, grid="hidden_size = [16]", budgets="[2e10]",
                      train="eval_every = 20\ncheckpoint_every = 20\n")
    db = tmp_path / "s.db"
    args = ["sweep", "run", str(spec), "--store", str(db), "--workers", "1", "--threads", "1",
            "--lease-seconds", "2", "--json"]
    proc = subprocess.Popen(moescale_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    return db, args, proc


@pytest.mark.slow
def test_a_sigstopped_driver_never_leads_to_two_workers_on_one_run(tmp_path):
    db, args, a = _start_one_run_driver(tmp_path)
    try:
        def training():
            try:  # the driver may be creating the store at this moment
                rows = SweepStore(db, readonly=True).rows()
            except MoescaleError:
                return False
            return bool(rows and rows[0]["job_id"] and rows[0]["run_dir"]
                        and worker.read_curve(Path(rows[0]["run_dir"])))
        _wait_for(training, 180, "driver A's worker to train")
        (row,) = SweepStore(db, readonly=True).rows()
        run_dir, worker_pid = Path(row["run_dir"]), int(row["job_id"].rsplit(":", 1)[1])
        a.send_signal(signal.SIGSTOP)  # A is paused; its worker trains on
        time.sleep(3)  # past A's 2 s lease
        assert worker.folder_locked(run_dir)
        b = run_moescale(*args, timeout=300)  # B takes the run over, waits for the worker
        assert b.returncode == 0, b.stderr
        b_out = json.loads(b.stdout)
        assert b_out["waited"] == [row["id"]] and b_out["finished"] == [row["id"]]
    finally:
        a.send_signal(signal.SIGCONT)
    a_stdout, a_stderr = a.communicate(timeout=120)
    a_out = json.loads(a_stdout)
    assert a_out["lost_claims"] == [row["id"]] and not a_out["finished"], a_stderr
    (done,) = SweepStore(db, readonly=True).rows()
    assert done["status"] == "done" and done["result"]["pid"] == worker_pid
    assert [h["outcome"] for h in done["history"]].count("done") == 1
    # one worker ever trained the run: one start, no second start or resume in its log
    events = [json.loads(line).get("event") for line in
              (run_dir / worker.LOG_FILE).read_text().splitlines()]
    assert events.count("start") == 1 and "resume" not in events


@pytest.mark.slow
def test_a_sigstopped_worker_is_killed_and_its_run_resumed(tmp_path):
    """A worker stopped under a live driver stops touching its heartbeat; past the stall time
    the driver kills it and the run resumes from its checkpoint to the end, once."""
    db, _, driver = _start_one_run_driver(tmp_path)
    try:
        def checkpointed():
            try:  # the driver may be creating the store at this moment
                rows = SweepStore(db, readonly=True).rows() if db.exists() else []
            except MoescaleError:
                return False
            return bool(rows and rows[0]["run_dir"]
                        and (Path(rows[0]["run_dir"]) / worker.CHECKPOINT_FILE).exists())
        _wait_for(checkpointed, 180, "the worker's first checkpoint")
        (row,) = SweepStore(db, readonly=True).rows()
        pid = int(row["job_id"].rsplit(":", 1)[1])
        os.kill(pid, signal.SIGSTOP)
        out, err = driver.communicate(timeout=300)
    finally:
        driver.kill()
    assert driver.returncode == 0, err
    (done,) = SweepStore(db, readonly=True).rows()
    assert done["status"] == "done" and done["result"]["resumed"]
    retries = [h for h in done["history"] if h["outcome"] == "retry"]
    assert len(retries) == 1 and f"its worker (pid {pid}) stalled" in retries[0]["error"]
    assert [h["outcome"] for h in done["history"]].count("done") == 1


def test_sweep_status_shows_a_silent_worker_as_stalled(tmp_path, capsys):
    """A running run whose lease is renewed (its driver lives) but whose worker has not
    touched its heartbeat for a minute is ``stalled``, with how long it has been silent."""
    from moescale.sweeps.runner import STALL_SECONDS

    spec = SweepSpec.load(micro_spec(tmp_path, grid="hidden_size = [16]"))
    db, run_dir = tmp_path / "s.db", tmp_path / "run"
    with SweepStore(db) as store:
        store.add_runs(spec.expand())
        claim = store.claim(lease_s=3600)
        store.set_run_dir(claim.run.id, claim.token, str(run_dir))
    run_dir.mkdir()
    beat = run_dir / worker.HEARTBEAT_FILE
    beat.touch()
    code, out, _ = run_cli(["sweep", "status", "--store", str(db), "--json"], capsys)
    assert json.loads(out)["runs"][0]["state"] == "running"
    silent = STALL_SECONDS + 30
    os.utime(beat, (time.time() - silent,) * 2)
    code, out, _ = run_cli(["sweep", "status", "--store", str(db), "--json"], capsys)
    (run,) = json.loads(out)["runs"]
    assert run["state"] == "stalled" and run["worker_silent_s"] == pytest.approx(silent, abs=5)
    code, out, _ = run_cli(["sweep", "status", "--store", str(db)], capsys)
    assert "its worker has been silent for" in out


# ----- full disk -----------------------------------------------------------------------------
class FullDisk:
    """A connection whose writes fail as SQLite does when the disk is full."""

    def __init__(self, db):
        self.db = db

    def execute(self, sql, *args):
        if sql.lstrip().upper().startswith(("INSERT", "UPDATE")):
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.db, name)


def test_a_full_disk_under_the_store_is_one_error_and_changes_nothing(tmp_path):
    store = SweepStore(tmp_path / "s.db")
    spec = SweepSpec.load(micro_spec(tmp_path))
    store.db = FullDisk(store.db)
    with pytest.raises(DiskFull) as err:
        store.meta("k", "v")
    assert str(err.value).startswith("disk full: cannot write the sweep store")
    assert "\n" not in str(err.value)
    store.db = store.db.db
    assert not store.db.in_transaction and store.meta("k") is None
    assert store.add_runs(spec.expand()) == 2


def test_a_worker_that_fills_the_disk_removes_its_temporary_files(tmp_path):
    import errno

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".checkpoint.pt.tmp123").write_bytes(b"half a checkpoint")
    (run_dir / "result.json.partial").write_text("{")
    (run_dir / "checkpoint.pt").write_bytes(b"the last good one")
    assert sorted(worker.remove_temporary(run_dir)) == [".checkpoint.pt.tmp123",
                                                         "result.json.partial"]
    assert sorted(os.listdir(run_dir)) == ["checkpoint.pt"]
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos") from inner
    except RuntimeError as exc:
        assert worker.disk_full(exc)
        assert worker.failure_reason(exc).startswith("disk full:")


def _small_filesystem(path: Path, size: str) -> None:
    """Mount a tmpfs of ``size`` at ``path``; skip (with the reason) where that is impossible."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("disk-full test needs root on Linux to mount a small tmpfs "
                    "(the in-process disk-full tests above still run)")
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode}); "
                    "the in-process disk-full tests above still run")


@pytest.mark.slow
def test_disk_full_on_a_small_filesystem(tmp_path):
    pytest.importorskip("torch")
    small = tmp_path / "small"
    _small_filesystem(small, "2m")
    try:
        spec = micro_spec(tmp_path, grid="hidden_size = [16]", budgets="[2e9]",
                          train="eval_every = 5\ncheckpoint_every = 5\n")
        db = small / "s.db"
        store = SweepStore(db)
        store.add_runs(SweepSpec.load(spec).expand())
        store.close()
        free = os.statvfs(small).f_bavail * os.statvfs(small).f_frsize
        (small / "filler").write_bytes(bytes(max(free - 96 * 1024, 0)))  # ~96 KB left
        args = ["sweep", "run", str(spec), "--store", str(db), "--workers", "1",
                "--threads", "1", "--json"]
        proc = run_moescale(*args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, proc.stderr
        assert len(lines) == 1 and lines[0].startswith("Error: disk full"), proc.stderr
        leftovers = [p.name for p in small.rglob("*") if p.name.startswith(".checkpoint.pt.tmp")
                     or p.name.endswith(".partial")]
        assert leftovers == []
        (small / "filler").unlink()  # space again: the run resumes and finishes
        proc = run_moescale(*args)
        assert proc.returncode == 0, proc.stderr
        (row,) = SweepStore(db, readonly=True).rows()
        assert row["status"] == "done"
    finally:
        subprocess.run(["umount", "-l", str(small)], capture_output=True)


# ----- unreadable checkpoints --------------------------------------------------------------
@pytest.mark.slow
def test_an_unreadable_checkpoint_is_moved_aside_and_the_run_starts_afresh(tmp_path):
    pytest.importorskip("torch")
    spec_path = micro_spec(tmp_path, grid="hidden_size = [16]")
    db = tmp_path / "s.db"
    (run,) = SweepSpec.load(spec_path).expand()
    with SweepStore(db) as store:  # a run that failed on its damaged checkpoint before
        store.add_runs([run])
        claim = store.claim()
        store.fail(run.id, claim.token, "checkpoint.pt is not a readable moescale checkpoint")
    run_dir = tmp_path / "s_runs" / run.id
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated by a crash")
    proc = run_moescale("sweep", "run", str(spec_path), "--store", str(db), "--retry-failed",
                        "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    assert f"note: run {run.id}: its checkpoint was unreadable" in proc.stderr
    assert "started afresh" in proc.stderr
    aside = [p.name for p in run_dir.iterdir() if p.name.startswith("checkpoint.pt.corrupt-")]
    assert len(aside) == 1
    (row,) = SweepStore(db, readonly=True).rows()
    assert row["status"] == "done" and row["result"]["resumed"] is False
    assert "moved to checkpoint.pt.corrupt-" in row["result"]["checkpoint_discarded"]
