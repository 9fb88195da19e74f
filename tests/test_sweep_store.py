"""The sweep store: atomic claims, dead drivers detected, results written once."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from moescale.errors import MoescaleError
from moescale.sweeps.spec import SweepSpec
from moescale.sweeps.store import SweepStore
from sweep_helpers import micro_spec


@pytest.fixture
def store(tmp_path):
    spec = SweepSpec.load(micro_spec(tmp_path, grid="hidden_size = [16, 24, 32]"))
    s = SweepStore(tmp_path / "s.db")
    assert s.add_runs(spec.expand()) == 3
    assert s.add_runs(spec.expand()) == 0  # same ids: nothing new
    yield s
    s.close()


def test_claim_takes_runs_in_order_and_once(store):
    first, second, third = (store.claim() for _ in range(3))
    assert len({first.run.id, second.run.id, third.run.id}) == 3
    assert store.claim() is None
    assert store.counts() == {"pending": 0, "running": 3, "done": 0, "failed": 0,
                              "retired": 0}
    assert first.attempt == 1


def test_results_are_written_once_and_only_by_the_holder(store):
    claim = store.claim()
    assert not store.finish(claim.run.id, "not-the-token", {"eval_loss": 1.0})
    assert store.finish(claim.run.id, claim.token, {"eval_loss": 2.5},
                        [{"step": 1, "tokens": 256, "flops": 1.0, "train_loss": 3.0,
                          "eval_loss": 2.5}])
    assert not store.finish(claim.run.id, claim.token, {"eval_loss": 9.9})  # not twice
    assert not store.fail(claim.run.id, claim.token, "late failure")
    row = next(r for r in store.rows() if r["id"] == claim.run.id)
    assert row["status"] == "done" and row["result"] == {"eval_loss": 2.5}
    assert store.curve(claim.run.id)[0]["eval_loss"] == 2.5
    # a done run is never claimed again
    ids = {c.run.id for c in iter(store.claim, None)}
    assert claim.run.id not in ids


def test_expired_lease_puts_a_run_back(store):
    claim = store.claim(lease_s=0.05, pid=1, host="elsewhere")
    time.sleep(0.1)
    again = store.claim(ids={claim.run.id})
    assert again.run.id == claim.run.id and again.attempt == 2
    assert not store.finish(claim.run.id, claim.token, {"eval_loss": 1.0})  # lost claim
    row = next(r for r in store.rows() if r["id"] == claim.run.id)
    assert row["history"][0]["outcome"] == "lost"


def test_dead_driver_on_this_host_is_detected_at_once(store):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    claim = store.claim(lease_s=3600, pid=proc.pid)  # a long lease, but the process is gone
    again = store.claim(ids={claim.run.id})
    assert again is not None and again.attempt == 2


def test_live_driver_keeps_its_run(store):
    claim = store.claim(lease_s=3600)  # this process: alive
    assert store.claim(ids={claim.run.id}) is None


def test_heartbeat_extends_the_lease(store):
    claim = store.claim(lease_s=0.2, host="elsewhere", pid=1)
    for _ in range(3):
        time.sleep(0.1)
        store.heartbeat([(claim.run.id, claim.token)], lease_s=0.2)
    assert store.claim(ids={claim.run.id}) is None


def test_failed_runs_can_be_retried(store):
    claim = store.claim()
    assert store.fail(claim.run.id, claim.token, "RuntimeError: boom")
    assert store.counts()["failed"] == 1
    assert store.retry_failed() == 1
    again = store.claim(ids={claim.run.id})
    assert again.attempt == 2
    row = next(r for r in store.rows() if r["id"] == claim.run.id)
    assert [h["outcome"] for h in row["history"]] == ["failed"]


def test_claims_from_two_processes_never_overlap(tmp_path):
    spec = SweepSpec.load(micro_spec(tmp_path, grid="hidden_size = [16, 24, 32, 40, 48, 56]",
                                     budgets="[2e8, 4e8, 8e8, 1.6e9]"))
    with SweepStore(tmp_path / "s.db") as s:
        total = s.add_runs(spec.expand())
    # each claimer holds its claims (stays alive) until every claimer has reported: a
    # claimer that exited would leave dead claims, which the next claim rightly takes back
    script = ("import sys, json; from moescale.sweeps.store import SweepStore\n"
              "s = SweepStore(sys.argv[1]); got = []\n"
              "while (c := s.claim()) is not None: got.append(c.run.id)\n"
              "print(json.dumps(got), flush=True); sys.stdin.read()")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "s.db")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    claimed = [json.loads(p.stdout.readline()) for p in procs]
    for p in procs:
        p.stdin.close()
        p.wait(timeout=60)
    flat = [i for c in claimed for i in c]
    assert len(flat) == len(set(flat)) == total


def test_not_a_store(tmp_path):
    bad = tmp_path / "x.db"
    bad.write_text("hello, not sqlite" * 100)
    with pytest.raises(MoescaleError, match="not a moescale sweep store"):
        SweepStore(bad)
    with pytest.raises(MoescaleError, match="sweep store not found"):
        SweepStore(tmp_path / "missing.db", create=False)


def test_a_closed_store_is_one_file(tmp_path):
    """Closing a writer folds the write-ahead log into the file: copying sweep.db alone after
    the driver exits copies every result (an audit copied an empty store before)."""
    import shutil

    spec = SweepSpec.load(micro_spec(tmp_path, grid="hidden_size = [16, 24]"))
    with SweepStore(tmp_path / "s.db") as s:
        s.add_runs(spec.expand())
        claim = s.claim()
        assert s.finish(claim.run.id, claim.token, {"eval_loss": 2.5})
    assert not (tmp_path / "s.db-wal").exists() or (tmp_path / "s.db-wal").stat().st_size == 0
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(tmp_path / "s.db", copy / "s.db")  # the file alone
    with SweepStore(copy / "s.db", create=False, readonly=True) as c:
        rows = {r["id"]: r for r in c.rows()}
    assert len(rows) == 2 and rows[claim.run.id]["result"] == {"eval_loss": 2.5}
