"""Holistic planning with the user's own fits replacing the paper's target laws."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from moescale.laws import holistic2026 as h26

# papers.md §1 Step 1 table: C → D_opt (B tokens); derived optimal M/N_a and used N/N_a.
TABLE_C = [1e18, 3e18, 1e19, 3e19, 1e20, 3e20]
TABLE_D = [3.7420e9, 6.1775e9, 10.7004e9, 17.6649e9, 30.5985e9, 50.5138e9]


def _fit(tmp_path, capsys, name, frame, law, *extra):
    csv, out = tmp_path / f"{name}.csv", tmp_path / f"{name}.json"
    frame.to_csv(csv, index=False)
    code, _, err = run_cli(["fit", str(csv), "--law", law, "-o", str(out), *extra], capsys)
    assert code == 0, err
    return out


def test_holistic_plan_from_fits_of_the_papers_own_numbers(tmp_path, capsys):
    tokens = _fit(tmp_path, capsys, "tokens", pd.DataFrame({"C": TABLE_C, "D": TABLE_D}),
                  "holistic2026")
    m_ratio = _fit(tmp_path, capsys, "m", pd.DataFrame({"C": TABLE_C, "y": h26.M_OVER_NA}),
                   "power_law_C")
    n_ratio = _fit(tmp_path, capsys, "n", pd.DataFrame({"C": TABLE_C, "y": h26.N_OVER_NA}),
                   "power_law_C")
    code, out, err = run_cli(["plan", "--compute", "1e20", "--fit", str(tokens), "--m-ratio-fit",
                              str(m_ratio), "--n-ratio-fit", str(n_ratio), "--json"], capsys)
    assert code == 0, err
    fitted = json.loads(out)
    assert fitted["method"] == "holistic" and any("fits" in a for a in fitted["assumptions"])
    code, out, _ = run_cli(["plan", "--compute", "1e20", "--json"], capsys)
    preset = json.loads(out)
    a, b = fitted["allocation"], preset["allocation"]
    # the fits reproduce the paper's table and derived ratios, so the plans agree
    assert a["tokens_target"] == pytest.approx(b["tokens_target"], rel=0.01)
    assert a["M_over_Na_target"] == pytest.approx(b["M_over_Na_target"], rel=0.02)
    assert a["N_over_Na_target"] == pytest.approx(b["N_over_Na_target"], rel=0.02)
    realised = a["flops_per_token"] / a["flops_per_token_target"]
    assert abs(realised - 1) < 0.05


def test_plan_fit_errors(tmp_path, capsys):
    m_ratio = _fit(tmp_path, capsys, "m", pd.DataFrame({"C": TABLE_C, "y": h26.M_OVER_NA}),
                   "power_law_C")
    code, _, err = run_cli(["plan", "--compute", "1e20", "--method", "holistic", "--fit",
                            str(m_ratio)], capsys)
    assert code == 2 and "needs a fit of 'holistic2026'" in err
    code, _, err = run_cli(["plan", "--compute", "1e20", "--law", "chinchilla",
                            "--m-ratio-fit", str(m_ratio)], capsys)
    assert code == 2 and "--method holistic" in err
    # a ratio fit that falls below 6 is not a realisable MoE: one clear line, no plan
    low = _fit(tmp_path, capsys, "low", pd.DataFrame({"C": TABLE_C, "y": np.full(6, 4.0)}),
               "power_law_C")
    code, _, err = run_cli(["plan", "--compute", "1e20", "--m-ratio-fit", str(low)], capsys)
    assert code == 2 and "outside what any MoE can realise" in err
