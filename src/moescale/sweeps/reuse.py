"""Compute reuse across budgets: one constant-learning-rate trunk per model, a cooldown per
budget (Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training
Durations", arXiv:2405.18392; the WSD schedule of Hu et al. 2024, arXiv:2404.06395).

Under ``[train] reuse = "trunk"`` the runs of a sweep that differ only in their token count
(one architecture at several budgets, same seed and settings) share a **trunk**: one run that
trains at the peak learning rate and keeps a checkpoint at each **branch point**. The run for
``T`` optimizer steps is a **branch**: it starts from the trunk's checkpoint at step
``s = T − max(round(f·T), 1)`` (the first step of its WSD decay, ``f`` the
``decay_fraction``) and decays to its own end. Every run of the group warms up for the same
number of steps (Hägele et al. also warm up for a fixed number of steps at every length):
``warmup_steps`` when ``[train]`` gives it, else ``warmup_fraction`` of the model's
compute-optimal run, 20 tokens per parameter (Hoffmann et al. 2022) with ``N = C/(6·D)`` from
its FLOPs per token (:func:`group_warmup`). A branch follows exactly the schedule of an
independent WSD run with that warm-up, and reaches the same weights.

**Growing a sweep.** Nothing about a run depends on which other budgets share its trunk: the
warm-up comes from the model alone, a branch's id is its run's id with the warm-up hashed in,
and a trunk's id is its group's. A larger budget added later extends the trunk from its last
checkpoint (the store reopens it, :meth:`SweepStore.extend_trunks`); a branch whose point the
trunk never kept (a smaller budget added later, or a kept point that is damaged or was pruned)
starts from the trunk's latest readable checkpoint before its point, or from step 0, and trains
the constant-rate stretch itself (:func:`branch_start`): the same weights, only its own
compute spent again.

FLOPs. With step counts ``T_1 < … < T_n`` of one model, the trunk costs ``s_n`` steps and the
branches ``Σ (T_i − s_i) ≈ f·Σ T_i`` steps, so against independent runs (``Σ T_i`` steps)

    ratio = ((1 − f)·T_n + f·Σ T_i) / Σ T_i.

At three budgets spaced 3× (``T, 3T, 9T``) and ``f = 0.2``: ``(7.2 + 2.6)/13 = 0.754``; at
five budgets spaced 2×: ``(12.8 + 6.2)/31 = 0.613``. Each branch is still counted as the
papers count a run, at its full ``T_i`` steps (trunk share + cooldown), so exports and fits
see the same columns as for independent runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from moescale.errors import MoescaleError
from moescale.jsonio import content_hash
from moescale.training.config import KEPT_CHECKPOINT

if TYPE_CHECKING:
    from moescale.sweeps.spec import RunSpec


def branch_step(total_steps: int, decay_fraction: float) -> int:
    """The first step of a WSD run's decay: ``T − max(round(f·T), 1)``, as
    :func:`moescale.training.schedules.lr_at` places it."""
    return total_steps - max(int(round(decay_fraction * total_steps)), 1)


def branch_file(trunk_dir: str | Path, step: int) -> Path:
    """Where a trunk keeps its checkpoint at ``step`` for the branches that start there."""
    return Path(trunk_dir) / KEPT_CHECKPOINT.format(step=step)


TOKENS_PER_PARAMETER = 20  # a compute-optimal run (Hoffmann et al. 2022): the warm-up's yardstick


def group_warmup(run: RunSpec) -> int:
    """Warm-up steps shared by every run of ``run``'s trunk: ``[train] warmup_steps`` when set,
    else ``warmup_fraction`` of a 20-tokens-per-parameter run of the model (``N = C/(6·D)``),
    so that it depends on the model alone, not on the budgets that share the trunk."""
    given = run.train.get("warmup_steps")
    if given is not None:
        return int(given)
    params = run.flops_per_token / 6
    steps = TOKENS_PER_PARAMETER * params / int(run.train["batch_tokens"])
    return int(round(float(run.train.get("warmup_fraction", 0.05)) * steps))


def trunk_points(trunk_dir: str | Path) -> list[tuple[int, Path]]:
    """The points a trunk kept for its branches, as ``(step, path)`` from the latest."""
    points = []
    for path in (Path(trunk_dir) / Path(KEPT_CHECKPOINT).parent).glob("step-*.pt"):
        digits = path.stem.removeprefix("step-")
        if digits.isdigit():
            points.append((int(digits), path))
    return sorted(points, reverse=True)


def branch_start(trunk_dir: str | Path, step: int) -> tuple[Path | None, list[str]]:
    """Where a branch that decays from ``step`` starts: the trunk's kept point at ``step``, else
    its latest readable checkpoint before it (its own ``checkpoint.pt`` included), else step 0
    (``None``). Returns the path and notes on what was skipped and why. A point that cannot be
    read is moved aside (``.corrupt-TIMESTAMP``) so that no later branch tries it again."""
    import os
    import time

    from moescale.training.checkpoint import CHECKPOINT_NAME, load_checkpoint

    trunk_dir, notes = Path(trunk_dir), []
    candidates = [(s, p) for s, p in trunk_points(trunk_dir) if s <= step]
    last = trunk_dir / CHECKPOINT_NAME
    for at, path in candidates + [(None, last)]:
        if not path.is_file():
            continue
        try:
            state = load_checkpoint(path)
        except MoescaleError as exc:
            if at is not None:  # a kept point: set aside; checkpoint.pt is the trunk's own
                aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
                os.replace(path, aside)
                notes.append(f"trunk point at step {at} unreadable ({str(exc).split(';')[0]}); "
                             f"moved to {aside.name}")
            continue
        at = int(state.get("step", -1)) if at is None else at
        if 0 < at <= step:
            if at < step:
                notes.append(f"started from the trunk's step {at} (no readable point at "
                             f"{step}) and trained the constant-rate steps {at}–{step} itself")
            return path, notes
    notes.append(f"the trunk holds no readable checkpoint at or before step {step}: started "
                 "from step 0 (the same schedule as the trunk's)")
    return None, notes


# [train] settings that say where a run is watched, not what it computes: no part of a run's
# id nor of its trunk's (adding a tracker to a finished sweep reruns nothing)
NOT_IDENTITY = ("trackers",)


def _group_key(run: RunSpec) -> str:
    """What the runs of one trunk share: everything but the token count and the budget."""
    train = {k: v for k, v in run.train.items() if k != "tokens" and k not in NOT_IDENTITY}
    return content_hash({"architecture": run.architecture, "train": train, "seed": run.seed,
                    "convention": run.convention})


def with_trunks(runs: Iterable[RunSpec]) -> list[RunSpec]:
    """``runs`` with each group of runs that differ only in their token count (two or more
    distinct step counts) replaced by a trunk and one branch per run; other runs unchanged.
    Trunks come before their branches. A branch's id is its run's id with the group's warm-up
    and ``reuse`` hashed in: branches and independent runs never mix in a store."""
    runs = list(runs)
    groups: dict[str, list[RunSpec]] = {}
    for run in runs:
        groups.setdefault(_group_key(run), []).append(run)
    out: list[RunSpec] = []
    done: set[str] = set()
    for run in runs:
        key = _group_key(run)
        if key in done:
            continue
        done.add(key)
        members = groups[key]
        if len({m.steps for m in members}) < 2:
            out.extend(members)
            continue
        out.extend(_trunk_and_branches(key, members))
    return out


def _trunk_and_branches(key: str, members: list[RunSpec]) -> list[RunSpec]:
    longest = max(members, key=lambda m: m.steps)
    fraction = float(longest.train.get("decay_fraction", 0.2))
    warmup = group_warmup(longest)
    batch = int(longest.train["batch_tokens"])
    if not 0 < fraction < 1:
        raise MoescaleError(f"[train] reuse = \"trunk\" needs a decay_fraction in (0, 1): a "
                            f"cooldown of {fraction:g} of the run leaves no trunk to share")
    steps = sorted({branch_step(m.steps, fraction) for m in members})
    if steps[0] < 1 or warmup >= steps[0]:
        short = min(members, key=lambda m: m.steps)
        raise MoescaleError(f"[train] reuse = \"trunk\": run {short.id} (budget {short.budget:g}, "
                            f"{short.steps} steps) would branch at step {steps[0]}, "
                            f"{'before its first step' if steps[0] < 1 else 'inside the warm-up'}"
                            f" ({warmup} steps, shared by the runs of one trunk); raise the "
                            "smallest budget, or lower decay_fraction or [train] warmup_steps")
    trunk_train = {**longest.train, "warmup_steps": warmup, "stop_after_steps": steps[-1],
                   "keep_steps": steps}
    trunk_flops = steps[-1] * batch * longest.flops_per_token
    trunk = dataclasses.replace(
        longest, id="trunk-" + key, budget=trunk_flops, train=trunk_train, role="trunk",
        trunk=None, branch_step=None,
        tags={**longest.tags, "trunk_of": sorted(m.id for m in members)})
    branches = []
    for m in sorted(members, key=lambda m: m.steps):
        train = {**m.train, "warmup_steps": warmup}
        branches.append(dataclasses.replace(
            m, id=content_hash({"run": m.id, "warmup_steps": warmup, "reuse": "trunk"}),
            train=train, role="branch", trunk=trunk.id,
            branch_step=branch_step(m.steps, fraction)))
    return [trunk, *branches]
