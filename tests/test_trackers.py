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
