"""Sweeps that reuse compute (``[train] reuse = "trunk"``): one constant-LR trunk per model, a
WSD cooldown branched per budget (Hägele et al. 2024, arXiv:2405.18392)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time

import pytest

from conftest import run_cli
from moescale.sweeps.estimate import sweep_plan
from moescale.sweeps.reuse import branch_file, branch_step
from moescale.sweeps.spec import SweepSpec
from sweep_helpers import micro_spec, moescale_cmd, shared_token_cache  # noqa: F401

REUSE = 'reuse = "trunk"\ndecay_fraction = 0.2'


def _spec(tmp_path, budgets: str, train: str = REUSE, grid: str = "hidden_size = [16, 24]",
          name: str = "reuse"):
    return SweepSpec.load(micro_spec(tmp_path, name=name, budgets=budgets, grid=grid,
                                     train=train))


# ----- FLOPs: the formula, and sweep plan's numbers ---------------------------------------------
@pytest.mark.parametrize("budgets, bound", [
    ([3e9 * 3**i for i in range(3)], 0.76),   # three budgets spaced 3x: 0.754 by the formula
    ([3e9 * 2**i for i in range(5)], 0.62),   # five budgets spaced 2x: 0.613
])
def test_flops_with_reuse_follow_the_formula(tmp_path, budgets, bound):
    spec = _spec(tmp_path, str(budgets))
    plan = sweep_plan(spec, measure=False)
    ratio = plan["flops_total"] / plan["flops_without_reuse"]
    assert ratio <= bound
    # ((1 - f)·T_n + f·ΣT_i) / ΣT_i per model (module docstring of moescale.sweeps.reuse),
    # with every model weighted by its FLOPs per token
    runs = spec.expand()
    spent = without = 0.0
    for trunk in (r for r in runs if r.role == "trunk"):
        steps = [r.steps for r in runs if r.trunk == trunk.id]
        per_step = int(trunk.train["batch_tokens"]) * trunk.flops_per_token
        spent += ((1 - 0.2) * max(steps) + 0.2 * sum(steps)) * per_step
        without += sum(steps) * per_step
    assert ratio == pytest.approx(spent / without, rel=0.01)  # whole steps round a little
    assert plan["flops_without_reuse"] == pytest.approx(without)


def test_a_branch_counts_the_flops_of_the_independent_run(tmp_path):
    """Budgets as the papers count them: a branch's C and D are those of the same run trained
    from scratch (trunk share + cooldown)."""
    budgets = "[3e9, 9e9, 2.7e10]"
    shared = {(r.budget, r.architecture["hidden_size"]): r
              for r in _spec(tmp_path, budgets).expand() if r.role == "branch"}
    alone = {(r.budget, r.architecture["hidden_size"]): r
             for r in _spec(tmp_path, budgets, train="decay_fraction = 0.2",
                            name="alone").expand()}
    assert shared.keys() == alone.keys()
    for key, branch in shared.items():
        assert branch.flops == alone[key].flops and branch.tokens == alone[key].tokens
        assert branch.own_flops == pytest.approx(
            (branch.steps - branch.branch_step) * 256 * branch.flops_per_token)


def test_sweep_plan_json_reports_both_totals(tmp_path, capsys):
    path = micro_spec(tmp_path, budgets="[3e9, 9e9, 2.7e10]", train=REUSE)
    code, out, err = run_cli(["sweep", "plan", str(path), "--json", "--no-estimate",
                              "--store", str(tmp_path / "none.db")], capsys)
    assert code == 0, err
    plan = json.loads(out)
    assert plan["flops_total"] < 0.76 * plan["flops_without_reuse"]
    assert {r["role"] for r in plan["runs"]} == {"trunk", "branch"}
    code, out, _ = run_cli(["sweep", "plan", str(path), "--no-estimate",
                            "--store", str(tmp_path / "none.db")], capsys)
    assert "trunks reused" in out and "branch @ step" in out


# ----- lineage ---------------------------------------------------------------------------------
def test_lineage_of_trunks_and_branches(tmp_path):
    runs = _spec(tmp_path, "[3e9, 9e9, 2.7e10]").expand()
    trunks = [r for r in runs if r.role == "trunk"]
    assert len(trunks) == 2 and len(runs) == 8
    for trunk in trunks:
        branches = [r for r in runs if r.trunk == trunk.id]
        assert len(branches) == 3 and runs.index(trunk) < min(map(runs.index, branches))
        for b in branches:  # the first step of the branch's own WSD decay
            assert b.branch_step == b.steps - max(round(0.2 * b.steps), 1)
            assert b.branch_step == branch_step(b.steps, 0.2)
            assert b.train["warmup_steps"] == trunk.train["warmup_steps"]
            assert b.architecture == trunk.architecture and b.seed == trunk.seed
        assert trunk.train["keep_steps"] == sorted(b.branch_step for b in branches)
        assert trunk.last_step == max(b.branch_step for b in branches)
        # the warm-up is the model's own: 5 % of a 20-tokens-per-parameter run with
        # N = C/(6·D) (Hoffmann et al. 2022), whatever budgets share the trunk
        optimal_steps = 20 * trunk.flops_per_token / 6 / 256
        assert trunk.train["warmup_steps"] == round(0.05 * optimal_steps) > 0
    independent = {r.id for r in _spec(tmp_path, "[3e9, 9e9, 2.7e10]", train="",
                                       name="alone").expand()}
    assert not independent & {r.id for r in runs}  # reused runs never mix with independent ones


def test_a_single_budget_has_nothing_to_share(tmp_path):
    runs = _spec(tmp_path, "[3e9]").expand()
    assert [r.role for r in runs] == ["run", "run"]


def test_bad_reuse_values_are_refused(tmp_path):
    from moescale.errors import MoescaleError

    with pytest.raises(MoescaleError, match="reuse must be one of 'none', 'trunk'"):
        _spec(tmp_path, "[3e9]", train='reuse = "always"')
    with pytest.raises(MoescaleError, match="`cooldown` must be one of linear, 1-sqrt"):
        _spec(tmp_path, "[3e9]", train='reuse = "trunk"\ncooldown = "cosine"')
    with pytest.raises(MoescaleError, match="schedule = 'cosine' has none"):
        _spec(tmp_path, "[3e9]", train='reuse = "trunk"\nschedule = "cosine"')
    # an audit's cases: every run failed at start instead (a cooldown of the whole run; a
    # branch point at step 0 for budgets of a few steps)
    with pytest.raises(MoescaleError, match=r"needs a decay_fraction in \(0, 1\)"):
        _spec(tmp_path, "[3e9, 9e9]", train='reuse = "trunk"\ndecay_fraction = 1.0')
    with pytest.raises(MoescaleError, match="would branch at step 0, before its first step"):
        _spec(tmp_path, "[1e7, 3e7]")


# ----- training: a branch is the independent run -------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("cooldown", ["linear", "1-sqrt"])
def test_a_branch_matches_an_independent_run_with_the_same_schedule(tmp_path, cooldown):
    """A branch started from the trunk's kept checkpoint and an independent run with the same
    warm-up, schedule and seed end at the same losses."""
    pytest.importorskip("torch")
    from moescale.accounting.presets import get_preset
    from moescale.training.config import TrainConfig
    from moescale.training.trainer import train

    arch = get_preset("tiny")
    common = dict(batch_tokens=1024, seq_len=64, warmup_steps=3, decay_fraction=0.25,
                  cooldown=cooldown, threads=1, eval_tokens=2048, eval_every=1000, log_every=1)
    short, long = 16, 32
    points = (branch_step(short, 0.25), branch_step(long, 0.25))
    train(arch, TrainConfig(tokens=long * 1024, stop_after_steps=points[1], keep_steps=points,
                            out=str(tmp_path / "trunk"), **common))
    kept = branch_file(tmp_path / "trunk", points[0])
    branch = train(arch, TrainConfig(tokens=short * 1024, branch_from=str(kept),
                                     out=str(tmp_path / "branch"), **common))
    alone = train(arch, TrainConfig(tokens=short * 1024, out=str(tmp_path / "alone"), **common))
    assert branch.steps == alone.steps == short
    assert abs(branch.eval_loss - alone.eval_loss) < 1e-6
    assert abs(branch.train_loss - alone.train_loss) < 1e-6
    assert alone.eval_loss < alone.initial_eval_loss


@pytest.mark.slow
def test_a_branch_refuses_a_checkpoint_of_another_trunk(tmp_path):
    pytest.importorskip("torch")
    from moescale.accounting.presets import get_preset
    from moescale.errors import MoescaleError
    from moescale.training.config import TrainConfig
    from moescale.training.trainer import train

    arch = get_preset("tiny")
    common = dict(batch_tokens=1024, seq_len=64, warmup_steps=2, threads=1, eval_tokens=2048)
    train(arch, TrainConfig(tokens=20 * 1024, stop_after_steps=8, keep_steps=(8,),
                            out=str(tmp_path / "trunk"), **common))
    kept = str(branch_file(tmp_path / "trunk", 8))
    with pytest.raises(MoescaleError, match=r"other settings \(lr\)"):
        train(arch, TrainConfig(tokens=10 * 1024, branch_from=kept, lr=1e-3,
                                out=str(tmp_path / "other"), **common))


# ----- sweeps: kill-safe, never run twice --------------------------------------------------------
BUDGETS = "[3e8, 9e8, 2.7e9]"  # 27, 81 and 243 steps of 256 tokens on a 16-wide model
# runs of 27 steps are far below the default warm-up's yardstick (a 20-tokens-per-parameter run
# of the model: 28 warm-up steps here), so the micro sweeps warm up for a given number of steps;
# they checkpoint every 9 steps so that a branch's 49-step cooldown has checkpoints of its own
# to resume from (by default checkpoints follow the evaluations: every 81 steps here)
MICRO_REUSE = REUSE + "\nwarmup_steps = 3\ncheckpoint_every = 9"


def _losses(db) -> dict[str, float]:
    from moescale.sweeps.store import SweepStore

    with SweepStore(db) as store:
        return {r["id"]: r["result"]["eval_loss"] for r in store.rows() if r["result"]}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The micro reuse sweep run once without interruption (losses by run id)."""
    pytest.importorskip("torch")
    from moescale.sweeps.executors.local import LocalExecutor
    from moescale.sweeps.runner import run_sweep

    folder = tmp_path_factory.mktemp("reference")
    spec = SweepSpec.load(micro_spec(folder, budgets=BUDGETS, grid="hidden_size = [16]",
                                     train=MICRO_REUSE))
    with pytest.MonkeyPatch.context() as env:  # as the shared_token_cache fixture does
        env.setenv("MOESCALE_CACHE", str(tmp_path_factory.getbasetemp() / "token-cache"))
        env.setenv("OMP_NUM_THREADS", "1")
        out = run_sweep(spec, folder / "s.db", LocalExecutor(workers=2, threads=1))
    return folder, spec, out


@pytest.mark.slow
def test_reuse_sweep_end_to_end(reference, capsys):
    from moescale.sweeps.executors.local import LocalExecutor
    from moescale.sweeps.export import runs_frame
    from moescale.sweeps.runner import run_sweep
    from moescale.sweeps.store import SweepStore

    folder, spec, out = reference
    db = folder / "s.db"
    assert out.counts["done"] == 4 and not out.failed
    runs = {r.id: r for r in spec.expand()}
    trunk = next(r for r in runs.values() if r.role == "trunk")
    # the compute spent is the trunk's and the cooldowns', less than independent runs
    assert out.flops == pytest.approx(sum(r.own_flops for r in runs.values()))
    with SweepStore(db) as store:
        frame = runs_frame(store)
        points = runs_frame(store, trunk_points=True)
        curves = {r["id"]: store.curve(r["id"]) for r in store.rows()}
    assert sorted(frame["role"]) == ["branch"] * 3  # the trunk is not a run of a budget
    assert set(frame["trunk_id"]) == {trunk.id}
    for _, row in frame.iterrows():
        branch = runs[row["id"]]
        assert row["branch_step"] == branch.branch_step and row["D"] == branch.tokens
        steps = [p["step"] for p in curves[branch.id]]
        assert min(steps) > branch.branch_step and max(steps) == branch.steps  # its own curve
    free = points[points["role"] == "trunk point"]
    assert sorted(free["branch_step"]) == trunk.train["keep_steps"]
    assert list(free["D"]) == [s * 256.0 for s in sorted(trunk.train["keep_steps"])]
    assert free["loss"].notna().all()
    # every branch has started (and finished): the kept checkpoints are gone
    assert not list((folder / "s_runs" / trunk.id / "branches").glob("*.pt"))
    # exported as the papers count: the CLI's table has the same rows and lineage
    code, _, err = run_cli(["sweep", "export", "--store", str(db), "-o",
                            str(folder / "runs.csv"), "--trunk-points"], capsys)
    assert code == 0, err
    import pandas as pd

    table = pd.read_csv(folder / "runs.csv")
    assert sorted(table["role"]) == ["branch"] * 3 + ["trunk point"] * 3
    # never run twice: a second run of the sweep starts nothing
    again = run_sweep(spec, db, LocalExecutor(workers=2, threads=1))
    assert not again.finished and again.counts["done"] == 4


def _kill_when(cmd, predicate, timeout: float = 120.0) -> None:
    """Start ``cmd`` (a sweep driver) in its own process group; SIGKILL the group (driver and
    workers) once ``predicate()`` holds."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    end = time.monotonic() + timeout
    try:
        while not predicate():
            if proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"the sweep ended before the moment to kill it: "
                                     f"{proc.stderr.read().decode()[-400:]}")
            time.sleep(0.05)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # it had ended (the assertion above says why)
            pass
        proc.wait()


def _step(run_dir) -> int:
    """The last step a run folder's log reached (0 before the first)."""
    log = run_dir / "log.jsonl"
    if not log.exists():
        return 0
    steps = [json.loads(line).get("step", 0) for line in log.read_text().splitlines()
             if line.strip().endswith("}")]
    return max(steps, default=0)


@pytest.mark.slow
def test_killed_trunk_and_branch_resume_to_the_same_losses(reference, tmp_path):
    """SIGKILL the driver and its workers while the trunk trains (after a checkpoint), then
    while a branch trains; each run again resumes and every loss equals the uninterrupted
    sweep's. A finished branch is never run again."""
    from moescale.sweeps.executors.local import LocalExecutor
    from moescale.sweeps.runner import run_sweep
    from moescale.sweeps.store import SweepStore

    _, spec, _ = reference
    path = micro_spec(tmp_path, budgets=BUDGETS, grid="hidden_size = [16]", train=MICRO_REUSE)
    db, runs_dir = tmp_path / "s.db", tmp_path / "s_runs"
    runs = spec.expand()
    trunk = next(r for r in runs if r.role == "trunk")
    longest = max((r for r in runs if r.role == "branch"), key=lambda r: r.steps)
    cmd = moescale_cmd("sweep", "run", str(path), "--store", str(db), "--workers", "1",
                       "--threads", "1", "--json")
    # 1. the trunk, mid-way, with a checkpoint on disk
    _kill_when(cmd, lambda: (runs_dir / trunk.id / "checkpoint.pt").exists()
               and 0 < _step(runs_dir / trunk.id) < trunk.last_step - 20)
    # 2. the longest branch, once it has a checkpoint of its own
    _kill_when(cmd, lambda: (runs_dir / longest.id / "checkpoint.pt").exists()
               and _step(runs_dir / longest.id) < longest.steps - 5)
    with SweepStore(db) as store:
        done_before = {r["id"] for r in store.rows() if r["status"] == "done"}
    assert trunk.id in done_before and longest.id not in done_before
    out = run_sweep(SweepSpec.load(path), db, LocalExecutor(workers=1, threads=1))
    assert out.counts["done"] == 4 and not out.failed
    assert not set(out.finished) & done_before  # nothing finished was run again
    expected, got = _losses(reference[0] / "s.db"), _losses(db)
    assert got.keys() == expected.keys()
    for run_id, loss in expected.items():
        assert math.isclose(got[run_id], loss, abs_tol=1e-6), run_id
    with SweepStore(db) as store:
        rows = {r["id"]: r for r in store.rows()}
    assert rows[trunk.id]["result"]["resumed"] and rows[longest.id]["result"]["resumed"]


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # one Ray cluster at a time: `ray stop` ends every cluster
@pytest.mark.parametrize("engine", ["slurm", "ray"])
def test_reuse_under_slurm_and_ray_gives_the_local_losses(reference, tmp_path, engine, request):
    """Branches wait for their trunk and start from its checkpoint under every executor (run
    folders on a file system the workers share, as on a SLURM cluster)."""
    from moescale.sweeps.executors import make_executor
    from moescale.sweeps.runner import run_sweep

    _, spec, _ = reference
    if engine == "slurm":
        pytest.importorskip("submitit")
        executor = make_executor("slurm", cluster="local", folder=tmp_path / "runs", threads=1)
    else:
        executor = make_executor("ray", address=request.getfixturevalue("ray_cluster"),
                                 threads=1)
    out = run_sweep(spec, tmp_path / "s.db", executor, folder=tmp_path / "runs")
    assert out.counts["done"] == 4, out.failed
    expected, got = _losses(reference[0] / "s.db"), _losses(tmp_path / "s.db")
    assert got.keys() == expected.keys()
    for run_id, loss in expected.items():
        assert math.isclose(got[run_id], loss, abs_tol=1e-6), run_id


# ----- a sweep that grows, and a way back from a lost branch point -------------------------------
def _run(path, db, **kw):
    from moescale.sweeps.executors.local import LocalExecutor
    from moescale.sweeps.runner import run_sweep

    return run_sweep(SweepSpec.load(path), db, LocalExecutor(workers=2, threads=1), **kw)


def test_a_run_keeps_its_id_whatever_budgets_share_its_trunk(tmp_path):
    """Budgets added or removed change no run's identity: not a branch's, not the trunk's."""
    def ids(budgets):
        return {r.budget: r.id for r in _spec(tmp_path, budgets, grid="hidden_size = [16]",
                                              train=MICRO_REUSE).expand()}
    full = ids(BUDGETS)
    for part in ("[9e8, 2.7e9]", "[3e8, 9e8]", "[3e8, 2.7e9]"):
        for budget, run_id in ids(part).items():
            if not run_id.startswith("trunk-"):
                assert full[budget] == run_id, budget
        assert {i for i in ids(part).values() if i.startswith("trunk-")} == \
            {i for i in full.values() if i.startswith("trunk-")}


@pytest.mark.slow
@pytest.mark.parametrize("first, added", [("[3e8, 9e8]", "2.7e9"),    # a larger budget
                                          ("[9e8, 2.7e9]", "3e8")])   # a smaller one
def test_a_reuse_sweep_grows_by_a_budget(reference, tmp_path, first, added):
    """A reuse sweep grown by a budget trains only the new compute (the trunk's extension from
    its last checkpoint, or the smaller budget's own run), keeps every finished run untouched,
    and ends with the losses of the sweep that had every budget from the start (to 1e-6)."""
    from moescale.sweeps.store import SweepStore

    grid = "hidden_size = [16]"
    path = micro_spec(tmp_path, budgets=first, grid=grid, train=MICRO_REUSE)
    db = tmp_path / "s.db"
    assert not _run(path, db).failed
    with SweepStore(db) as store:
        before = {r["id"]: r for r in store.rows() if r["status"] == "done"}
    branches_before = {i for i in before if not i.startswith("trunk-")}
    path = micro_spec(tmp_path, budgets=BUDGETS, grid=grid, train=MICRO_REUSE)
    grown = SweepSpec.load(path).expand()
    new = {r.id for r in grown if r.role == "branch"} - branches_before
    trunk = next(r for r in grown if r.role == "trunk")
    out = _run(path, db)
    assert not out.failed and not out.retired and out.counts["done"] == 4
    larger = added == "2.7e9"
    assert set(out.finished) == new | ({trunk.id} if larger else set())
    with SweepStore(db) as store:
        after = {r["id"]: r for r in store.rows()}
    for run_id in branches_before:  # finished runs are not run again, their results unchanged
        assert after[run_id]["result"] == before[run_id]["result"]
        assert after[run_id]["finished"] == before[run_id]["finished"]
    (new_id,) = new
    result = after[new_id]["result"]
    if larger:  # the trunk resumed from its last checkpoint and went on to the new point
        old_end = before[trunk.id]["result"]["steps"]
        assert after[trunk.id]["result"]["resumed"] and old_end < trunk.last_step
        assert after[trunk.id]["result"]["steps"] == trunk.last_step
        assert "branch_start" not in result  # the new branch started at its own point
        spent = (trunk.last_step - old_end) * 256 * trunk.flops_per_token
        assert out.flops == pytest.approx(spent + grown[-1].own_flops)
    else:  # the trunk had passed the new point: the branch trained its stretch itself
        assert "started from step 0" in result["branch_start"]
    expected = _losses(reference[0] / "s.db")
    got = _losses(db)
    for run_id in {r.id for r in grown if r.role == "branch"}:
        assert math.isclose(got[run_id], expected[run_id], abs_tol=1e-6), run_id


@pytest.mark.slow
def test_a_second_driver_shares_the_branches_while_the_trunk_trains(tmp_path):
    """A second driver started while the first trains the trunk does not exit ("pending,
    running"): it waits for branch points and trains branches; no run is trained twice."""
    from moescale.errors import MoescaleError
    from moescale.sweeps.store import SweepStore

    path = micro_spec(tmp_path, budgets=BUDGETS, grid="hidden_size = [16]",
                      train=MICRO_REUSE)
    db = tmp_path / "s.db"
    runs = SweepSpec.load(path).expand()
    trunk = next(r for r in runs if r.role == "trunk")
    first = subprocess.Popen(moescale_cmd("sweep", "run", str(path), "--store", str(db),
                                          "--workers", "1", "--threads", "1", "--json"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=os.environ | {"OMP_NUM_THREADS": "1"})
    try:
        def trunk_running() -> bool:
            try:  # the first driver may be creating the store at this moment
                return SweepStore(db, readonly=True).states().get(trunk.id) == "running"
            except MoescaleError:
                return False

        end = time.monotonic() + 120
        while not trunk_running():
            assert time.monotonic() < end and first.poll() is None, first.stderr.read()
            time.sleep(0.05)
        second = _run(path, db)
        out, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, err
    one = json.loads(out)
    assert trunk.id in one["finished"] and second.finished  # both drivers trained
    assert not set(one["finished"]) & set(second.finished)
    assert set(one["finished"]) | set(second.finished) == {r.id for r in runs}
    with SweepStore(db) as store:
        assert all([h["outcome"] for h in r["history"]].count("done") == 1
                   for r in store.rows())


@pytest.mark.slow
def test_a_damaged_branch_point_is_rebuilt_from_the_previous_one(reference, tmp_path):
    """A kept point that cannot be read is set aside and the branch starts from the trunk's
    previous point (or step 0), training the constant-rate stretch itself: the same loss."""
    from moescale.sweeps import worker

    runs = reference[1].expand()
    trunk = next(r for r in runs if r.role == "trunk")
    longest = max((r for r in runs if r.role == "branch"), key=lambda r: r.steps)
    folder = tmp_path / "runs"
    worker.execute(trunk.to_dict(), folder / trunk.id, threads=1)
    point = branch_file(folder / trunk.id, longest.branch_step)
    point.write_bytes(point.read_bytes()[:200])  # cut short, as a full disk or a bad copy would
    result = worker.execute(longest.to_dict(), folder / longest.id, threads=1)
    earlier = max(s for s in trunk.train["keep_steps"] if s < longest.branch_step)
    assert f"trunk point at step {longest.branch_step} unreadable" in result["branch_start"]
    assert f"started from the trunk's step {earlier}" in result["branch_start"]
    assert list(point.parent.glob(point.name + ".corrupt-*"))
    expected = _losses(reference[0] / "s.db")[longest.id]
    assert math.isclose(result["eval_loss"], expected, abs_tol=1e-6)


@pytest.mark.slow
def test_a_branch_whose_trunk_kept_no_checkpoint_trains_from_step_0(reference, tmp_path):
    """A trunk that failed, or whose folder was removed, leaves its branches a way on: they
    train from step 0 with the trunk's schedule, to the loss they would have had."""
    from moescale.sweeps import worker

    branch = next(r for r in reference[1].expand() if r.role == "branch")
    result = worker.execute(branch.to_dict(), tmp_path / "runs" / branch.id, threads=1)
    assert "started from step 0" in result["branch_start"]
    expected = _losses(reference[0] / "s.db")[branch.id]
    assert math.isclose(result["eval_loss"], expected, abs_tol=1e-6)


def test_trackers_are_no_part_of_a_run_or_its_trunk(tmp_path):
    """Adding a tracker to a finished reuse sweep reruns nothing: no id changes."""
    plain = _spec(tmp_path, BUDGETS, grid="hidden_size = [16]", train=MICRO_REUSE)
    watched = _spec(tmp_path, BUDGETS, grid="hidden_size = [16]",
                    train=MICRO_REUSE + '\ntrackers = ["tensorboard"]')
    assert [r.id for r in plain.expand()] == [r.id for r in watched.expand()]
    assert all(list(r.train["trackers"]) == ["tensorboard"] for r in watched.expand())
