"""A synthetic sweep store: real run specs (expanded by the sweep library, counted exactly)
with losses and learning curves drawn from a Chinchilla-form law plus noise — for the report
tests and benchmark, without training anything. A test fixture, not part of the package:
tests import it as ``from synthetic_sweep import synthetic_store`` (the tests folder is on
``sys.path`` under pytest); ``benchmarks/bench_report.py`` adds that folder itself.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "demo.db"
>>> synthetic_store(path, budgets=(1e9, 3e9), hidden_sizes=(16, 24, 32), points=5)
6
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

# L(N, D) = E + A/N^α + B/D^β with small-model constants (bytes vocabulary, nats/token).
LAW = {"E": 1.5, "A": 40.0, "alpha": 0.35, "B": 40.0, "beta": 0.35}


def spec_dict(budgets: Sequence[float], hidden_sizes: Sequence[int], seeds: Sequence[int] = (0,),
              n_experts: Sequence[int] = (4,), name: str = "synthetic",
              batch_tokens: int = 256) -> dict:
    """A sweep spec (the TOML's dict) over budgets × hidden sizes × experts × seeds."""
    grid = {"hidden_size": list(hidden_sizes)}
    if len(n_experts) > 1:
        grid["n_experts"] = list(n_experts)
    return {"name": name, "budgets": list(budgets), "seeds": list(seeds),
            "base": {"n_layers": 2, "n_heads": 2, "vocab_size": 256, "seq_len": 64,
                     "n_experts": int(n_experts[0]), "top_k": 1, "expert_ffn": 32,
                     "dense_ffn": 64},
            "grid": grid, "train": {"batch_tokens": batch_tokens, "lr": 3e-3}}


def synthetic_store(path: str | Path, budgets: Sequence[float] = (3e9, 1e10, 3e10, 1e11),
                    hidden_sizes: Sequence[int] = (16, 24, 32, 48, 64, 96),
                    seeds: Sequence[int] = (0,), n_experts: Sequence[int] = (4,),
                    points: int = 40, failed: int = 0, seed: int = 0, tags: dict | None = None,
                    noise: float = 0.01, batch_tokens: int = 256) -> int:
    """Write a store of finished runs at ``path``; returns how many runs it holds.

    ``points`` curve points per run; the last ``failed`` runs are recorded as failed;
    ``tags`` are added to every run (e.g. to test how the page shows them).
    """
    import dataclasses

    from moescale.sweeps.spec import SweepSpec
    from moescale.sweeps.store import SweepStore

    spec = SweepSpec.from_dict(spec_dict(budgets, hidden_sizes, seeds, n_experts,
                                         batch_tokens=batch_tokens))
    runs = spec.expand()
    if tags:
        runs = [dataclasses.replace(r, tags={**r.tags, **tags}) for r in runs]
    rng = np.random.default_rng(seed)
    with SweepStore(path, durable=False) as store:  # a throwaway file: speed over durability
        for i, run in enumerate(runs):
            if i >= len(runs) - failed:
                store.add_runs([run])
                claim = store.claim({run.id})
                store.fail(run.id, claim.token, "synthetic failure: loss became nan at step 3")
                continue
            n = _params(run)
            tokens = float(run.tokens)
            steps = max(run.steps, 1)
            at = np.unique(np.rint(np.geomspace(1, steps, min(points, steps))).astype(int))
            t = at * float(run.train["batch_tokens"])
            curve_loss = _loss(n, t) * (1 + noise * rng.standard_normal(at.size) * 0.5)
            final = float(_loss(n, tokens) * (1 + noise * rng.standard_normal()))
            curve_loss[-1] = final
            curve = [{"step": int(s), "tokens": int(tk), "flops": float(tk * run.flops_per_token),
                      "train_loss": float(v * 1.01), "eval_loss": float(v)}
                     for s, tk, v in zip(at, t, curve_loss, strict=True)]
            result = {"eval_loss": final, "best_eval_loss": float(curve_loss.min()),
                      "train_loss": final * 1.01, "initial_eval_loss": float(np.log(256)),
                      "tokens": tokens, "unique_tokens": 4e6, "repeated_tokens": 0.0,
                      "seconds": tokens / 2e5, "tokens_per_second": 2e5, "mfu": 0.1}
            store.import_done(run, result, curve, run_dir=f"runs/{run.id}")
        return len(runs)


def _params(run) -> float:
    from moescale.accounting.counting import count

    return float(count(run.arch(), "exact").total_params)


def _loss(n: float, tokens) -> np.ndarray:
    p = LAW
    return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / np.asarray(tokens, float) ** p["beta"]
