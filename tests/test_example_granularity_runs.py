"""examples/granularity-micro ships its runs: runs.csv holds the README's 28-row table and the
README's answer (fine against coarse, shared against coarse, MoE against dense) recomputes
from it through the library `moescale sweep analyze --by G` calls."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from conftest import ROOT
from moescale.sweeps.experts import compare_arms
from moescale.sweeps.export import run_columns
from moescale.sweeps.spec import SweepSpec

EXAMPLE = ROOT / "examples" / "granularity-micro"
README = (EXAMPLE / "README.md").read_text()
FLAT = " ".join(README.split())


def runs() -> pd.DataFrame:
    return pd.read_csv(EXAMPLE / "runs.csv")


def num(text: str) -> float:
    return float(text.replace(",", "").replace("−", "-").replace("+", "").strip())


def test_csv_is_the_readme_table_and_the_spec():
    csv = runs()
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in README.splitlines() if re.match(r"\| \d\.\de\+1[12] \|", line)]
    assert len(csv) == len(rows) == 28
    table = {(num(r[0]), num(r[1]), r[2], int(r[3])): num(r[8]) for r in rows}
    for r in csv.itertuples():
        assert table[(r.budget, r.d, r.arm, r.seed)] == pytest.approx(r.loss, abs=5e-5)
    spec = pd.DataFrame([run_columns(r.to_dict())
                         for r in SweepSpec.load(EXAMPLE / "sweep.toml").expand()])
    key = ["budget", "d", "arm", "seed"]
    merged = spec.merge(csv, on=key, suffixes=("", "_csv"))
    assert len(merged) == 28
    for col in ("N", "N_active", "D", "E", "K", "G", "S"):
        assert (merged[col] == merged[f"{col}_csv"]).all(), col


@pytest.fixture(scope="module")
def against_g1():
    return compare_arms(runs(), "G", "G 1", bootstrap=1000, seed=0)


@pytest.mark.slow
def test_fine_and_shared_against_coarse_reproduce(against_g1):
    assert "σ = 0.011 nats" in FLAT and "t(0.975; 4)·√2·σ = 0.043" in FLAT
    assert f"{against_g1.noise.sd:.3f}" == "0.011" and against_g1.noise.dof == 4
    assert f"{against_g1.noise.difference_bound():.3f}" == "0.043"
    best = {(b.budget, b.arm): b for b in against_g1.best}
    found = 0
    for line in README.splitlines():
        m = re.match(r"\| (4e11|1\.2e12) \| (G 2[^|]*) \| ([\d.]+) \| [^|]* \| ([+−\-]\d\.\d+) "
                     r"\(([+−\-]\d\.\d+) – ([+−\-]\d\.\d+)\) \|", line)
        if not m:
            continue
        budget, arm = num(m.group(1)), m.group(2).strip()
        assert f"{best[(budget, arm)].loss:.4f}" == m.group(3)
        mult = next(x for x in against_g1.multipliers if x.arm == arm and x.budget == budget)
        assert f"{mult.delta_loss:+.3f}" == m.group(4).replace("−", "-")
        assert [f"{v:+.3f}" for v in mult.delta_ci] == \
            [m.group(5).replace("−", "-"), m.group(6).replace("−", "-")]
        found += 1
    assert found == 4
    fine = next(x for x in against_g1.multipliers if x.arm == "G 2, K 2, S 0" and x.budget == 1.2e12)
    assert fine.delta_ci[0] < 0 < fine.delta_ci[1]  # the README's answer: no detectable gain
