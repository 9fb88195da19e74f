"""Compute reuse across budgets: one constant-learning-rate trunk per model, a cooldown per
budget (Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training
Durations", arXiv:2405.18392; the WSD schedule of Hu et al. 2024, arXiv:2404.06395).

Under ``[train] reuse = "trunk"`` the runs of a sweep that differ only in their token count
(one architecture at several budgets, same seed and settings) share a **trunk**: one run that
trains at the peak learning rate and keeps a checkpoint at each **branch point**. The run for
``T`` optimizer steps is a **branch**: it starts from the trunk's checkpoint at step
``s = T − max(round(f·T), 1)`` (the first step of its WSD decay, ``f`` the
``decay_fraction``) and decays to its own end. Every run of the group warms up for the same
number of steps, ``warmup_fraction`` of the *shortest* run (so no branch spends more of its
steps warming up than an independent run would; Hägele et al. also warm up for a fixed number
of steps at every length), and a branch follows exactly the schedule of an independent WSD run
with that warm-up, and reaches the same weights.

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


def _group_key(run: RunSpec) -> str:
    """What the runs of one trunk share: everything but the token count and the budget."""
    train = {k: v for k, v in run.train.items() if k != "tokens"}
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
    shortest = min(m.steps for m in members)
    fraction = float(longest.train.get("decay_fraction", 0.2))
    warmup = longest.train.get("warmup_steps")  # given in [train], else from the shortest run
    if warmup is None:
        warmup = int(float(longest.train.get("warmup_fraction", 0.05)) * shortest)
    batch = int(longest.train["batch_tokens"])
    if not 0 < fraction < 1:
        raise MoescaleError(f"[train] reuse = \"trunk\" needs a decay_fraction in (0, 1): a "
                            f"cooldown of {fraction:g} of the run leaves no trunk to share")
    steps = sorted({branch_step(m.steps, fraction) for m in members})
    if steps[0] < 1 or warmup >= steps[0]:
        short = min(members, key=lambda m: m.steps)
        raise MoescaleError(f"[train] reuse = \"trunk\": run {short.id} (budget {short.budget:g}, "
                            f"{short.steps} steps) would branch at step {steps[0]}, "
                            f"{'before its first step' if steps[0] < 1 else 'inside its warm-up'}"
                            f" ({warmup} steps); raise the smallest budget or lower "
                            "decay_fraction / warmup")
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
