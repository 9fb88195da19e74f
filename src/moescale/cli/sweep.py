"""``moescale sweep``: declare a grid of training runs, run it without losing a run, analyse it."""

from __future__ import annotations

from pathlib import Path

import click

from moescale.cli._output import echo_json, fmt_num, print_table, safe
from moescale.errors import MoescaleError
from moescale.sweeps.engines import EXECUTORS as EXECUTOR_NAMES  # no engine imported

STORE_HELP = "The sweep's SQLite store (created when missing)."


def _store_option(required_existing: bool):
    return click.option("--store", "store_path", type=click.Path(dir_okay=False),
                        default="sweep.db", show_default=True,
                        help=STORE_HELP if not required_existing else "The sweep's SQLite store.")


def _open(store_path: str):
    """A store for reading: opened read-only; a file that is not a moescale store is refused."""
    from moescale.sweeps.store import SweepStore

    return SweepStore(store_path, create=False, readonly=True)


def _report_problems(store) -> None:
    """One warning line per run the store could not use (a done run without a result)."""
    for problem in store.problems:
        click.echo(f"warning: {store.path}: {safe(problem)}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def sweep() -> None:
    """Run a campaign of training runs from one TOML spec and analyse it.

    \b
    Examples:
      moescale sweep plan examples/isoflop-mini/sweep.toml
      moescale sweep run examples/isoflop-mini/sweep.toml --store sweep.db --workers 2
      moescale sweep status --store sweep.db
      moescale sweep analyze --store sweep.db -o fits/
      moescale sweep export --store sweep.db -o runs.csv
      moescale fit --store sweep.db --law chinchilla
    """


# ----- plan ---------------------------------------------------------------------------------------
@sweep.command("plan")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("--store", "store_path", type=click.Path(dir_okay=False), default="sweep.db",
              show_default=True,
              help="The sweep's store, when it exists: runs already done there are not estimated.")
@click.option("--workers", type=click.IntRange(min=1), help="Workers assumed for the time estimate.")
@click.option("--estimate/--no-estimate", "measure", default=True,
              help="Estimate the wall time by timing short real runs (a few seconds).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan_cmd(spec_path, store_path, workers, measure, as_json):
    """List the runs of SPEC (id, architecture, tokens, FLOPs, done or left in the store), the
    total compute, repeated data and an estimated wall time on this machine of the runs left.

    \b
    Examples:
      moescale sweep plan examples/isoflop-mini/sweep.toml
      moescale sweep plan sweep.toml --store sweep.db --workers 4 --json
      moescale sweep plan sweep.toml --no-estimate
    """
    from moescale.sweeps.estimate import sweep_plan
    from moescale.sweeps.spec import SweepSpec

    spec = SweepSpec.load(spec_path)
    states = {}
    if Path(store_path).is_file():
        from moescale.sweeps.store import sweep_name_conflict

        with _open(store_path) as store:
            states = store.states()
            conflict = sweep_name_conflict(store.sweep_names(), spec.name, store_path,
                                           spec_path)
        if conflict:
            click.echo(f"warning: {safe(conflict)}", err=True)
    plan = sweep_plan(spec, workers, measure=measure,
                      done={i for i, s in states.items() if s == "done"},
                      failed={i for i, s in states.items() if s == "failed"})
    if as_json:
        echo_json(plan)
        return
    reuse = any(r["role"] != "run" for r in plan["runs"])
    rows = [(r["id"], fmt_num(r["budget"], 3), r["d"], r["L"], f"{r['E']}/{r['K']}",
             r["N"], r["N_active"], r["tokens"], r["steps"], r["flops"],
             "-" if r["epochs"] is None else f"{r['epochs']:.2f}", r["state"])
            + ((_lineage(r), r["own_flops"]) if reuse else ())
            for r in plan["runs"]]
    print_table(f"sweep {safe(plan['name'])}: {len(rows)} runs",
                ["id", "budget", "d", "L", "E/K", "N", "N active", "tokens", "steps", "FLOPs",
                 "epochs", "state"] + (["role", "FLOPs spent"] if reuse else []), rows)
    if states:
        failed = f", {plan['n_failed']} failed (run again with --retry-failed)" \
            if plan["n_failed"] else ""
        click.echo(f"store {store_path}: {plan['n_done']} done{failed}, {plan['n_left']} left "
                   f"({fmt_num(plan['left_flops'], 3)} FLOPs)")
    estimate = (f"; time {plan['estimate_basis']}"
                if plan["estimate_basis"].startswith("not measured:") else
                "" if plan["estimated_seconds"] is None else
                f"; estimated wall time of the {plan['n_left']} run(s) left "
                f"{_duration(plan['estimated_seconds'])} with {plan['workers']} worker(s) "
                f"({plan['estimate_basis']})")
    saved = ("" if plan["flops_total"] >= plan["flops_without_reuse"] else
             f" ({plan['flops_total'] / plan['flops_without_reuse']:.2f}× the "
             f"{fmt_num(plan['flops_without_reuse'], 3)} of independent runs: trunks reused)")
    click.echo(f"total compute {fmt_num(plan['flops_total'], 3)} FLOPs{saved}{estimate}")
    for warning in plan["warnings"]:
        click.echo(f"warning: {warning}", err=True)


def _lineage(row: dict) -> str:
    """``trunk``, ``branch @ step 1,966 of trunk-3b78…`` or ``run``."""
    if row["role"] == "branch":
        return f"branch @ step {row['branch_step']:,} of {row['trunk'][:12]}…"
    return row["role"]


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# ----- run ----------------------------------------------------------------------------------------
@sweep.command("run")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@_store_option(False)
@click.option("--workers", type=click.IntRange(min=1),
              help="Runs at once (default: CPUs / cpus_per_run, or one per GPU; "
                   "Ray: cluster CPUs / cpus_per_run).")
@click.option("--threads", type=click.IntRange(min=1),
              help="CPU threads per run (default: CPUs / workers; Ray and SLURM: cpus_per_run).")
@click.option("--runs-per-worker", type=click.IntRange(min=0), default=0, show_default=True,
              help="Local: runs one worker process trains before a fresh one takes over "
                   "(0: no limit; 1: a fresh process per run). A failed run always ends its "
                   "process.")
@click.option("--executor", type=click.Choice(list(EXECUTOR_NAMES)), default="local",
              show_default=True, help="Where runs execute.")
@click.option("--address", default=None,
              help="Ray: cluster address (auto, ray://host:10001); default a local instance.")
@click.option("--cluster", type=click.Choice(["slurm", "local"]), default="slurm",
              show_default=True, help="SLURM: 'local' runs the jobs with submitit's local executor.")
@click.option("--slurm-partition", default=None, help="SLURM partition.")
@click.option("--slurm-time", type=click.IntRange(min=1), default=60, show_default=True,
              help="SLURM time limit per job, minutes (jobs that time out are requeued).")
@click.option("--slurm-gpus-per-node", type=click.IntRange(min=0), default=None,
              help="SLURM GPUs per job (default: gpus_per_run of the spec).")
@click.option("--slurm-account", default=None, help="SLURM account.")
@click.option("--slurm-qos", default=None, help="SLURM quality of service.")
@click.option("--slurm-arg", "slurm_args", multiple=True, metavar="KEY=VALUE",
              help="Any other sbatch option, e.g. constraint=a100. Repeatable.")
@click.option("--retry-failed", is_flag=True, help="Run failed runs again.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True,
              help="Tries of a run whose worker died (a run that raised is not retried).")
@click.option("--runs-dir", type=click.Path(file_okay=False),
              help="Folder of run folders (checkpoints, logs); default STORE_runs/ beside the store.")
@click.option("--merge", is_flag=True,
              help="Add SPEC's runs to a store that holds another sweep (refused otherwise).")
@click.option("--lease-seconds", type=click.FloatRange(min=0.5), default=60.0, hidden=True,
              help="Seconds a silent driver keeps its claims (tests).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def run_cmd(spec_path, store_path, workers, threads, runs_per_worker, executor, address, cluster,
            slurm_partition, slurm_time, slurm_gpus_per_node, slurm_account, slurm_qos,
            slurm_args, retry_failed, max_attempts, runs_dir, merge, lease_seconds, as_json):
    """Run every run of SPEC that is not done yet, recording each in the store.

    Safe to interrupt and to restart: finished runs are kept, interrupted runs resume from
    their last checkpoint, and two `sweep run` processes on one store share the work. With
    Ray or SLURM only this driver writes the store; a restarted driver takes back the jobs
    that still run.

    Shows each running run (architecture, steps, train loss, time left) at a terminal, one
    line per finished run otherwise. Runs of this sweep that SPEC no longer produces (an
    earlier version of it) are retired: never run, shown as retired by `sweep status`, the
    results of finished ones kept. Exits 1 when runs failed, 130 on Ctrl-C.

    \b
    Examples:
      moescale sweep run sweep.toml --store sweep.db
      moescale sweep run sweep.toml --store sweep.db --workers 2 --threads 1
      moescale sweep run sweep.toml --store sweep.db --runs-per-worker 1
      moescale sweep run sweep.toml --store sweep.db --executor ray --address auto
      moescale sweep run sweep.toml --store /shared/sweep.db --executor slurm \\
        --slurm-partition gpu --slurm-time 120 --slurm-arg constraint=a100
      moescale sweep run sweep.toml --store sweep.db --retry-failed --json
    """
    import sys

    from moescale.sweeps.executors import EXECUTORS, engine_options, make_executor
    from moescale.sweeps.runner import (
        LineReport,
        LiveDisplay,
        SweepInterrupted,
        run_sweep,
    )
    from moescale.sweeps.runner import runs_dir as default_runs_dir
    from moescale.sweeps.spec import SweepSpec

    spec = SweepSpec.load(spec_path)
    if Path(store_path).exists():  # not a store: the one error line comes before any output
        _open(store_path).close()
    engine = EXECUTORS[executor]
    if engine.trains_here:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            raise MoescaleError("sweep run trains models and needs torch: "
                                "pip install 'moescale[train]'")
        from moescale.cli._options import cap_threads

        threads = cap_threads(threads)
    folder = Path(runs_dir) if runs_dir else default_runs_dir(store_path)
    given = {"workers": workers, "threads": threads, "runs_per_worker": runs_per_worker,
             "resources": spec.resources,
             "store": store_path, "folder": folder, "address": address, "cluster": cluster,
             "slurm_partition": slurm_partition, "slurm_time": slurm_time,
             "slurm_account": slurm_account, "slurm_qos": slurm_qos,
             "slurm_gpus_per_node": slurm_gpus_per_node, "slurm_args": slurm_args}
    ex = make_executor(executor, **engine_options(executor, given))
    if as_json:
        display = None
    elif sys.stderr.isatty():
        display = LiveDisplay(spec.expand(), ex.description)
    else:
        display = LineReport()
    if not as_json:
        click.echo(f"sweep {safe(spec.name)}: {ex.description}", err=True)
    try:
        out = run_sweep(spec, store_path, ex, retry_failed=retry_failed, folder=folder,
                        max_attempts=max_attempts, progress=display, merge=merge,
                        lease_s=lease_seconds)
    except SweepInterrupted as stop:
        out = stop.run
        if as_json:
            echo_json(out.to_dict() | {"interrupted": True})
        click.echo(f"interrupted: {len(out.finished)} run(s) finished; {len(out.stopped)} "
                   "running run(s) stopped, they resume from their last checkpoint at the next "
                   f"`moescale sweep run` ({out.counts['pending']} pending)", err=True)
        sys.exit(130)
    failed = out.counts["failed"]
    if as_json:
        echo_json(out)
    else:
        c = out.counts
        if out.retired:
            click.echo(f"retired {len(out.retired)} run(s) of this sweep that the spec no longer "
                       "produces (kept in the store, never run; see `sweep status`)")
        click.echo(f"{c['done']} done, {c['failed']} failed, {c['pending']} pending, "
                   f"{c['running']} running elsewhere; this run finished {len(out.finished)} in "
                   f"{_duration(out.seconds)} ({fmt_num(out.flops, 3)} FLOPs). Store: {out.store}")
        for run_id, reason in out.failed.items():
            click.echo(f"failed {run_id}: {safe(reason)}")
    if not as_json:
        for run_id, note in out.notes.items():
            click.echo(f"note: run {run_id}: {safe(note)}", err=True)
        if out.waited:
            click.echo(f"note: {len(out.waited)} run folder(s) were held by another worker "
                       "(a driver that lost its claim while paused); waited for it instead of "
                       "starting a second one", err=True)
        if out.lost_claims:
            click.echo(f"note: stood down on {len(out.lost_claims)} run(s) that another driver "
                       "took over while this one was paused (nothing recorded for them here)",
                       err=True)
    if failed:
        click.echo(f"Error: {failed} of {out.runs} run(s) failed (reasons: `moescale sweep "
                   "status`); run them again with --retry-failed", err=True)
        sys.exit(1)


# ----- status -------------------------------------------------------------------------------------
@sweep.command("status")
@_store_option(True)
@click.option("--json", "as_json", is_flag=True, help="Print counts and runs as JSON.")
def status_cmd(store_path, as_json):
    """Counts by state and one row per run: architecture, state, progress and time left of
    running runs (works while the sweep runs). Runs retired from the spec are listed as
    retired; a retired run that had finished keeps its result.

    \b
    Examples:
      moescale sweep status --store sweep.db
      moescale sweep status --store sweep.db --json
    """
    from moescale.sweeps.runner import fmt_seconds

    store = _open(store_path)
    runs = [_status_row(r) for r in store.rows()]
    _report_problems(store)
    counts = store.counts()
    if as_json:
        echo_json({"store": str(store.path), "counts": counts, "runs": runs})
        return
    print_table(f"sweep store {store.path}",
                ["id", "d", "L", "E", "K", "N active", "budget", "tokens", "state",
                 "progress", "time left", "eval loss"],
                [(r["id"], r["d"], r["L"], r["E"], r["K"], r["N_active"],
                  fmt_num(r["budget"], 3), r["tokens"],
                  r["state"] + (" (retired)" if r["retired"] and r["state"] != "retired" else ""),
                  "-" if r["step"] is None else f"{r['step']:,}/{r['total_steps']:,}",
                  fmt_seconds(r["seconds_left"]),
                  "-" if r["eval_loss"] is None else f"{r['eval_loss']:.4f}") for r in runs])
    click.echo(", ".join(f"{v} {k}" for k, v in counts.items()))
    for r in runs:
        if r["state"] == "failed":
            click.echo(f"failed {r['id']}: {safe(r['error'])}")
        elif r["stalled"] and r["lease_expired_s"] is not None:
            click.echo(f"stalled {r['id']}: its driver has not renewed the lease for "
                       f"{fmt_seconds(r['lease_expired_s'])}; the next `sweep run` on this "
                       "store takes it over from its last checkpoint")
        elif r["stalled"]:
            click.echo(f"stalled {r['id']}: its worker has been silent for "
                       f"{fmt_seconds(r['worker_silent_s'])} (stopped or hung); its driver "
                       "kills it and resumes the run from its last checkpoint")


def _status_row(r: dict) -> dict:
    """One run of ``sweep status``: architecture, state, progress (steps from the run's log
    for running and interrupted runs, time left for running ones) and result. A running run
    whose lease has passed is ``stalled``: its driver stopped renewing it (killed, stopped or
    cut off), and the next driver to claim work takes it over; so is one whose worker has not
    touched its heartbeat for ``STALL_SECONDS`` (stopped or hung): its driver kills it and
    resumes the run."""
    import time

    from moescale.sweeps.export import run_columns
    from moescale.sweeps.runner import STALL_SECONDS, read_progress
    from moescale.sweeps.spec import RunSpec
    from moescale.sweeps.store import state
    from moescale.sweeps.worker import heartbeat_age

    res, spec = r["result"] or {}, r["spec"]
    cols = run_columns(spec)
    total = RunSpec.from_dict(spec).last_step
    step, left = None, None
    if r["status"] == "done":
        step = res.get("steps", total)
    elif r["run_dir"] and r["status"] in ("running", "pending"):
        progress = read_progress(r["run_dir"], total)
        step = progress.step if progress.step else None
        left = progress.seconds_left if r["status"] == "running" else None
    lease, now = r.get("lease_until"), time.time()
    expired = r["status"] == "running" and lease is not None and lease < now
    silent = (heartbeat_age(r["run_dir"], now) if r["status"] == "running" and r["run_dir"]
              else None)
    silent = silent if silent is not None and silent > STALL_SECONDS else None
    stalled = expired or silent is not None
    if stalled:
        left = None
    return {"id": r["id"], "state": "stalled" if stalled else state(r["status"], r["retired"]),
            "status": r["status"], "stalled": stalled,
            "lease_expired_s": round(now - lease, 1) if expired else None,
            "worker_silent_s": round(silent, 1) if silent is not None else None,
            "retired": r["retired"] is not None, "attempts": r["attempts"],
            "d": cols["d"], "L": cols["L"], "E": cols["E"], "K": cols["K"], "G": cols["G"],
            "arm": cols["arm"],
            "N_active": cols["N_active"], "budget": spec["budget"],
            "tokens": spec["train"]["tokens"],
            "flops": spec["train"]["tokens"] * spec["flops_per_token"],
            "step": step, "total_steps": total, "seconds_left": left,
            "eval_loss": res.get("eval_loss"), "host": r["host"], "pid": r["pid"],
            "error": r["error"], "run_dir": r["run_dir"]}


# ----- retire -------------------------------------------------------------------------------------
@sweep.command("retire")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@_store_option(True)
def retire_cmd(spec_path, store_path):
    """Retire the runs of SPEC's sweep that SPEC no longer produces (an earlier version of
    it): they are never run and no longer count as pending; finished ones keep their result.
    `sweep run` does this too; a spec that produces a retired run again brings it back.

    \b
    Examples:
      moescale sweep retire sweep.toml --store sweep.db
    """
    from moescale.sweeps.spec import SweepSpec

    spec = SweepSpec.load(spec_path)
    ids = {r.id for r in spec.expand()}
    from moescale.sweeps.store import SweepStore

    store = SweepStore(store_path, create=False)
    sweeps = sorted({r["spec"]["sweep"] for r in store.rows()})
    if spec.name not in sweeps:
        raise MoescaleError(f"{store_path} holds no run of sweep {spec.name!r} (it holds "
                            f"{', '.join(map(repr, sweeps)) or 'nothing'}); retire with that "
                            "sweep's spec")
    back = store.unretire(ids)
    stale = store.stale(spec.name, ids)
    n = store.retire(stale)
    click.echo(f"retired {n} run(s) of sweep {spec.name} that {spec_path} no longer produces"
               + (f"; {back} retired run(s) it produces again are back" if back else "")
               + ". " + ", ".join(f"{v} {k}" for k, v in store.counts().items()))


# ----- export -------------------------------------------------------------------------------------
@sweep.command("export")
@_store_option(True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="CSV or Parquet file (by extension).")
@click.option("--all", "all_runs", is_flag=True, help="Every run, not only the done ones.")
@click.option("--law", default=None,
              help="Name N, N_active, C, G by this law's counting convention.")
@click.option("--trunk-points", is_flag=True,
              help="With reuse = \"trunk\": add each trunk's loss at every branch point (at the "
                   "peak learning rate, not cooled down) as rows with role \"trunk point\".")
def export_cmd(store_path, output, all_runs, law, trunk_points):
    """Write the run table in the fitting module's format (`moescale fit OUTPUT` reads it).

    Columns role, trunk_id and branch_step give each run's lineage under reuse = "trunk"
    (role "run" for independent runs).

    \b
    Examples:
      moescale sweep export --store sweep.db -o runs.csv
      moescale sweep export --store sweep.db -o runs.parquet --all
      moescale sweep export --store sweep.db -o joint.csv --law ludziejewski2025
      moescale sweep export --store sweep.db -o points.csv --trunk-points
    """
    from moescale.sweeps.export import law_mapping, runs_frame

    out = Path(output)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise MoescaleError(f"-o must end in .csv or .parquet, got {out.name}")
    store = _open(store_path)
    frame = runs_frame(store, None if all_runs else "done", trunk_points=trunk_points)
    _report_problems(store)
    if frame.empty:
        raise MoescaleError(f"{store_path} has no {'' if all_runs else 'finished '}run to export")
    mapping = law_mapping(law, frame.columns)
    frame = frame.drop(columns=list(mapping), errors="ignore").rename(
        columns={v: k for k, v in mapping.items()})
    tmp = out.with_name(out.name + ".partial")
    if out.suffix.lower() == ".csv":
        frame.to_csv(tmp, index=False)
    else:
        try:
            frame.to_parquet(tmp, index=False)
        except ImportError:
            raise MoescaleError("Parquet needs pyarrow: pip install 'moescale[parquet]'") from None
    tmp.replace(out)
    click.echo(f"wrote {len(frame)} runs to {out}")


# ----- analyze ------------------------------------------------------------------------------------
@sweep.command("analyze")
@_store_option(True)
@click.option("--runs", "runs_file", type=click.Path(dir_okay=False),
              help="A runs file written by `sweep export` (CSV, Parquet, …) instead of --store.")
@click.option("--x", "axis", default=None,
              help="Size axis of the isoFLOP curves: N (default), N_active, M_over_Na (default "
                   "for holistic sweeps), N_over_Na, d, …")
@click.option("--by", default=None,
              help="Analyse per arm of a study axis — E, K, G, S, G_act, n_shared, "
                   "activation_ratio or arm (dense is its own arm) — or per value of any column; "
                   "an axis adds each arm's compute multiplier over --reference.")
@click.option("--reference", default=None,
              help="The arm the others are compared with, e.g. dense or 'G 1' [default: dense, "
                   "else the first arm].")
@click.option("--bootstrap", type=click.IntRange(0, 100_000), default=1000, show_default=True,
              help="Residual-bootstrap replicates per budget for the optimum's interval.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(file_okay=False),
              help="Folder for the power-law fits (NAME_fit.json, for plan --m-ratio-fit …).")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
def analyze_cmd(store_path, runs_file, axis, by, reference, bootstrap, seed, output, as_json):
    """Per-budget isoFLOP optima with intervals and their power laws in C.

    A budget whose minimum lies at the edge of the grid is refused, naming the edge to extend.

    \b
    Examples:
      moescale sweep analyze --store sweep.db
      moescale sweep analyze --store sweep.db --x N_active --by E --json
      moescale sweep analyze --runs examples/experts-micro/runs.csv --x N_active --by E
      moescale sweep analyze --runs examples/granularity-micro/runs.csv --x N_active --by G
      moescale sweep analyze --store holistic.db -o fits/ && \\
        moescale plan --compute 1e21 --m-ratio-fit fits/M_over_Na_opt_fit.json
    """
    from moescale.sweeps.analyze import analyze
    from moescale.sweeps.experts import ARM_AXES, arm_keys, compare_arms, seed_noise
    from moescale.sweeps.export import runs_frame

    if runs_file:
        from moescale.runs import read_frame

        frame = read_frame(runs_file)
    else:
        store = _open(store_path)
        frame = runs_frame(store)
        _report_problems(store)
    if frame.empty:
        raise MoescaleError(f"{runs_file or store_path} has no finished run to analyse")
    if reference is not None and by not in ARM_AXES:
        raise MoescaleError(f"`reference` compares the arms of a study axis; give `by` as one of "
                            f"{', '.join(ARM_AXES)}")
    arms = by in ARM_AXES
    grouped = frame.assign(arm_key=arm_keys(frame, by)) if arms else frame
    result = analyze(grouped, x=axis, by="arm_key" if arms else by, bootstrap=bootstrap,
                     seed=seed)
    written = _write_fits(result, output) if output else []
    done = frame[frame["loss"].notna()] if "loss" in frame.columns else frame
    experts = compare_arms(done, by, reference, x=result.x, bootstrap=bootstrap, seed=seed) \
        if arms else None
    noise = experts.noise if experts else seed_noise(done)
    if as_json:
        echo_json(result.to_dict() | {"written": written, "seed_noise": {
            "sd": noise.sd, "n_configs": noise.n_configs, "dof": noise.dof,
            "text": noise.describe()}} | ({"experts": experts.to_dict()} if experts else {}))
        return
    rows = []
    for b in result.budgets:
        ci = "-" if b.x_opt_ci is None else f"{fmt_num(b.x_opt_ci[0], 3)} – {fmt_num(b.x_opt_ci[1], 3)}"
        rows.append((fmt_num(b.budget, 3), " ".join(
                         str(v) if k == "arm_key" else f"{k}={v:g}" if isinstance(v, float | int)
                         else f"{k}={v}" for k, v in b.group.items()),
                     b.n_runs, b.status, "-" if b.x_opt is None else fmt_num(b.x_opt, 4), ci,
                     "-" if b.D_opt is None else fmt_num(b.D_opt, 3),
                     "-" if b.loss_opt is None else f"{b.loss_opt:.4f}"))
    print_table(f"isoFLOP optima of {result.x} ({int(result.level * 100)} % intervals)",
                ["budget", "group", "runs", "status", f"{result.x} opt", "interval", "D opt",
                 "loss"], rows)
    for b in result.budgets:
        if b.status != "ok":
            click.echo(f"refused: {b.message}")
    for name, fit in result.power_laws.items():
        click.echo(f"{name} = {fit.params['k']:.4g} · C^{fit.params['p']:.4f}")
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(noise.describe())
    if experts:
        print_experts(experts)


def print_experts(comparison) -> None:
    """The per-arm best losses and compute multipliers over the reference arm, as tables."""
    from moescale.sweeps.experts import arm_order

    ref = comparison.reference
    ref_loss = {b.budget: b.loss for b in comparison.best if b.arm == ref}
    by_key = {(m.arm, m.budget): m for m in comparison.multipliers if m.budget is not None}

    def verdict(b) -> tuple[str, str]:
        m = by_key.get((b.arm, b.budget))
        if b.arm == ref or b.budget not in ref_loss:
            return "-", "-"
        ci = "" if m is None or m.delta_ci is None else \
            f" ({m.delta_ci[0]:+.3f} – {m.delta_ci[1]:+.3f})"
        within = m.within_noise if m is not None else comparison.noise.within(
            b.loss - ref_loss[b.budget])
        return f"{b.loss - ref_loss[b.budget]:+.4f}{ci}", _noise_word(within)

    best = sorted(comparison.best, key=lambda b: (b.budget, arm_order(b.arm)))
    rows = [(fmt_num(b.budget, 3), b.arm, b.n_runs, fmt_num(b.x_opt, 4), f"{b.loss:.4f}",
             b.status, *verdict(b)) for b in best]
    pct = int(comparison.level * 100)
    print_table(f"best loss per budget and arm (over {comparison.x}; vs {ref} with its {pct} % "
                "bootstrap interval)",
                ["budget", "arm", "runs", f"{comparison.x} at best", "best loss", "from",
                 f"vs {ref}", "noise"], rows)
    if comparison.multipliers:
        rows = [("all (geometric mean)" if m.budget is None else fmt_num(m.budget, 3),
                 m.arm, f"{m.multiplier:.3g}×",
                 "-" if m.ci is None else f"{m.ci[0]:.3g}× – {m.ci[1]:.3g}×",
                 "-" if m.ci_mc_error is None else f"±{m.ci_mc_error:.2g}",
                 "yes" if m.extrapolated else "no")
                for m in comparison.multipliers]
        print_table(f"compute multiplier over {ref} at equal loss ({pct} % bootstrap intervals, "
                    f"{comparison.bootstrap_ok} of {comparison.bootstrap} replicates; ends' "
                    "Monte-Carlo error)",
                    ["budget", "arm", "multiplier", "interval", "MC error", "extrapolated"], rows)
    for message in comparison.messages:
        click.echo(message)


def _noise_word(within: bool | None) -> str:
    return {None: "unknown", True: "within", False: "beyond"}[within]


def _write_fits(result, folder: str) -> list[str]:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fit in result.power_laws.items():
        safe = "".join(ch if ch.isalnum() or ch in "_-=" else "_" for ch in name)
        path = out / f"{safe}_fit.json"
        fit.save(path)
        paths.append(str(path))
    return paths


# ----- suggest ------------------------------------------------------------------------------------
@sweep.command("suggest")
@_store_option(True)
@click.option("--law", "law_name", required=True, help="Loss law to fit to the store's runs.")
@click.option("--target-compute", required=True, metavar="FLOPS",
              help="Budget whose optimum the new runs should pin down, e.g. 1e21.")
@click.option("--n", "n_runs", type=click.IntRange(1, 1000), default=8, show_default=True,
              help="Runs to propose (at most).")
@click.option("--budget-flops", default=None, metavar="FLOPS",
              help="Total training FLOPs for the new runs (default: no limit but --n).")
@click.option("--max-run-flops", default=None, metavar="FLOPS",
              help="Largest budget of one new run (default: 4 × the largest in the store).")
@click.option("--quantity", type=click.Choice(["allocation", "loss"]), default="allocation",
              show_default=True,
              help="Pin down N_opt at the target (allocation) or the loss there.")
@click.option("--bootstrap", type=click.IntRange(10, 10_000), default=100, show_default=True,
              help="Bootstrap refits that measure the current uncertainty.")
@click.option("--per-flop", is_flag=True,
              help="Rank candidates by variance removed per FLOP (cheap runs first).")
@click.option("--fix", "fixed", multiple=True, metavar="NAME=VALUE",
              help="Hold a law parameter fixed in the fit (one the runs cannot identify, e.g. "
                   "E_start of ludziejewski2025 on a small sweep). Repeatable.")
@click.option("--append", "append_to", type=click.Path(dir_okay=False), default=None,
              help="Append the proposed runs to this spec as [[runs]] tables.")
@click.option("--json", "as_json", is_flag=True, help="Print the proposal as JSON.")
def suggest_cmd(store_path, law_name, target_compute, n_runs, budget_flops, max_run_flops,
                quantity, bootstrap, per_flop, fixed, append_to, as_json):
    """Propose the next runs that most shrink the uncertainty of the target optimum.

    Fits LAW to the store's runs with bootstrap refits, then chooses among the store's
    architectures at new budgets (up to --max-run-flops) the runs that remove the most
    variance of ln N_opt (or of the loss) at --target-compute, a linearised sequential
    design, within --budget-flops. Each proposed run is a distinct point of the law, none a
    copy of a run in the store (budgets compared at 12 significant digits), and none above
    --max-run-flops. When too few bootstrap refits converge, pin parameters with --fix.

    \b
    Examples:
      moescale sweep suggest --store sweep.db --law chinchilla --target-compute 1e21 --n 8
      moescale sweep suggest --store sweep.db --law chinchilla --target-compute 1e15 \\
        --budget-flops 3e12 --append sweep.toml && moescale sweep run sweep.toml --store sweep.db
    """
    from moescale.cli._options import parse_pairs
    from moescale.laws import get_law
    from moescale.sweeps.suggest import suggest_from_store
    from moescale.units import parse_number, parse_positive

    law = get_law(law_name)
    pinned = {}
    for k, v in parse_pairs(fixed, "--fix", "NAME=VALUE").items():
        if k not in law.params:
            raise MoescaleError(f"--fix {k}: law {law.name!r} has no parameter {k!r} (it has "
                                f"{', '.join(law.params)})")
        pinned[k] = law.check_param(k, parse_number(v, f"--fix {k}"), f"--fix {k}")
    target = parse_positive(target_compute, "--target-compute")
    with _open(store_path) as store:
        _report_problems(store)
    out = suggest_from_store(
        store_path, law, target, quantity=quantity, n_runs=n_runs,
        budget_flops=parse_positive(budget_flops, "--budget-flops") if budget_flops else None,
        max_run_flops=(parse_positive(max_run_flops, "--max-run-flops") if max_run_flops
                       else None),
        bootstrap=bootstrap, fixed=pinned, per_flop=per_flop, append_to=append_to)
    if as_json:
        echo_json(out.to_dict())
        return
    result, appended = out.result, out.appended
    what = "N_opt" if quantity == "allocation" else "loss"
    click.echo(f"{law.name}: {what} at {target:.3g} FLOPs = {result.value:.4g}; s.d. of "
               f"ln {what} {result.sd_now:.3f} now, {result.sd_after:.3f} after "
               f"{len(result.suggestions)} run(s) of {fmt_num(result.flops, 3)} FLOPs")
    print_table("suggested runs",
                ["id", "budget", "d", "L", "E", "N", "tokens", "epochs", "s.d. after"],
                [(s.run.id, fmt_num(s.run.budget, 3), s.run.architecture["hidden_size"],
                  s.run.architecture["n_layers"], n_experts,
                  s.variables.get("N", s.variables.get("N_active")), s.run.tokens,
                  "-" if e is None else f"{e:.2f}", f"{s.sd_after:.3f}")
                 for s, e, n_experts in zip(result.suggestions, out.epochs, out.experts,
                                            strict=True)])
    if appended:
        click.echo(f"appended {appended} [[runs]] to {append_to}")
    for warning in out.warnings:
        click.echo(f"warning: {warning}", err=True)


# ----- import -------------------------------------------------------------------------------------
@sweep.command("import")
@_store_option(False)
@click.argument("folders", nargs=-1, type=click.Path(file_okay=False))
@click.option("--mlflow", "mlflow_uri", default=None, metavar="URI",
              help="Import the finished runs of --experiment from this MLflow tracking server "
                   "or store (runs logged with `--tracker mlflow`) instead of FOLDERS.")
@click.option("--experiment", default=None, metavar="NAME", help="The experiment of --mlflow.")
@click.option("--sweep-name", default="imported", show_default=True,
              help="Sweep name recorded for the imported runs.")
def import_cmd(store_path, folders, mlflow_uri, experiment, sweep_name):
    """Add finished `moescale train` runs to a store as done runs: run folders, or the runs
    an MLflow experiment holds.

    \b
    Examples:
      moescale sweep import --store sweep.db runs/*
      moescale sweep import --store sweep.db runs/tiny-20261201-101500 --sweep-name pilot
      moescale sweep import --store sweep.db --mlflow http://127.0.0.1:5000 --experiment micro
    """
    from moescale.sweeps.export import spec_from_train_folder, specs_from_mlflow
    from moescale.sweeps.store import SweepStore

    if (mlflow_uri is None) != (experiment is None):
        raise MoescaleError("--mlflow URI and --experiment NAME go together")
    if bool(folders) == bool(mlflow_uri):
        raise MoescaleError("give run FOLDERS or --mlflow URI --experiment NAME (one of them)")
    if mlflow_uri:
        found = [item + (f"mlflow:{mlflow_uri}#{experiment}",)
                 for item in specs_from_mlflow(mlflow_uri, experiment, sweep_name)]
    else:
        found = [spec_from_train_folder(f, sweep_name) + (f,) for f in folders]  # all first
    store = SweepStore(store_path)
    added = sum(store.import_done(run, result, curve, folder if mlflow_uri
                                  else str(Path(folder).resolve()))
                for run, result, curve, folder in found)
    click.echo(f"imported {added} run(s) into {store.path} "
               f"({len(found) - added} already there)")
