"""Issue 32: every executor of the registry passes the same checks (as scikit-learn's
``check_estimator``): it is built from ``sweep run``'s options, runs a batch of runs to their
outcomes — a result for one that trains, the worker's own reason for one that raises — holds
nothing afterwards, refuses to reattach a job it does not know, and drives a sweep to the
losses of the local executor."""

from __future__ import annotations

import math
import time

import pytest

from moescale.sweeps.engines import EXECUTORS
from moescale.sweeps.executors import Outcome, engine_options, make_executor
from moescale.sweeps.runner import run_sweep
from moescale.sweeps.spec import SweepSpec
from moescale.sweeps.store import SweepStore
from sweep_helpers import micro_spec, shared_token_cache  # noqa: F401

pytestmark = pytest.mark.slow


def _build(name: str, tmp_path, request):
    given = {"workers": 2, "threads": 1, "folder": tmp_path / "runs", "store": None,
             "cluster": "local", "resources": {}}
    if name == "ray":
        given["address"] = request.getfixturevalue("ray_cluster")
    if EXECUTORS[name].needs:
        pytest.importorskip(EXECUTORS[name].needs)
    return make_executor(name, **engine_options(name, given))


@pytest.fixture(scope="module")
def local_losses(tmp_path_factory):
    """The micro sweep under the local executor: eval loss by run id."""
    pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("local")
    spec = SweepSpec.load(micro_spec(folder, grid="hidden_size = [16, 24]"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MOESCALE_CACHE", str(tmp_path_factory.getbasetemp() / "token-cache"))
        env.setenv("OMP_NUM_THREADS", "1")
        run_sweep(spec, folder / "s.db", make_executor("local", workers=2, threads=1))
    with SweepStore(folder / "s.db", readonly=True) as store:
        return {r["id"]: r["result"]["eval_loss"] for r in store.rows()}


@pytest.mark.xdist_group("ray")  # one Ray cluster at a time: `ray stop` ends every cluster
@pytest.mark.parametrize("name", list(EXECUTORS))
def test_executor_conformance(name, tmp_path, request, local_losses):
    executor = _build(name, tmp_path, request)
    # the interface's attributes
    assert executor.name == name and executor.capacity >= 1
    assert isinstance(executor.description, str) and executor.description
    assert hasattr(executor, "address") and hasattr(executor, "threads")
    # a batch: one run that trains, one whose worker raises (data that is not there)
    spec = SweepSpec.load(micro_spec(tmp_path, grid="hidden_size = [16, 24]"))
    good, bad = spec.expand()
    bad = type(bad).from_dict({**bad.to_dict(), "train": {**bad.train,
                                                            "data": str(tmp_path / "nowhere")}})
    folder = tmp_path / "runs"
    executor.submit_batch([(good, folder / good.id), (bad, folder / bad.id)])
    assert executor.running() == {good.id, bad.id}
    outcomes: dict[str, Outcome] = {}
    deadline = time.monotonic() + 300
    while len(outcomes) < 2:
        assert time.monotonic() < deadline, f"{name}: no outcome in 300 s"
        outcomes |= {o.run_id: o for o in executor.poll()}
        time.sleep(0.2)
    assert outcomes[good.id].status == "done"
    assert math.isclose(outcomes[good.id].result["eval_loss"], local_losses[good.id],
                        abs_tol=1e-6)
    failed = outcomes[bad.id]
    assert failed.status == "failed" and not failed.retryable
    assert "nowhere" in failed.error  # the worker's own reason, not the engine's
    assert executor.running() == set()
    assert executor.reattach(good, folder / good.id, "no-such-job") is False
    executor.close()
    # a sweep driven by it: every run done, the local executor's losses
    executor = _build(name, tmp_path / "sweep", request)
    out = run_sweep(spec, tmp_path / "s.db", executor, folder=tmp_path / "sweep" / "runs")
    assert out.counts["done"] == 2 and not out.failed
    with SweepStore(tmp_path / "s.db", readonly=True) as store:
        got = {r["id"]: r["result"]["eval_loss"] for r in store.rows()}
    assert got.keys() == local_losses.keys()
    for run_id, loss in local_losses.items():
        assert math.isclose(got[run_id], loss, abs_tol=1e-6), (name, run_id)
