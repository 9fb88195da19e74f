"""Sensitivity of the fitted optimum: `moescale fit --sensitivity`, the library's
study and its figures in the report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli as run
from moescale.errors import MoescaleError
from moescale.fitting.selection import optimum
from moescale.fitting.sensitivity import (
    coarse_grid,
    linear_residual_law,
    sensitivity,
    shifted_grid,
)
from moescale.laws import get_law
from moescale.runs import RunTable

TRUTH = get_law("chinchilla").presets["hoffmann2022"].values


def chinchilla_runs(n: int = 60, noise: float = 0.003, seed: int = 0) -> RunTable:
    rng = np.random.default_rng(seed)
    N = rng.choice(np.geomspace(2e7, 2e9, 6), n)
    D = rng.choice(np.geomspace(2e9, 1e11, 5), n)
    y = get_law("chinchilla").predict(TRUTH, {"N": N, "D": D}) * np.exp(rng.normal(0, noise, n))
    return RunTable.from_frame(pd.DataFrame({"N": N, "D": D, "loss": y}))


@pytest.fixture(scope="module")
def study():
    return sensitivity(chinchilla_runs(), "chinchilla", 1e21, grid=coarse_grid("chinchilla"),
                       fit_options={"polish_top": 1})


def test_every_choice_is_a_variant_and_moves_little_on_clean_runs(study):
    groups = {v.group for v in study.variants}
    assert groups == {"objective", "start grid", "data"}
    names = [v.name for v in study.variants]
    assert "least squares (δ = ∞)" in names and "linear residuals" in names
    assert "drop smallest N" in names and "drop largest N" in names
    assert all(v.error is None for v in study.variants)
    truth = optimum("chinchilla", TRUTH, 1e21)
    assert study.baseline.optimum["N_opt"] == pytest.approx(truth["N_opt"], rel=0.3)
    for v in study.variants:                      # 0.3 % noise: the optimum moves by < 30 %
        assert 0.7 < v.ratios["N_opt"] < 1.3 and 0.7 < v.ratios["D_opt"] < 1.3
        assert v.ratios["N_opt"] * v.ratios["D_opt"] == pytest.approx(1.0, rel=1e-9)  # 6ND = C
    s = study.summary["N_opt"]
    assert s["min_ratio"] <= 1 <= s["max_ratio"] and s["spread"] >= 1
    d = study.to_dict()
    assert json.loads(json.dumps(d, default=str))["law"] == "chinchilla"


def test_linear_residual_law_recovers_noise_free_parameters():
    from moescale import fitting

    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(2e7, 2e9, 6), np.geomspace(2e9, 1e11, 5)))
    frame = pd.DataFrame({"N": N, "D": D})
    frame["loss"] = np.exp(get_law("chinchilla").predict(TRUTH, {"N": N, "D": D}))
    res = fitting.fit(linear_residual_law("chinchilla"), RunTable.from_frame(frame),
                   grid=coarse_grid("chinchilla"), polish_top=1)
    assert res.params["alpha"] == pytest.approx(TRUTH["alpha"], rel=1e-3)


def test_grids():
    assert coarse_grid("chinchilla")["alpha"] == (0, 2)
    assert shifted_grid("chinchilla")["alpha"] == (0.25, 0.75, 1.25, 1.75)


def test_cli_table_json_and_report(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    chinchilla_runs(n=40).frame.to_csv(path, index=False)
    argv = ["fit", str(path), "--law", "wang2024", "--sensitivity", "--target-compute", "1e21"]
    code, _, err = run(argv, capsys)
    assert code == 2 and "E" in err and err.count("\n") == 1       # wang2024 needs E
    argv = ["fit", str(path), "--law", "chinchilla", "--sensitivity", "--target-compute", "1e21",
            "--grid", "alpha=0,2", "--grid", "beta=0,2", "--grid", "A=5,25", "--grid", "B=5,25",
            "--grid", "E=-1,1"]
    code, stdout, err = run([*argv, "--json"], capsys)
    assert code == 0, err
    res = json.loads(stdout)
    assert res["baseline"]["optimum"]["N_opt"] > 0 and len(res["variants"]) >= 7
    sens = tmp_path / "sens.json"
    sens.write_text(stdout)
    code, stdout, err = run(argv, capsys)
    assert code == 0 and "baseline" in stdout and "N_opt: ×" in stdout
    code, stdout, err = run(["report", "--sensitivity", str(sens), "-o", str(tmp_path / "rep"),
                             "--format", "png", "--json"], capsys)
    assert code == 0, err
    names = [f["name"] for f in json.loads(stdout)["figures"]]
    assert names == ["sensitivity"] and (tmp_path / "rep" / "figures" / "sensitivity.png").is_file()


def test_figures_return_matplotlib_figures(study):
    from matplotlib.figure import Figure

    from moescale.fitting.selection import select_laws
    from moescale.reporting.selection import leaderboard_figure, sensitivity_figure

    assert isinstance(sensitivity_figure(study), Figure)
    assert isinstance(sensitivity_figure(study.to_dict()), Figure)
    runs = chinchilla_runs(n=40)
    sel = select_laws(runs, ["chinchilla", "clark2022"], grids={"chinchilla": coarse_grid("chinchilla")},
                      fit_options={"polish_top": 1})
    assert [s.status for s in sel.not_ranked] == ["not applicable"]
    assert isinstance(leaderboard_figure(sel), Figure)
    assert isinstance(leaderboard_figure(sel.to_dict()), Figure)


@pytest.mark.parametrize("argv, message", [
    (["--law", "chinchilla", "--sensitivity"], "--target-compute"),
    (["--law", "all", "--sensitivity", "--target-compute", "1e21"], "one law"),
    (["--law", "chinchilla", "--sensitivity", "--target-compute", "-3"], "--target-compute"),
    (["--law", "chinchilla", "--sensitivity", "--target-compute", "1e21", "-o", "x.json"], "-o"),
])
def test_cli_errors(argv, message, tmp_path, capsys):
    path = tmp_path / "runs.csv"
    chinchilla_runs(n=20).frame.to_csv(path, index=False)
    code, _, err = run(["fit", str(path), *argv], capsys)
    assert code == 2 and message in err and err.count("\n") == 1


def test_library_errors():
    runs = chinchilla_runs(n=20)
    with pytest.raises(MoescaleError, match="no compute-optimal point"):
        sensitivity(runs, "clark2022", 1e21)
    with pytest.raises(MoescaleError, match="positive"):
        sensitivity(runs, "chinchilla", float("nan"))
    with pytest.raises(MoescaleError, match="drop"):
        sensitivity(runs, "chinchilla", 1e21, drop=("middle",))


def test_report_rejects_a_file_that_is_not_a_study(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text("{\"a\": 1}")
    code, _, err = run(["report", "--sensitivity", str(bad), "-o", str(tmp_path / "r")], capsys)
    assert code == 2 and "not a moescale sensitivity study" in err
    code, _, err = run(["report", "--selection", str(bad), "-o", str(tmp_path / "r")], capsys)
    assert code == 2 and "not a moescale leaderboard" in err
