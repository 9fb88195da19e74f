"""Following a sweep: status columns and progress, retired runs, plans of what is left, wide
piped tables, the exit status of a sweep whose runs failed and of Ctrl-C, suggest's E column."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time

import pytest

from conftest import run_cli
from moescale.sweeps import estimate
from moescale.sweeps.spec import SweepSpec
from moescale.sweeps.store import SweepStore
from sweep_helpers import micro_spec, moescale_cmd, run_moescale, shared_token_cache  # noqa: F401


def _finish(store: SweepStore, run_id: str, loss: float = 2.5) -> None:
    """Mark one run done with a made-up result (no training)."""
    ids = {run_id}
    claim = store.claim(ids)
    assert claim is not None and claim.run.id == run_id
    run = claim.run
    store.finish(run_id, claim.token, {"eval_loss": loss, "train_loss": loss,
                                       "tokens": run.tokens, "steps": run.steps,
                                       "unique_tokens": run.tokens, "repeated_tokens": 0,
                                       "seconds": 1.0})


def _write_log(run_dir, steps_done: int, seconds_ago: float) -> None:
    """A worker's log.jsonl: started ``seconds_ago``, ``steps_done`` steps since."""
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.time() - seconds_ago
    lines = [{"event": "start", "step": 0, "tokens": 0, "time": start}]
    lines += [{"step": s, "tokens": s * 256, "train_loss": 3.0 - s / 100, "eval_loss": None}
              for s in range(10, steps_done + 1, 10)]
    (run_dir / "log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_status_shows_architecture_progress_and_time_left(tmp_path, capsys):
    spec = SweepSpec.load(micro_spec(tmp_path, budgets="[2e9]", grid="hidden_size = [16, 24]"))
    runs = spec.expand()
    store = SweepStore(tmp_path / "s.db")
    store.add_runs(runs)
    _finish(store, runs[0].id)
    claim = store.claim({runs[1].id})  # running: half its steps logged in 20 s
    run_dir = tmp_path / "runs" / claim.run.id
    store.set_run_dir(claim.run.id, claim.token, str(run_dir))
    total = claim.run.steps
    half = total // 20 * 10
    _write_log(run_dir, half, seconds_ago=20)
    store.close()

    code, out, err = run_cli(["sweep", "status", "--store", str(tmp_path / "s.db"), "--json"],
                             capsys)
    assert code == 0, err
    rows = {r["id"]: r for r in json.loads(out)["runs"]}
    done, running = rows[runs[0].id], rows[runs[1].id]
    for row in (done, running):
        assert {"d", "L", "E", "K", "G", "arm", "N_active", "budget", "tokens", "state", "step",
                "total_steps", "seconds_left"} <= set(row)
    assert (done["d"], done["L"], done["E"], done["K"]) == (16, 1, 4, 1)
    assert done["state"] == "done" and done["step"] == done["total_steps"]
    assert running["state"] == "running" and running["step"] == half
    assert running["total_steps"] == total
    expected = (total - half) * 20 / half  # the rate of the logged steps
    assert running["seconds_left"] == pytest.approx(expected, rel=0.2, abs=2)

    code, out, err = run_cli(["sweep", "status", "--store", str(tmp_path / "s.db")], capsys)
    assert code == 0, err
    header = next(line for line in out.splitlines() if "state" in line)
    for column in ("d", "L", "E", "K", "N active", "budget", "tokens", "progress",
                   "time left"):
        assert f" {column} " in header
    assert f"{half:,}/{total:,}" in out


def test_runs_no_longer_in_the_spec_are_retired_and_results_kept(tmp_path, capsys):
    old = tmp_path / "old.toml"  # micro_spec writes s.toml: keep the old version aside
    old.write_text(micro_spec(tmp_path, name="s", grid="hidden_size = [16, 24, 32]").read_text())
    old_runs = SweepSpec.load(old).expand()
    db = tmp_path / "s.db"
    store = SweepStore(db)
    store.add_runs(old_runs)
    _finish(store, old_runs[1].id, loss=2.25)  # d=24 finished under the old spec
    store.close()
    new = micro_spec(tmp_path, name="s", grid="hidden_size = [16]")

    code, out, err = run_cli(["sweep", "retire", str(new), "--store", str(db)], capsys)
    assert code == 0, err
    assert "retired 2 run(s)" in out
    with SweepStore(db) as s:
        assert s.counts() == {"pending": 1, "running": 0, "done": 1, "failed": 0, "retired": 1}
        assert s.claim({r.id for r in old_runs[1:]}) is None  # a retired run is never run
        row = {r["id"]: r for r in s.rows()}[old_runs[1].id]
        assert row["status"] == "done" and row["result"]["eval_loss"] == 2.25
    code, out, err = run_cli(["sweep", "status", "--store", str(db), "--json"], capsys)
    states = {r["id"]: (r["state"], r["retired"]) for r in json.loads(out)["runs"]}
    assert states == {old_runs[0].id: ("pending", False), old_runs[1].id: ("done", True),
                      old_runs[2].id: ("retired", True)}
    code, out, err = run_cli(["sweep", "status", "--store", str(db)], capsys)
    assert "done (retired)" in out and "1 retired" in out

    # the old spec again brings its runs back
    code, out, err = run_cli(["sweep", "retire", str(old), "--store", str(db)], capsys)
    assert code == 0 and "retired 0 run(s)" in out and "2 retired run(s)" in out
    with SweepStore(db) as s:
        assert s.counts()["retired"] == 0 and s.counts()["pending"] == 2


def test_sweep_run_retires_stale_runs_itself(tmp_path):
    pytest.importorskip("torch")
    from moescale.sweeps.executors.local import LocalExecutor
    from moescale.sweeps.runner import run_sweep

    old = SweepSpec.load(micro_spec(tmp_path, name="s", grid="hidden_size = [16, 24]"))
    store = SweepStore(tmp_path / "s.db")
    store.add_runs(old.expand())
    _finish(store, old.expand()[0].id)
    store.close()
    new = SweepSpec.load(micro_spec(tmp_path, name="s", grid="hidden_size = [16]"))
    out = run_sweep(new, tmp_path / "s.db", LocalExecutor(workers=1, threads=1))
    assert out.retired == [old.expand()[1].id] and not out.finished  # nothing left to train
    assert out.counts["pending"] == 0
    with SweepStore(tmp_path / "s.db") as s:
        assert s.counts()["retired"] == 1


def test_plan_estimates_only_the_runs_left(tmp_path, capsys, monkeypatch):
    spec_path = micro_spec(tmp_path, budgets="[2e8, 4e8]", grid="hidden_size = [16, 24]",
                           train="eval_every = 2\ncheckpoint_every = 3")
    runs = SweepSpec.load(spec_path).expand()
    db = tmp_path / "s.db"
    store = SweepStore(db)
    store.add_runs(runs)
    for run in runs[:3]:
        _finish(store, run.id)
    store.close()
    timed = []

    def fake_probes(probe, threads, concurrent):
        timed.extend(probe)
        return [estimate.Probe(r.flops_per_token, fixed_seconds=5.0, step_seconds=0.01,
                               eval_seconds=0.2, checkpoint_seconds=0.1, startup_seconds=2.0)
                for r in probe]

    monkeypatch.setattr(estimate, "probe_runs", fake_probes)
    code, out, err = run_cli(["sweep", "plan", str(spec_path), "--store", str(db),
                              "--workers", "1", "--json"], capsys)
    assert code == 0, err
    plan = json.loads(out)
    assert (plan["n_runs"], plan["n_done"], plan["n_left"]) == (4, 3, 1)
    assert [r["state"] for r in plan["runs"]] == ["done", "done", "done", "left"]
    left = runs[3]
    assert {r.id for r in timed} == {left.id}  # only the run left is timed
    # its worker's start-up, its set-up, an evaluation before step 1 and at every 2nd step,
    # a checkpoint at every 3rd, its steps
    evals, checkpoints = 1 + math.ceil(left.steps / 2), math.ceil(left.steps / 3)
    expected = (2.0 + 5.0 + 0.2 * evals + 0.1 * checkpoints + left.steps * 0.01
                + estimate.DRIVER_SECONDS)
    assert plan["estimated_seconds"] == pytest.approx(expected, abs=1)
    code, out, err = run_cli(["sweep", "plan", str(spec_path), "--store", str(db),
                              "--no-estimate"], capsys)
    assert code == 0 and "3 done, 1 left" in out


def test_makespan_deals_runs_to_free_workers():
    assert estimate.makespan([10, 1, 1, 1], 2) == 10
    assert estimate.makespan([1, 1, 1, 10], 2) == 11
    assert estimate.makespan([3, 3], 1) == 6
    assert estimate.makespan([10, 1, 1, 1], 2, startup=2) == 12  # each worker starts first


def test_piped_tables_are_not_cut_at_80_columns(capsys):
    from moescale.cli._output import print_table

    columns = [f"column {i}" for i in range(14)]
    print_table("wide", columns, [[f"value {i}" for i in range(14)]])
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) > 150
    assert all(c in out for c in columns) and "value 13" in out and "…" not in out


FAILING = """
[[points]]
lr = 3e-3
[[points]]
lr = 1e6
"""  # diverges; a missing data file is refused before any run starts


@pytest.mark.slow
def test_a_sweep_with_a_failed_run_exits_1_with_one_line(tmp_path):
    pytest.importorskip("torch")
    spec = micro_spec(tmp_path, grid="hidden_size = [16]", extra=FAILING)
    db = tmp_path / "s.db"
    proc = run_moescale("sweep", "run", str(spec), "--store", str(db), "--workers", "2",
                        "--threads", "1")
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "1 of 2 run(s) failed" in errors[0]
    # not a terminal: one line per run that ended
    ended = [line for line in proc.stderr.splitlines() if line.startswith("[")]
    assert len(ended) == 2 and any(" done " in e for e in ended)
    assert any(" failed " in e and "diverged" in e for e in ended)
    proc = run_moescale("sweep", "run", str(spec), "--store", str(db), "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["counts"]["failed"] == 1


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_gives_the_running_runs_back(tmp_path):
    pytest.importorskip("torch")
    # a run long enough to be interrupted on a loaded machine (it is stopped, not run out)
    spec = micro_spec(tmp_path, grid="hidden_size = [16]", budgets="[3e11]")
    db = tmp_path / "s.db"
    # SIGINT back to its default in the driver: a shell's background job (`make test &`)
    # starts with it ignored, and Python then installs no KeyboardInterrupt handler
    proc = subprocess.Popen(moescale_cmd("sweep", "run", str(spec), "--store", str(db),
                                         "--workers", "1", "--threads", "1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ | {"OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    end = time.monotonic() + 120
    while time.monotonic() < end:
        if db.exists():
            with SweepStore(db, readonly=True) as s:  # never waits for the driver's writes
                if any(r["run_dir"] and os.path.exists(os.path.join(r["run_dir"], "log.jsonl"))
                       for r in s.rows()):
                    break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: 0 run(s) finished; 1 running run(s) stopped" in err
    assert "resume" in err and "Aborted" not in err
    with SweepStore(db) as s:
        assert s.counts()["pending"] == 1


def test_suggest_shows_E_and_warns_of_repeated_data(tmp_path, capsys):
    from test_sweep_analyze import HIDDEN, synthetic_store

    store = synthetic_store(tmp_path, HIDDEN)
    code, out, err = run_cli(["sweep", "suggest", "--store", str(store.path), "--law",
                              "chinchilla", "--target-compute", "1e22", "--n", "2",
                              "--bootstrap", "20"], capsys)
    assert code == 0, err
    header = next(line for line in out.splitlines() if "s.d. after" in line)
    assert " E " in header and " epochs " in header
    # billions of tokens on the KJV's ~4M bytes: every suggestion repeats the corpus
    assert "warning: suggested run" in err and "repeats its corpus" in err
    code, out, err = run_cli(["sweep", "suggest", "--store", str(store.path), "--law",
                              "chinchilla", "--target-compute", "1e22", "--n", "2",
                              "--bootstrap", "20", "--json"], capsys)
    data = json.loads(out)
    assert data["warnings"] and all(s["epochs"] > 1 and "E" in s for s in data["suggestions"])


def test_a_run_whose_lease_passed_shows_as_stalled(tmp_path, capsys):
    """An audit SIGSTOPped a sweep: its run showed `running`, "0 s left", forever. A run whose
    lease has passed is `stalled`, and a driver that claims work takes it over."""
    import time as _time

    from moescale.sweeps.spec import SweepSpec
    from moescale.sweeps.store import SweepStore
    from sweep_helpers import micro_spec

    store_path = tmp_path / "s.db"
    with SweepStore(store_path) as store:
        store.add_runs(SweepSpec.load(micro_spec(tmp_path, grid="hidden_size = [16]")).expand())
        claim = store.claim(lease_s=0.05)
    _time.sleep(0.2)
    code, out, err = run_cli(["sweep", "status", "--store", str(store_path), "--json"], capsys)
    assert code == 0, err
    (row,) = json.loads(out)["runs"]
    assert row["state"] == "stalled" and row["stalled"] and row["seconds_left"] is None
    code, out, _ = run_cli(["sweep", "status", "--store", str(store_path)], capsys)
    assert f"stalled {claim.run.id}" in out and "takes it over" in out
    with SweepStore(store_path) as store:  # the next driver's claim takes it over
        again = store.claim()
        assert again is not None and again.run.id == claim.run.id and again.attempt == 2
