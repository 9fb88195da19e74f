"""examples/experts-micro ships its runs: runs.csv holds the README's 21-row table, and the
README's "What sweep analyze finds" numbers reproduce from it through the library that
`moescale sweep analyze --x N_active --by E --bootstrap 1000` calls."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from moescale.runs import RunTable
from moescale.sweeps.analyze import analyze
from moescale.sweeps.experts import compare_experts, seed_noise

EXAMPLE = ROOT / "examples" / "experts-micro"
README = (EXAMPLE / "README.md").read_text()
FLAT = " ".join(README.split())  # the prose without its line breaks
KEY = ["budget", "d", "E", "seed"]
BOOTSTRAP, SEED = 1000, 0  # the README's "--bootstrap 1000" with the default --seed


def E_of(arm: str) -> float:
    """The number of experts of an arm of the E comparison (``dense`` is E = 1)."""
    return 1.0 if arm == "dense" else float(arm.split()[1])


def runs() -> pd.DataFrame:
    return pd.read_csv(EXAMPLE / "runs.csv")


def num(text: str) -> float:
    return float(text.replace(",", "").replace("−", "-").replace("×", "").strip())


def md_rows(first_cell: str) -> list[list[str]]:
    """Cells of the README table rows whose first cell matches ``first_cell`` (a regex)."""
    out = []
    for line in README.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if re.fullmatch(first_cell, cells[0]):
                out.append(cells)
    return out


def readme_runs() -> pd.DataFrame:
    rows = [dict(budget=num(c[0]), d=num(c[1]), E=1.0 if c[2] == "dense" else num(c[2]),
                 seed=int(c[3]), N=num(c[4]), N_active=num(c[5]), D=num(c[6]),
                 epochs=num(c[7]), loss=num(c[8]), wall_seconds=num(c[9]),
                 tokens_per_second=num(c[10]))
            for c in md_rows(r"\d\.\de\+\d\d")]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def comparison():
    """Point estimates only (no bootstrap: fast)."""
    return compare_experts(runs(), x="N_active", bootstrap=0)


@pytest.fixture(scope="module")
def bootstrapped():
    return compare_experts(runs(), x="N_active", bootstrap=BOOTSTRAP, seed=SEED)


def test_csv_is_the_readme_table():
    csv, table = runs(), readme_runs()
    assert len(csv) == len(table) == 21
    assert not csv.duplicated(KEY).any()
    merged = table.merge(csv, on=KEY, how="outer", suffixes=("_md", ""), indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"]
    for col in ("N", "N_active", "D", "epochs", "loss", "wall_seconds", "tokens_per_second"):
        assert np.array_equal(merged[f"{col}_md"].to_numpy(float), merged[col].to_numpy(float)), col
    # dense as the export writes it: E = 1, top_k = 0
    assert (csv.loc[csv.E == 1, "K"] == 0).all() and (csv.loc[csv.E > 1, "K"] == 1).all()
    # the file reads as a run table (what `moescale fit` / `report --runs` load)
    assert len(RunTable.from_file(EXAMPLE / "runs.csv")) == 21


def test_csv_matches_the_sweep_spec_in_store_order():
    """N, N_active and D are the spec's counts, and the rows are in the spec's (the store's,
    `sweep export`'s) order."""
    from moescale.sweeps.export import run_columns
    from moescale.sweeps.spec import SweepSpec

    spec = pd.DataFrame([run_columns(r.to_dict())
                         for r in SweepSpec.load(EXAMPLE / "sweep.toml").expand()])
    csv = runs()
    cols = [*KEY, "D", "N", "N_active", "K", "n_shared", "L", "lr", "batch_tokens"]
    assert np.array_equal(spec[cols].to_numpy(float), csv[cols].to_numpy(float))


def test_seed_noise_reproduces(comparison):
    sd = seed_noise(runs()).sd
    m = re.search(r"σ = ([\d.]+) nats \((\w+) configurations run twice, identical but for the "
                  r"seed: (\d) degrees", FLAT)
    assert m and f"{sd:.3f}" == m.group(1) and m.group(3) == "3"
    assert comparison.noise.sd == sd and comparison.noise.dof == 3
    # t(0.975; 3) = 3.182 (a t table)
    m = re.search(r"t\(0\.975; 3\)·√2·σ = 3\.18·√2·σ = (\d+\.\d+)", FLAT)
    assert f"{3.182 * math.sqrt(2) * sd:.3f}" == m.group(1)
    assert f"{comparison.noise.difference_bound():.3f}" == m.group(1)
    csv = runs()
    pair = csv[(csv.budget == 1.2e12) & (csv.d == 32)].groupby("E")["loss"]
    spread = pair.max() - pair.min()
    assert f"{spread[8.0]:.3f}" == re.search(r"8-expert pair differs by (\d+\.\d+)", FLAT)[1]
    assert f"{spread[4.0]:.3f}" == re.search(r"4-expert pair by (\d+\.\d+)", FLAT)[1]


def test_best_loss_table_reproduces(comparison):
    best = {(b.budget, E_of(b.arm)): b for b in comparison.best}
    dense = {b.budget: b.loss for b in comparison.best if b.arm == "dense"}
    rows = [c for c in md_rows(r"\d(\.\d)?e1[12]") if len(c) == 6]
    assert len(rows) == 6
    for budget, e, loss, source, vs_dense, noise in rows:
        b = best[(num(budget), 1.0 if e == "dense" else num(e))]
        assert f"{b.loss:.4f}" == loss
        assert source.startswith("parabola" if b.status == "parabola" else "best run")
        if b.status == "parabola":
            assert f"N_active {b.x_opt / 1e3:.1f}K" in source
        if e == "dense":
            assert vs_dense == noise == "–"
        else:
            delta = b.loss - dense[b.budget]
            assert vs_dense.startswith(f"{delta:.3f}".replace("-", "−") + " (")
    a, slope = comparison.dense_fit
    assert f"e^{a:.3f}·C^{slope:.3f}".replace("-", "−") in README
    # the dense isoFLOP optimum's interval (the per-budget analysis, residual bootstrap)
    ok = {b.group["E"]: b for b in analyze(runs(), x="N_active", by="E", bootstrap=BOOTSTRAP,
                                            seed=SEED).budgets if b.status == "ok"}
    lo, hi = ok[1.0].x_opt_ci
    assert f"N_active {ok[1.0].x_opt / 1e3:.1f}K ({lo / 1e3:.1f}K–{hi / 1e3:.1f}K)" in README


@pytest.mark.slow
def test_difference_intervals_and_verdicts_reproduce(bootstrapped):
    rows = {(num(c[0]), num(c[1])): c for c in md_rows(r"\d(\.\d)?e1[12]")
            if len(c) == 6 and c[1] != "dense"}
    for m in bootstrapped.multipliers:
        if m.budget is None:
            continue
        cell = rows[(m.budget, E_of(m.arm))]
        lo, hi = (f"{v:+.3f}".replace("-", "−") for v in m.delta_ci)
        assert f"({lo} – {hi})".replace("(+", "(") in cell[4], (cell, m.delta_ci)
        assert cell[5] == ("within" if m.within_noise else "beyond")


def multiplier_cells() -> dict[tuple, tuple[float, tuple[float, float]]]:
    out = {}
    for cells in md_rows(r"4e11|1\.2e12|geometric mean"):
        if len(cells) != 3:
            continue
        budget = None if cells[0] == "geometric mean" else num(cells[0])
        for E, cell in ((4.0, cells[1]), (8.0, cells[2])):
            m = re.match(r"([\d.]+)× \(([\d.]+)–([\d.]+)×, ±[\d.]+\)", cell)
            out[(E, budget)] = (float(m.group(1)), (float(m.group(2)), float(m.group(3))))
    return out


def test_multiplier_points_reproduce(comparison):
    cells = multiplier_cells()
    assert len(cells) == 6 and len(comparison.multipliers) == 6
    for m in comparison.multipliers:
        point, _ = cells[(E_of(m.arm), m.budget)]
        assert math.isclose(round(m.multiplier, 2), point), (E_of(m.arm), m.budget, m.multiplier)


@pytest.mark.slow
def test_multiplier_intervals_reproduce(bootstrapped):
    """With the README's seed and replicate count, in any row order."""
    assert bootstrapped.bootstrap_ok == BOOTSTRAP
    assert f"{BOOTSTRAP} of {BOOTSTRAP} case-bootstrap replicates succeeded" in README
    cells = multiplier_cells()
    for m in bootstrapped.multipliers:
        _, (lo, hi) = cells[(E_of(m.arm), m.budget)]
        assert (round(m.ci[0], 2), round(m.ci[1], 2)) == (lo, hi), (E_of(m.arm), m.budget, m.ci)
    for cells_text in md_rows(r"4e11|1\.2e12|geometric mean"):
        if len(cells_text) == 3:
            for text in cells_text[1:]:
                assert re.search(r"±(\d\.\d+)\)", text)
    readme_mc = {(E, b): float(re.search(r"±([\d.]+)\)", c).group(1))
                 for (E, b), c in _cells_text().items()}
    for m in bootstrapped.multipliers:
        assert f"{m.ci_mc_error:.2g}" == f"{readme_mc[(E_of(m.arm), m.budget)]:.2g}"
    reordered = compare_experts(runs().iloc[::-1], x="N_active", bootstrap=BOOTSTRAP, seed=SEED)
    assert [m.ci for m in reordered.multipliers] == [m.ci for m in bootstrapped.multipliers]


def _cells_text() -> dict[tuple, str]:
    out = {}
    for cells in md_rows(r"4e11|1\.2e12|geometric mean"):
        if len(cells) == 3:
            budget = None if cells[0] == "geometric mean" else num(cells[0])
            out[(4.0, budget)], out[(8.0, budget)] = cells[1], cells[2]
    return out


def test_sweep_analyze_reads_the_csv(capsys):
    """The README's command: `sweep analyze --runs runs.csv` reads the file in place of a store."""
    import json

    from conftest import run_cli

    code, out, err = run_cli(["sweep", "analyze", "--runs", str(EXAMPLE / "runs.csv"),
                              "--x", "N_active", "--by", "E", "--bootstrap", "0", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["seed_noise"]["sd"] == pytest.approx(0.019, abs=5e-4)  # README: σ = 0.019
    assert data["seed_noise"]["dof"] == 3
    code, _, err = run_cli(["sweep", "analyze", "--runs", "missing.csv"], capsys)
    assert code == 2 and err.startswith("Error:") and "missing.csv" in err
