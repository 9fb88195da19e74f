"""Running sweeps for real (micro models on the KJV): failures recorded, SIGKILL survived, two
drivers sharing one store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import run_cli
from sweep_helpers import micro_spec, moescale_cmd, shared_token_cache  # noqa: F401

pytest.importorskip("torch")

from moescale.sweeps.executors.local import LocalExecutor  # noqa: E402
from moescale.sweeps.export import runs_from_store  # noqa: E402
from moescale.sweeps.runner import run_sweep  # noqa: E402
from moescale.sweeps.spec import SweepSpec  # noqa: E402
from moescale.sweeps.store import SweepStore  # noqa: E402

pytestmark = pytest.mark.slow


FAILING = """
[[points]]
lr = 3e-3
[[points]]
lr = 1e6
"""  # a missing data file is refused before any run starts (test_spec_refusals.py)


def test_failures_are_recorded_and_the_others_finish(tmp_path, capsys):
    spec = SweepSpec.load(micro_spec(tmp_path, grid="hidden_size = [16]", extra=FAILING))
    out = run_sweep(spec, tmp_path / "s.db", LocalExecutor(workers=2, threads=1))
    assert out.counts == {"pending": 0, "running": 0, "done": 1, "failed": 1, "retired": 0}
    reasons = sorted(out.failed.values())
    # the trainer stops at the first non-finite loss or gradient norm (which comes first
    # depends on the CPU's kernels): either way the reason says so
    assert "diverged" in reasons[0] and ("nan" in reasons[0].lower() or "inf" in reasons[0])
    code, stdout, _ = run_cli(["sweep", "status", "--store", str(tmp_path / "s.db"), "--json"],
                              capsys)
    status = json.loads(stdout)
    assert code == 0 and status["counts"]["failed"] == 1
    for run in status["runs"]:
        assert {"id", "status", "attempts", "eval_loss", "tokens", "flops"} <= set(run)
    done = [r for r in status["runs"] if r["status"] == "done"]
    assert done[0]["eval_loss"] < 5.5  # below ln(256) = 5.55: it learned something
    # --retry-failed runs them again (and they fail again, with a second attempt recorded)
    again = run_sweep(spec, tmp_path / "s.db", LocalExecutor(workers=2, threads=1),
                      retry_failed=True)
    assert len(again.failed) == 1 and not again.finished
    rows = SweepStore(tmp_path / "s.db").rows()
    assert sorted(r["attempts"] for r in rows) == [1, 2]


def _wait_for(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _share_done(row) -> float:
    """How far a running run's log got, as a share of its steps."""
    from moescale.sweeps.runner import read_progress
    from moescale.sweeps.spec import RunSpec

    total = RunSpec.from_dict(row["spec"]).last_step
    return read_progress(row["run_dir"], total).step / total


def test_sigkill_mid_sweep_loses_nothing(tmp_path):
    spec_path = micro_spec(tmp_path, grid="hidden_size = [16, 24, 32]",
                           budgets="[1.5e9, 2e9]")
    db = tmp_path / "s.db"
    proc = subprocess.Popen(moescale_cmd("sweep", "run", str(spec_path), "--store", str(db),
                                         "--workers", "2", "--threads", "1", "--json"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def state():
        if not db.exists():
            return [], []
        with SweepStore(db) as s:
            rows = s.rows()
        return ([r for r in rows if r["status"] == "done"],
                [r for r in rows if r["status"] == "running" and r["run_dir"]
                 and os.path.exists(os.path.join(r["run_dir"], "checkpoint.pt"))
                 and _share_done(r) < 0.7])  # far from its end: its worker cannot finish

    _wait_for(lambda: all(state()), 240, "one run done and one checkpointed in flight")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before, checkpointed = state()
    done_before = {r["id"]: r for r in done_before}
    with SweepStore(db) as s:
        interrupted = {r["id"] for r in s.rows() if r["status"] == "running"}
    assert done_before and interrupted

    spec = SweepSpec.load(spec_path)
    out = run_sweep(spec, db, LocalExecutor(workers=2, threads=1))
    assert out.counts["done"] == 6 and out.counts["failed"] == 0
    rows = {r["id"]: r for r in SweepStore(db).rows()}
    for run_id, before in done_before.items():
        after = rows[run_id]
        assert after["result"] == before["result"] and after["attempts"] == before["attempts"]
        assert after["finished"] == before["finished"]
    for row in rows.values():
        assert [h["outcome"] for h in row["history"]].count("done") == 1
    for run_id in interrupted:  # run again, or (a worker that ended as its driver died) ingested
        outcomes = [h["outcome"] for h in rows[run_id]["history"]]
        assert outcomes in (["lost", "done"], ["done"]), outcomes
    for row in checkpointed:  # far from its end when killed: run again from its checkpoint
        assert rows[row["id"]]["attempts"] == 2 and rows[row["id"]]["result"]["resumed"]


def test_two_drivers_share_one_store(tmp_path):
    spec_path = micro_spec(tmp_path, grid="hidden_size = [16, 24]", budgets="[6e8, 1.2e9]")
    db = tmp_path / "s.db"
    cmd = moescale_cmd("sweep", "run", str(spec_path), "--store", str(db), "--workers", "1",
                       "--threads", "1", "--json")
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    ended = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in ended]
    outs = [json.loads(out) for out, _ in ended]
    finished = [i for o in outs for i in o["finished"]]
    assert len(finished) == len(set(finished)) == 4  # each run executed by exactly one driver
    rows = SweepStore(db).rows()
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in rows)
    drivers = {r["history"][-1]["pid"] for r in rows}
    assert drivers == {p.pid for p in procs}


def test_import_train_run_folders(tmp_path, capsys):
    out_dir = tmp_path / "tiny"
    code, out, err = run_cli(["train", "--preset", "tiny", "--tokens", "4096", "--batch-tokens",
                              "1024", "--seq-len", "64", "--threads", "1", "--out",
                              str(out_dir), "--json"], capsys)
    assert code == 0, err
    trained = json.loads(out)
    db = tmp_path / "s.db"
    code, out, err = run_cli(["sweep", "import", "--store", str(db), str(out_dir)], capsys)
    assert code == 0 and "imported 1 run" in out
    code, out, err = run_cli(["sweep", "import", "--store", str(db), str(out_dir)], capsys)
    assert "imported 0 run(s)" in out and "1 already there" in out

    table = runs_from_store(db)
    assert len(table) == 1
    assert table.frame["loss"][0] == pytest.approx(trained["eval_loss"])
    assert table.frame["D"][0] == trained["tokens"] and table.frame["C"][0] == trained["flops"]
    (tmp_path / "empty").mkdir()
    code, out, err = run_cli(["sweep", "import", "--store", str(db), str(tmp_path / "empty")],
                             capsys)
    assert code == 2 and "not a moescale train run folder" in err
