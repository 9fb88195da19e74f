"""Local worker processes that train several runs (issue 33): the interpreter and torch load
once per worker, a run's losses are bitwise those of a fresh process, and a failed run ends its
process so the next run starts clean."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from moescale.sweeps import estimate  # noqa: E402
from moescale.sweeps.executors.local import LocalExecutor  # noqa: E402
from moescale.sweeps.runner import run_sweep, runs_dir  # noqa: E402
from moescale.sweeps.spec import SweepSpec  # noqa: E402
from moescale.sweeps.store import SweepStore  # noqa: E402
from sweep_helpers import micro_spec, shared_token_cache  # noqa: E402, F401

pytestmark = pytest.mark.slow

THREE_LRS = """
[[points]]
lr = 3e-3
[[points]]
lr = LR2
[[points]]
lr = 2e-3
"""  # the store hands runs out in the spec's order: with one worker they train in this order


def _sweep(tmp_path, name: str, lr2: str, runs_per_worker: int):
    spec = SweepSpec.load(micro_spec(tmp_path, name=name, grid="hidden_size = [16]",
                                     extra=THREE_LRS.replace("LR2", lr2)))
    db = tmp_path / f"{name}.db"
    run_sweep(spec, db, LocalExecutor(workers=1, threads=1, runs_per_worker=runs_per_worker))
    with SweepStore(db) as store:
        rows = {r["id"]: r | {"curve": store.curve(r["id"])} for r in store.rows()}
    ordered = [rows[run.id] for run in spec.expand()]
    return ordered, runs_dir(db)


def _pid(row, folder) -> int:
    if row["status"] == "done":
        return row["result"]["pid"]
    return json.loads((folder / row["id"] / "error.json").read_text())["pid"]


def test_runs_share_a_process_and_equal_fresh_processes_bitwise(tmp_path):
    kept, kept_dir = _sweep(tmp_path, "kept", "1e-3", runs_per_worker=0)
    fresh, fresh_dir = _sweep(tmp_path, "fresh", "1e-3", runs_per_worker=1)
    assert [r["status"] for r in kept + fresh] == ["done"] * 6
    assert len({_pid(r, kept_dir) for r in kept}) == 1  # one process trained all three
    assert len({_pid(r, fresh_dir) for r in fresh}) == 3
    for a, b in zip(kept, fresh, strict=True):
        for key in ("train_loss", "eval_loss", "initial_eval_loss", "tokens", "steps"):
            assert a["result"][key] == b["result"][key], key
        assert a["curve"] == b["curve"] and len(a["curve"]) > 2
    # the plan's time estimate counts the evaluations a run makes (its curve's, and the first)
    for row, run in zip(kept, SweepSpec.load(tmp_path / "kept.toml").expand(), strict=True):
        evals = 1 + sum(p["eval_loss"] is not None for p in row["curve"])
        assert estimate.evaluations_and_checkpoints(run)[0] == evals


def test_a_failed_run_ends_its_process_and_the_next_run_starts_fresh(tmp_path):
    rows, folder = _sweep(tmp_path, "failing", "1e6", runs_per_worker=0)  # the second diverges
    assert [r["status"] for r in rows] == ["done", "failed", "done"]
    assert "diverged" in rows[1]["error"]
    first, failed, after = (_pid(r, folder) for r in rows)
    assert first == failed  # the same process until the failure...
    assert after != failed  # ...and a fresh one after it
    # the run after the failure trains as it would alone (same losses as a fresh process)
    alone, _ = _sweep(tmp_path, "alone", "1e-3", runs_per_worker=1)
    assert rows[2]["result"]["eval_loss"] == alone[2]["result"]["eval_loss"]


def test_runs_per_worker_caps_a_process(tmp_path):
    rows, folder = _sweep(tmp_path, "capped", "1e-3", runs_per_worker=2)
    pids = [_pid(r, folder) for r in rows]
    assert pids[0] == pids[1] != pids[2]


def test_a_serving_worker_answers_each_run_and_writes_its_output_to_the_run(tmp_path):
    """The protocol itself: one reply per run folder on stdin; a run whose folder another
    worker holds (exit status 75, nothing written) does not end the process; each run's output
    goes to its own worker.log."""
    import subprocess
    import sys

    from moescale.sweeps import worker

    run = SweepSpec.load(micro_spec(tmp_path)).expand()[0]
    folders, locks = [tmp_path / "a", tmp_path / "b"], []
    for folder in folders:
        folder.mkdir()
        worker.write_atomic(folder / worker.SPEC_FILE, run.to_dict())
        locks.append(worker.hold_folder(folder))  # as if another worker trained it
    try:
        proc = subprocess.run([sys.executable, "-m", "moescale.sweeps.worker", "--serve", "1",
                               "-", "0"], input="".join(f"{f}\n" for f in folders),
                              capture_output=True, text=True, timeout=120)
    finally:
        for fd in locks:
            worker.release_folder(fd)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"{worker.SERVE_REPLY} {worker.EXIT_LOCKED}"] * 2
    for folder in folders:
        assert "held by another worker" in (folder / worker.OUTPUT_FILE).read_text()
        assert not (folder / worker.ERROR_FILE).exists()
    assert "held by another worker" not in proc.stderr  # between runs: nothing of theirs
