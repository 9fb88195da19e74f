"""Tracker back-ends (TensorBoard, MLflow, W&B) against the real libraries, and reading
finished MLflow runs back from a real ``mlflow server``. No network: MLflow uses local
stores or a server on 127.0.0.1, W&B runs offline."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from moescale.errors import MoescaleError
from moescale.training.trackers import TRACKERS, check_tracker_names, open_trackers

PARAMS = {"N": 1.0e8, "N_active": 2.5e7, "config": {"lr": 3e-3, "seed": 7, "betas": (0.9, 0.95)},
          "architecture": {"n_experts": 8, "top_k": 2}}
# mlflow's SQL store uses a SQLAlchemy option SQLAlchemy deprecates: not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")
LOSSES = {1: 4.5, 2: 4.0, 3: 3.6}  # step -> train loss (nats/token)


def need(module: str):
    """Import a tracker package: skip when it is missing, except under CI (``CI`` set),
    where a missing package is an ImportError, i.e. a failure."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


def log_run(names, run_id, folder, *, group="sweep-a", params=PARAMS, result=None):
    with open_trackers(names, run_id=run_id, group=group, params=params, folder=folder) as t:
        for step, loss in LOSSES.items():
            t.log({"train_loss": loss, "eval_loss": None, "mfu": float("nan")}, step)
        if result is not False:
            t.finish(result or {"eval_loss": 3.5, "tokens": 1e9, "device": "cpu"})
        return t


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_registry_and_unknown_name():
    assert sorted(TRACKERS) == ["mlflow", "tensorboard", "wandb"]
    assert check_tracker_names([" MLflow", "wandb", "mlflow"]) == ["mlflow", "wandb"]
    with pytest.raises(MoescaleError) as err:
        check_tracker_names(["mlflow", "tensorbored"])
    assert str(err.value) == "unknown tracker 'tensorbored'; known: mlflow, tensorboard, wandb"
    with pytest.raises(MoescaleError, match="unknown tracker 'x'"):
        open_trackers(["x"], run_id="r", group=None, params={}, folder=None)


def test_import_is_lazy():
    code = ("import sys, moescale.training.trackers, moescale.tracker_runs; "
            "print([m for m in ('torch', 'mlflow', 'wandb', 'tensorboard', 'tensorboardX') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name, package", [("tensorboard", "tensorboard"),
                                           ("mlflow", "mlflow"), ("wandb", "wandb")])
def test_missing_package_is_one_warning(name, package, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, package, None)  # import raises ImportError
    if name == "tensorboard":  # torch's SummaryWriter imports tensorboard itself
        for mod in [m for m in sys.modules if m.startswith("torch.utils.tensorboard")]:
            monkeypatch.delitem(sys.modules, mod)
        monkeypatch.setitem(sys.modules, "tensorboardX", None)
    t = log_run([name], "r1", tmp_path)
    assert t.backends == {}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"pip install 'moescale[{name}]'" in err[0] and "continuing without it" in err[0]


def test_tensorboard_event_files(tmp_path):
    need("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log_run(["tensorboard"], "r1", tmp_path)
    acc = EventAccumulator(str(tmp_path / "tensorboard" / "r1"))
    acc.Reload()
    assert {(e.step, round(e.value, 5)) for e in acc.Scalars("train_loss")} == set(LOSSES.items())
    assert [(e.step, e.value) for e in acc.Scalars("final/eval_loss")] == [(3, 3.5)]
    assert [e.value for e in acc.Scalars("final/tokens")] == [1e9]
    assert "eval_loss" not in acc.Tags()["scalars"] and "mfu" not in acc.Tags()["scalars"]
    assert "final/device" not in acc.Tags()["scalars"]


def test_tensorboard_without_folder_warns(capsys):
    need("tensorboard")
    t = open_trackers(["tensorboard"], run_id="r", group=None, params={}, folder=None)
    assert t.backends == {}
    assert "needs a run folder" in capsys.readouterr().err


def test_mlflow_local_store(tmp_path, monkeypatch, capsys):
    need("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    log_run(["mlflow"], "run-1", tmp_path, group=None)
    assert "warning" not in capsys.readouterr().err
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("moescale")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "run-1" and run.info.status == "FINISHED"
    assert run.data.params["N"] == "100000000.0" and run.data.params["config.lr"] == "0.003"
    assert run.data.params["config.betas"] == "[0.9, 0.95]"
    assert run.data.params["architecture.n_experts"] == "8"
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert sorted((m.step, m.value) for m in history) == sorted(LOSSES.items())
    (final,) = client.get_metric_history(run.info.run_id, "eval_loss")
    assert (final.step, final.value) == (3, 3.5)
    assert "mfu" not in run.data.metrics and "device" not in run.data.metrics
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # set only during the calls


def test_mlflow_unfinished_run_is_killed_or_failed(tmp_path, monkeypatch):
    need("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    log_run(["mlflow"], "stopped", tmp_path, group=None, result=False)
    with pytest.raises(RuntimeError):
        with open_trackers(["mlflow"], run_id="crashed", group=None, params={}, folder=None):
            raise RuntimeError("out of memory")
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("moescale").experiment_id])
    assert {r.info.run_name: r.info.status for r in runs} == {"stopped": "KILLED",
                                                              "crashed": "FAILED"}


def test_mlflow_dead_server_is_quick_and_quiet(tmp_path, monkeypatch, capsys):
    need("mlflow")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    start = time.perf_counter()
    t = log_run(["mlflow"], "r1", tmp_path)  # mlflow's defaults would retry for minutes
    assert time.perf_counter() - start < 10
    assert t.backends == {}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: tracker mlflow failed to open")
    assert "Connection refused" in err[0]


def test_wandb_offline(tmp_path, monkeypatch):
    need("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_PROJECT", "moescale-tests")
    monkeypatch.setenv("WANDB_SILENT", "true")
    t = log_run(["wandb"], "r1", tmp_path / "run")
    assert t.backends == {}  # finished and closed
    (offline,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    assert list(offline.glob("*.wandb"))


def test_backend_error_while_logging_disables_it_once(tmp_path, capsys):
    need("tensorboard")
    with open_trackers(["tensorboard"], run_id="r1", group=None, params={},
                       folder=tmp_path) as t:
        t.backends["tensorboard"].writer.close()
        t.backends["tensorboard"].writer = None  # any failure inside a back-end
        t.log({"train_loss": 3.0}, 1)
        t.log({"train_loss": 2.9}, 2)
        t.finish({"eval_loss": 2.8})
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tracker tensorboard failed to log" in err[0]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real ``mlflow server`` on 127.0.0.1 with a SQLite store in tmp_path; its URI."""
    need("mlflow")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--default-artifact-root", str(tmp_path / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, env=os.environ | {"OMP_NUM_THREADS": "1"},
        start_new_session=True)
    try:
        deadline = time.monotonic() + 40
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()}")
            time.sleep(0.25)
        yield uri
    finally:
        os.killpg(server.pid, 15)  # the server and its uvicorn/gunicorn workers
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
        log.close()


@pytest.mark.slow
def test_runs_from_mlflow_round_trip(mlflow_server, tmp_path, monkeypatch, capsys):
    from moescale.runs import RunTable
    from moescale.tracker_runs import runs_from_mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    sizes = {"a": (1e7, 2e8, 3.9), "b": (3e7, 6e8, 3.4), "c": (1e8, 2e9, 3.0)}
    for name, (n, d, loss) in sizes.items():
        params = {"N": n, "N_active": n / 4, "config": {"tokens": d, "seed": 1, "lr": 1e-3},
                  "architecture": {"n_experts": 8, "top_k": 1}}
        log_run(["mlflow"], name, tmp_path, group="grid", params=params,
                result={"eval_loss": loss, "tokens": d, "flops": 6 * n / 4 * d})
    log_run(["mlflow"], "unfinished", tmp_path, group="grid", result=False)
    assert "warning" not in capsys.readouterr().err

    frame = runs_from_mlflow(mlflow_server, "grid")
    assert len(frame) == 3 and list(frame["run_id"]) == ["a", "b", "c"]
    for col, i in (("N", 0), ("D", 1), ("loss", 2)):
        assert frame[col].tolist() == [v[i] for v in sizes.values()]
    assert frame["N_active"].tolist() == [v[0] / 4 for v in sizes.values()]
    assert set(frame["E"]) == {8.0} and set(frame["K"]) == {1.0} and set(frame["seed"]) == {1}
    assert frame["C"].tolist() == [6 * n / 4 * d for n, d, _ in sizes.values()]
    table = RunTable.from_frame(frame).require(["N", "N_active", "D", "C", "E"])
    assert len(table) == 3

    with pytest.raises(MoescaleError, match=r"experiment 'gird' not found .*'grid'"):
        runs_from_mlflow(mlflow_server, "gird")
    log_run(["mlflow"], "only-running", tmp_path, group="empty", result=False)
    with pytest.raises(MoescaleError, match=r"'empty' .* has no finished runs \(1 running"):
        runs_from_mlflow(mlflow_server, "empty")


def test_runs_from_mlflow_unreachable():
    need("mlflow")
    from moescale.tracker_runs import runs_from_mlflow

    start = time.perf_counter()
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(MoescaleError, match=r"cannot reach the MLflow tracking store .*refused"):
        runs_from_mlflow(uri, "grid")
    assert time.perf_counter() - start < 10


# ----- the trainer, the command line and sweeps ------------------------------------------------
TINY = ["train", "--preset", "tiny", "--seq-len", "32", "--batch-tokens", "256", "--tokens",
        "5120", "--threads", "1", "--json"]


def _log_losses(run_dir) -> dict[int, float]:
    import json

    return {r["step"]: r["train_loss"] for r in map(json.loads,
                                                     (run_dir / "log.jsonl").read_text().splitlines())
            if "event" not in r and r.get("train_loss") is not None}


@pytest.mark.slow
def test_train_tracker_tensorboard_writes_the_loss_points(tmp_path, capsys):
    need("torch")
    need("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from conftest import run_cli

    out = tmp_path / "r"
    code, _, err = run_cli([*TINY, "--tracker", "tensorboard", "--out", str(out)], capsys)
    assert code == 0 and "warning" not in err, err
    (events,) = (out / "tensorboard").iterdir()
    acc = EventAccumulator(str(events))
    acc.Reload()
    points = {e.step: e.value for e in acc.Scalars("train_loss")}
    logged = _log_losses(out)
    assert points.keys() == logged.keys() and len(points) >= 2  # every logged point
    for step, loss in logged.items():
        assert points[step] == pytest.approx(loss, rel=1e-6)
    assert "final/eval_loss" in acc.Tags()["scalars"]


@pytest.mark.slow
def test_train_tracker_mlflow_logs_params_and_metrics(tmp_path, monkeypatch, capsys):
    need("torch")
    need("mlflow")
    from mlflow.tracking import MlflowClient

    from conftest import run_cli

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    out = tmp_path / "r"
    code, stdout, err = run_cli([*TINY, "--tracker", "mlflow", "--out", str(out)], capsys)
    assert code == 0, err
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("moescale").experiment_id])
    assert run.info.run_name == "r" and run.info.status == "FINISHED"
    import moescale

    counts = moescale.count("tiny")
    params = run.data.params
    assert float(params["N"]) == counts.total_params
    assert float(params["N_active"]) == counts.active_params
    assert float(params["E"]) == 8 and float(params["K"]) == 2 and "G" in params
    assert params["config.batch_tokens"] == "256"
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert {m.step: m.value for m in history} == pytest.approx(_log_losses(out))
    import json

    assert run.data.metrics["eval_loss"] == pytest.approx(json.loads(stdout)["eval_loss"])


@pytest.mark.slow
def test_train_wandb_offline_writes_an_offline_run(tmp_path, monkeypatch, capsys):
    need("torch")
    need("wandb")
    from conftest import run_cli

    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "r"
    code, _, err = run_cli([*TINY, "--tracker", "wandb", "--out", str(out)], capsys)
    assert code == 0, err
    runs = list(out.rglob("offline-run-*"))
    assert runs and list(runs[0].glob("*.wandb"))


@pytest.mark.slow
def test_a_dead_mlflow_server_costs_one_warning_and_no_run(tmp_path):
    need("torch")
    need("mlflow")
    out = tmp_path / "r"
    env = os.environ | {"OMP_NUM_THREADS": "1",
                        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "moescale", *TINY, "--tracker", "mlflow",
                           "--out", str(out)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "mlflow" in warnings[0], proc.stderr
    assert (out / "checkpoint.pt").exists() and time.perf_counter() - start < 120


@pytest.mark.slow
def test_a_sweeps_trackers_reach_every_run(tmp_path, monkeypatch):
    need("torch")
    need("mlflow")
    from mlflow.tracking import MlflowClient

    from moescale.sweeps.executors import make_executor
    from moescale.sweeps.runner import run_sweep
    from moescale.sweeps.spec import SweepSpec
    from sweep_helpers import micro_spec

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    spec = SweepSpec.load(micro_spec(tmp_path, train='trackers = ["mlflow"]'))
    plain = SweepSpec.load(micro_spec(tmp_path, name="micro", train=""))
    ids = {r.id for r in spec.expand()}
    assert ids == {r.id for r in plain.expand()}  # where a run is watched is not what it is
    out = run_sweep(spec, tmp_path / "s.db", make_executor("local", workers=2, threads=1))
    assert out.counts["done"] == 2
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(spec.name)  # one experiment per sweep
    runs = client.search_runs([experiment.experiment_id])
    assert {r.info.run_name for r in runs} == ids
    assert all(r.info.status == "FINISHED" and "train_loss" in r.data.metrics for r in runs)
    assert {r.data.params["sweep"] for r in runs} == {spec.name}


@pytest.mark.slow
def test_fit_reads_runs_from_an_mlflow_server(mlflow_server, tmp_path, monkeypatch, capsys):
    """``fit --mlflow URI --experiment NAME`` against a real server: runs logged with
    Chinchilla losses (Hoffmann et al. 2022, Approach 3 coefficients) fit back to them."""
    import json

    import numpy as np

    from conftest import run_cli

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    truth = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    sizes = [(n, d) for n in (1e8, 3e8, 1e9, 3e9) for d in (2e9, 8e9, 3e10)]
    for i, (n, d) in enumerate(sizes):
        loss = truth["E"] + truth["A"] / n ** truth["alpha"] + truth["B"] / d ** truth["beta"]
        log_run(["mlflow"], f"run{i}", tmp_path, group="chinchilla-grid",
                params={"N": n, "D": d, "config": {"seed": 0}},
                result={"eval_loss": loss, "tokens": d, "flops": 6 * n * d})
    capsys.readouterr()  # what logging the runs printed
    code, out, err = run_cli(["fit", "--mlflow", mlflow_server, "--experiment",
                              "chinchilla-grid", "--law", "chinchilla", "--json"], capsys)
    assert code == 0, err
    fit = json.loads(out)
    assert fit["data"]["n_train"] == len(sizes)
    for k in ("alpha", "beta"):
        assert fit["params"][k] == pytest.approx(truth[k], rel=0.02)
    assert fit["train"]["rmse"] < 1e-3
    code, _, err = run_cli(["fit", "--mlflow", mlflow_server, "--law", "chinchilla"], capsys)
    assert code == 2 and "--mlflow URI and --experiment NAME go together" in err
    assert np.isfinite(fit["params"]["E"])


@pytest.mark.slow
def test_sweep_import_reads_runs_from_mlflow_as_from_their_folders(tmp_path, monkeypatch, capsys):
    """``sweep import --mlflow URI --experiment NAME`` rebuilds each run from what the trainer
    logged (architecture, settings, result): the same run, the same id, as importing its
    folder — so importing both ways adds it once."""
    need("torch")
    need("mlflow")
    from conftest import run_cli
    from moescale.sweeps.store import SweepStore

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name, tokens in (("a", "5120"), ("b", "7680")):
        argv = [*TINY, "--tracker", "mlflow", "--out", str(tmp_path / name)]
        argv[argv.index("5120")] = tokens
        code, _, err = run_cli(argv, capsys)
        assert code == 0, err
    db = tmp_path / "s.db"
    code, out, err = run_cli(["sweep", "import", "--store", str(db), "--mlflow", uri,
                              "--experiment", "moescale"], capsys)
    assert code == 0 and "imported 2 run(s)" in out, err
    code, out, err = run_cli(["sweep", "import", "--store", str(db), str(tmp_path / "a"),
                              str(tmp_path / "b")], capsys)
    assert code == 0 and "imported 0 run(s)" in out and "(2 already there)" in out, err
    with SweepStore(db, readonly=True) as store:
        rows = store.rows()
    import json

    for row, name in zip(sorted(rows, key=lambda r: r["result"]["tokens"]), "ab", strict=True):
        end = [json.loads(x) for x in (tmp_path / name / "log.jsonl").read_text().splitlines()
               if '"end"' in x][-1]
        assert row["result"]["eval_loss"] == pytest.approx(end["eval_loss"])
        assert row["result"]["tokens"] == end["tokens"]
    code, _, err = run_cli(["sweep", "import", "--store", str(db), "--mlflow", uri], capsys)
    assert code == 2 and "--mlflow URI and --experiment NAME go together" in err


@pytest.mark.slow
def test_workers_opening_a_fresh_sqlite_store_at_once_leave_it_whole(tmp_path):
    """Four processes open one fresh SQLite MLflow store at the same instant (a sweep's runs
    start together): one at a time migrates it, and the store is whole for the next reader."""
    need("mlflow")
    import subprocess
    import time

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    start = time.time() + 6  # after every process has imported mlflow
    code = ("import time, sys\n"
            "from mlflow.tracking import MlflowClient\n"
            "from moescale.training.trackers import _client\n"
            f"time.sleep(max({start} - time.time(), 0))\n"
            "_client(MlflowClient).search_experiments()\n")
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True,
                              env=os.environ | {"MLFLOW_TRACKING_URI": uri})
             for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    from mlflow.tracking import MlflowClient

    assert MlflowClient(uri).search_experiments()  # the Default experiment: tables complete
