"""Executors beyond one process pool: the same sweep gives the same losses under local, Ray
(a 2-CPU cluster started with `ray start`) and SLURM through submitit's local executor; a driver killed with
SIGKILL under Ray or SLURM loses nothing; a dead worker is retried; missing extras are one
clear error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import needs_torch, run_cli
from moescale.errors import MoescaleError
from moescale.sweeps.executors import make_executor
from moescale.sweeps.executors.local import LocalExecutor
from moescale.sweeps.runner import run_sweep
from moescale.sweeps.spec import SweepSpec
from moescale.sweeps.store import SweepStore
from sweep_helpers import micro_spec, moescale_cmd, shared_token_cache  # noqa: F401

pytestmark = pytest.mark.slow


def losses(db) -> dict[str, float]:
    with SweepStore(db) as s:
        return {r["id"]: r["result"]["eval_loss"] for r in s.rows() if r["status"] == "done"}


@needs_torch
def test_same_losses_under_local_and_slurm(tmp_path):
    pytest.importorskip("submitit")
    spec = SweepSpec.load(micro_spec(tmp_path, grid="hidden_size = [16, 24]"))
    results = {}
    for name, options in (("local", {"workers": 2}),
                          ("slurm", {"cluster": "local", "folder": tmp_path / "slurm_runs"})):
        ex = make_executor(name, threads=1, **options)
        out = run_sweep(spec, tmp_path / f"{name}.db", ex, folder=tmp_path / f"{name}_runs")
        assert out.counts["done"] == 2, (name, out.failed)
        results[name] = losses(tmp_path / f"{name}.db")
    assert results["local"].keys() == results["slurm"].keys()
    for run_id, loss in results["local"].items():
        assert results["slurm"][run_id] == pytest.approx(loss, abs=1e-6)


def _kill_driver_mid_sweep(tmp_path, executor_args: list[str]):
    """Start a driver, SIGKILL it once one run is done and another is in flight."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    spec_path = micro_spec(tmp_path, grid="hidden_size = [16, 24, 32]", budgets="[1.2e9]")
    db = tmp_path / "s.db"
    proc = subprocess.Popen(moescale_cmd("sweep", "run", str(spec_path), "--store", str(db),
                                         "--threads", "1", "--json", *executor_args),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        if db.exists():
            with SweepStore(db) as s:
                status = [(r["status"], r["job_id"]) for r in s.rows()]
            if any(st == "done" for st, _ in status) and any(
                    st == "running" and job for st, job in status):
                break
        time.sleep(0.3)
    else:
        proc.kill()
        raise AssertionError("no run finished while another ran")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with SweepStore(db) as s:
        before = {r["id"]: r for r in s.rows()}
    return spec_path, db, before


def _check_restart(db, before, out):
    assert out.counts["done"] == 3 and out.counts["failed"] == 0
    with SweepStore(db) as s:
        after = {r["id"]: r for r in s.rows()}
    for run_id, row in before.items():
        if row["status"] == "done":  # finished results intact
            assert after[run_id]["result"] == row["result"]
            assert after[run_id]["finished"] == row["finished"]
    for row in after.values():  # every run finished exactly once
        assert [h["outcome"] for h in row["history"]].count("done") == 1


@needs_torch
def test_driver_killed_under_slurm_local_reattaches(tmp_path):
    pytest.importorskip("submitit")
    spec_path, db, before = _kill_driver_mid_sweep(
        tmp_path, ["--executor", "slurm", "--cluster", "local"])
    spec = SweepSpec.load(spec_path)
    ex = make_executor("slurm", cluster="local", folder=tmp_path / "s_runs", threads=1)
    out = run_sweep(spec, db, ex)
    _check_restart(db, before, out)
    in_flight = [i for i, r in before.items() if r["status"] == "running" and r["job_id"]]
    assert in_flight
    # submitit jobs outlive their driver: the new driver takes them back (or ingests them)
    with SweepStore(db) as s:
        attempts = {r["id"]: r["attempts"] for r in s.rows()}
    assert all(attempts[i] == 1 for i in in_flight)


@needs_torch
@pytest.mark.xdist_group("ray")  # one Ray cluster at a time: `ray stop` ends every cluster
def test_ray_same_losses_and_a_killed_driver_reattaches(tmp_path, ray_cluster):
    # 1. the same 2-run sweep gives the same losses as the local executor
    spec = SweepSpec.load(micro_spec(tmp_path, grid="hidden_size = [16, 24]"))
    run_sweep(spec, tmp_path / "local.db", LocalExecutor(workers=2, threads=1),
              folder=tmp_path / "local_runs")
    out = run_sweep(spec, tmp_path / "ray.db",
                    make_executor("ray", address=ray_cluster, threads=1),
                    folder=tmp_path / "ray_runs")
    assert out.counts["done"] == 2, out.failed
    local, ray = losses(tmp_path / "local.db"), losses(tmp_path / "ray.db")
    assert local.keys() == ray.keys()
    for run_id, loss in local.items():
        assert ray[run_id] == pytest.approx(loss, abs=1e-6)
    # 2. a driver killed mid-sweep: its detached actors keep running on the cluster, and the
    #    restarted driver takes them back by name (or ingests what finished meanwhile)
    spec_path, db, before = _kill_driver_mid_sweep(
        tmp_path / "kill", ["--executor", "ray", "--address", ray_cluster])
    out = run_sweep(SweepSpec.load(spec_path), db,
                    make_executor("ray", address=ray_cluster, threads=1))
    _check_restart(db, before, out)
    with SweepStore(db) as s:
        rows = {r["id"]: r for r in s.rows()}
    submitted = [i for i, row in before.items() if row["status"] == "running" and row["job_id"]]
    assert submitted
    for run_id in submitted:  # on the cluster when the driver died: not run again
        assert rows[run_id]["attempts"] == 1
        assert [h["outcome"] for h in rows[run_id]["history"]] == ["done"]


@needs_torch
def test_a_killed_worker_is_retried(tmp_path):
    # a run long enough that the first poll after its log appears finds it still training
    spec = SweepSpec.load(micro_spec(tmp_path, grid="hidden_size = [16]", budgets="[6e9]"))
    ex = LocalExecutor(workers=1, threads=1)
    killed = []
    original_poll = ex.poll

    def poll():  # kill the worker of the first attempt once it has started training
        for slot in ex.slots:
            if slot.run and not killed and (slot.run[1] / "log.jsonl").exists():
                os.kill(slot.proc.pid, signal.SIGKILL)
                killed.append(slot.run[0])
        return original_poll()

    ex.poll = poll
    out = run_sweep(spec, tmp_path / "s.db", ex)
    assert killed and out.counts["done"] == 1
    assert "killed by SIGKILL" in out.retried[killed[0]]
    with SweepStore(tmp_path / "s.db") as s:
        (row,) = s.rows()
    assert row["attempts"] == 2
    assert [h["outcome"] for h in row["history"]] == ["retry", "done"]
    assert "SIGKILL" in row["history"][0]["error"]


def test_missing_engines_name_their_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(MoescaleError, match=r"pip install 'moescale\[ray\]'"):
        make_executor("ray")
    spec = micro_spec(tmp_path)
    code, out, err = run_cli(["sweep", "run", str(spec), "--store", str(tmp_path / "s.db"),
                              "--executor", "slurm"], capsys)
    assert code == 2 and out == ""
    assert err.strip() == "Error: --executor slurm needs submitit: pip install 'moescale[slurm]'"


def test_a_ray_client_address_is_one_line_fast(tmp_path, capsys, monkeypatch):
    """``--address ray://…`` (Ray Client): the ray extra brings grpcio, so a dead address is a
    prompt "cannot reach" (not Ray's 30 s wait, nor its request for ray[client]); without
    grpcio the error names the extra."""
    pytest.importorskip("ray")
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    args = ["sweep", "run", str(micro_spec(tmp_path)), "--store", str(tmp_path / "s.db"),
            "--executor", "ray", "--address", f"ray://127.0.0.1:{port}"]
    t0 = time.perf_counter()
    code, out, err = run_cli(args, capsys)
    assert code == 2 and time.perf_counter() - t0 < 20
    assert err.strip() == (f"Error: cannot reach the Ray cluster at ray://127.0.0.1:{port}: "
                           "nothing answers on that port (the head node's Ray Client server, "
                           "default port 10001)")
    monkeypatch.setitem(sys.modules, "grpc", None)
    code, out, err = run_cli(args, capsys)
    assert code == 2 and "needs ray[client]: pip install 'moescale[ray]'" in err


def test_bad_slurm_arg(tmp_path, capsys):
    pytest.importorskip("submitit")
    code, out, err = run_cli(["sweep", "run", str(micro_spec(tmp_path)), "--store",
                              str(tmp_path / "s.db"), "--executor", "slurm", "--slurm-arg",
                              "novalue"], capsys)
    assert code == 2 and "KEY=VALUE" in err and len(err.strip().splitlines()) == 1


@needs_torch
def test_status_while_running(tmp_path):
    """`sweep status` reads the store while a driver writes it (SQLite WAL)."""
    spec_path = micro_spec(tmp_path, grid="hidden_size = [16, 24]", budgets="[8e8]")
    db = tmp_path / "s.db"
    proc = subprocess.Popen(moescale_cmd("sweep", "run", str(spec_path), "--store", str(db),
                                         "--workers", "1", "--threads", "1", "--json"),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen = set()
    while proc.poll() is None:
        if db.exists():
            res = subprocess.run(moescale_cmd("sweep", "status", "--store", str(db), "--json"),
                                 capture_output=True, text=True)
            if res.returncode == 0:
                seen |= {r["status"] for r in json.loads(res.stdout)["runs"]}
        time.sleep(0.5)
    assert proc.returncode == 0 and "running" in seen
