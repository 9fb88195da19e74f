"""moescale report: every figure from real data and from a synthetic sweep store,
valid images, a page that references each of them, escaping, and the command line."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import reference_file, run_cli

pytest.importorskip("matplotlib")

from moescale import reporting  # noqa: E402
from moescale.reporting import build  # noqa: E402
from synthetic_sweep import synthetic_store  # noqa: E402

SWEEP_FIGURES = {"isoflop", "frontier", "optima", "learning_curves", "experts",
                 "compute_multiplier"}
FIT_FIGURES = {"fit_parity", "fit_residuals", "fit_params"}
PLAN_FIGURES = {"landscape", "d_sweep", "band_width", "experts_memory", "flop_savings",
                "architecture"}


def shared(relative: str) -> Path:
    """A reference-data file (missing: skipped locally, a failure under CI)."""
    return reference_file(relative)


def check_png(path: Path) -> tuple[int, int]:
    from PIL import Image

    assert path.is_file() and path.stat().st_size > 2000, path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        arr = np.asarray(im.convert("L"), dtype=float)
        size = im.size
    assert arr.std() > 5, f"{path} looks blank"
    return size


def check_svg(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 2000, path
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")


def check_report(report, expected: set[str]) -> str:
    """Every expected figure drawn as valid PNG and SVG, each referenced by the page."""
    drawn = {d.name for d in report.figures}
    assert expected <= drawn, f"missing {expected - drawn}; skipped: {report.skipped}"
    html = report.page.read_text(encoding="utf-8")
    for d in report.figures:
        png, svg = (next(f for f in d.files if f.suffix == s) for s in (".png", ".svg"))
        w, h = check_png(png)
        assert w >= 400 and h >= 150
        check_svg(svg)
        assert f'src="figures/{png.name}"' in html
        assert f'href="figures/{svg.name}"' in html
    assert "<script" not in html.lower()
    assert "http://" not in html and "https://" not in html  # nothing from the network
    return html


# ----- synthetic sweep store -------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store") / "sweep.db"
    n = synthetic_store(path, n_experts=(1, 4, 16), failed=1, points=30)
    assert n == 72
    return path


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> Path:
    from moescale.jsonio import jsonable
    from moescale.planning import Budget, plan_holistic

    path = tmp_path_factory.mktemp("plan") / "plan.json"
    path.write_text(json.dumps(jsonable(plan_holistic(Budget(compute=1e20)).to_dict())))
    return path


@pytest.mark.slow
def test_every_figure_from_a_synthetic_store_fit_and_plan(store, plan_file, tmp_path):
    from moescale import fitting
    from moescale.sweeps.export import run_table
    from moescale.sweeps.store import SweepStore

    with SweepStore(store, create=False) as s:
        table = run_table(s, law="chinchilla")
    fit = fitting.fit("chinchilla", table, holdout="largest-C:1", bootstrap=30)
    fit_path = tmp_path / "fit.json"
    fit.save(fit_path)
    inp = build.load_store(store)
    build.add_fit(inp, fit_path)
    build.load_plan(plan_file, inp)
    report = build.build_report(inp, tmp_path / "report")
    html = check_report(report, SWEEP_FIGURES | FIT_FIGURES | PLAN_FIGURES)
    # every figure these inputs support is drawn; only those of other inputs are left out
    assert {name for name, _ in report.skipped} <= {"leaderboard", "sensitivity", "adaptive"}
    # the summary: the runs, the failed one, the headline optimum, the fit and the plan
    assert "72 runs" in html and "1 failed" in html and "synthetic failure" in html
    # dense and experts are not pooled: one optimum of active size per E, dense included
    assert "Optimal <b>N_active</b> for dense at" in html and "Fit <b>chinchilla</b>" in html
    assert "Compute multiplier over dense" in html and "Seed noise unknown" in html  # 1 seed
    assert "Plan for C = <b>1e20</b>" in html
    assert html.index("Summary") < html.index("<figure")


def test_library_functions_return_figures(store):
    from matplotlib.figure import Figure

    inp = build.load_store(store)
    runs, analysis = inp.done(), inp.analysis("N_active")
    assert {b.status for b in analysis.budgets} <= {"ok", "edge-low", "edge-high", "too-few"}
    for fig in (reporting.isoflop(runs, analysis), reporting.frontier(runs, analysis),
                reporting.optima({"N_active": analysis}),
                reporting.learning_curves(inp.curves, runs),
                reporting.experts(inp.experts_comparison()), reporting.experts_at_size(runs),
                reporting.compute_multiplier(inp.experts_comparison())):
        assert isinstance(fig, Figure)
        assert fig.get_axes()[0].get_xlabel()  # labelled axes
    # plain DataFrames work too (a sweep analysed as the library's to_dict JSON)
    as_json = json.loads(json.dumps(analysis.to_dict()))
    assert isinstance(reporting.isoflop(runs, as_json, "N_active"), Figure)


@pytest.mark.slow
def test_synthetic_runs_without_curves_or_failures_use_the_loss_column(store, tmp_path):
    inp = build.load_store(store)
    inp.curves = None
    report = build.build_report(inp, tmp_path, figures=["isoflop", "frontier"])
    assert {d.name for d in report.figures} == {"isoflop", "frontier"}
    with pytest.raises(build.MoescaleError, match="learning_curves"):
        build.build_report(inp, tmp_path, figures=["learning_curves"])


# ----- real data ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_chinchilla_replication_data(tmp_path):
    from moescale import fitting
    from moescale.reference_data import epoch_chinchilla

    runs = epoch_chinchilla(shared("epoch_chinchilla_svg_extracted_data.csv"))
    fit = fitting.fit("chinchilla", runs, holdout="largest-C:5", bootstrap=40)
    inp = build.ReportInputs()
    inp.runs = build.assign_budgets(runs.frame)
    build.add_fit(inp, fit, runs)
    report = build.build_report(inp, tmp_path, title="Chinchilla (Epoch replication data)")
    html = check_report(report, {"isoflop", "frontier", "optima"} | FIT_FIGURES)
    # Chinchilla's N_opt exponent ≈ 0.5 from the isoFLOP analysis the figures draw
    p = inp.analysis("N").power_laws["N_opt"].params["p"]
    assert 0.4 < p < 0.6
    assert "held out largest-C:5" in html


@pytest.mark.slow
def test_clark_routed_runs(tmp_path):
    from moescale import fitting
    from moescale.reference_data import clark2022

    path = shared("clark2022_routing/curves.csv")
    runs = clark2022(path)
    fit = fitting.fit("clark2022", runs, holdout="largest-N:1", bootstrap=20)
    raw = pd.read_csv(path)
    raw = raw[raw["router_type"].isin(["Dense", "S-Base"]) & (raw["k"] == 1)
              & (raw["routing_frequency"] == 0.5)]
    curves = pd.DataFrame({"run_id": raw["hyper_id"].astype(str), "step": raw["step"],
                           "flops": raw["step"] * raw["flops_per_step"],
                           "eval_loss": raw["loss_validation"]})
    frame = runs.frame.assign(id=runs.frame.index.astype(str))
    ids = raw.groupby("hyper_id").first().reset_index()
    curves_runs = pd.DataFrame({"id": ids["hyper_id"].astype(str),
                                "N": ids["dense_parameter_count"]})
    inp = build.ReportInputs(runs=frame, curves=curves, sources={"runs": str(path)})
    build.add_fit(inp, fit, runs)
    report = build.build_report(inp, tmp_path, figures=["experts", *FIT_FIGURES])
    check_report(report, {"experts"} | FIT_FIGURES)
    fig = reporting.learning_curves(curves, curves_runs, color_by="N")
    out = reporting.save(fig, tmp_path / "figures", "clark_curves")
    check_png(out[0])
    check_svg(out[1])


# ----- escaping -------------------------------------------------------------------------------------
EVIL = "<script>window.__pwned=1</script>"


def evil_report(tmp_path: Path) -> Path:
    """A report whose file name, run tags, column name and title carry markup."""
    folder = tmp_path / "<script>window.__pwned=1<"  # the path reads …<script>…</script>.csv
    folder.mkdir()
    csv = folder / "script>.csv"
    rng = np.random.default_rng(0)
    rows = []
    for c in (1e19, 1e20, 1e21):
        for n in np.geomspace(c ** 0.5 / 30, c ** 0.5 / 3, 5):
            d = c / (6 * n)
            rows.append({"N": n, "C": c, "loss": 1.7 + 400 / n**0.34 + 400 / d**0.28
                         + 0.005 * rng.standard_normal(), "note <b>": EVIL,
                         "id": f"run{len(rows)}{EVIL}"})
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def test_user_strings_are_escaped(tmp_path, capsys):
    csv = evil_report(tmp_path)
    out = tmp_path / "out"
    code, stdout, err = run_cli(["report", "--runs", str(csv), "--title", EVIL, "-o", str(out)],
                                capsys)
    assert code == 0, err
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower() and "note <b>" not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html  # title and tags, escaped
    assert html.count("&lt;script&gt;") >= 3  # title, file name, tag values / run ids
    assert "note &lt;b&gt;" in html  # a column name


def test_file_names_of_figures_are_safe():
    from moescale.reporting.style import power_of_ten, safe_name

    assert safe_name("../<script>x") == "script_x"
    assert power_of_ten(1e19) == "10¹⁹" and power_of_ten(3e8) == "3×10⁸"


# ----- command line ------------------------------------------------------------------------------
def test_cli_json_lists_files(store, tmp_path, capsys):
    out = tmp_path / "r"
    code, stdout, err = run_cli(["report", "--store", str(store), "-o", str(out), "--json",
                                 "--bootstrap", "50"], capsys)
    assert code == 0, err
    data = json.loads(stdout)
    assert data["page"] == str(out / "index.html")
    assert all(Path(f).is_file() for f in data["files"])
    names = {f["name"] for f in data["figures"]}
    assert SWEEP_FIGURES <= names
    assert "landscape" in {s["name"] for s in data["skipped"]}


@pytest.mark.slow
def test_cli_one_figure(store, tmp_path, capsys):
    out = tmp_path / "one"
    code, stdout, err = run_cli(["report", "--store", str(store), "--figure", "isoflop",
                                 "--format", "svg", "-o", str(out)], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["isoflop.svg"]
    assert stdout.strip().endswith("index.html")


@pytest.mark.parametrize("args, message", [
    (["--store", "/no/such/sweep.db"], "sweep store not found"),
    (["--fit", "/no/such/fit.json"], "fit file not found"),
    (["--plan", "/no/such/plan.json"], "plan file not found"),
    ([], "nothing to report"),
    (["--runs", "{csv}", "--figure", "nope"], "unknown figure 'nope'"),
    (["--runs", "{csv}", "--figure", "landscape"], "landscape"),
    (["--runs", "{csv}", "--format", "gif"], "--format"),
    (["--map", "a=N"], "apply to --runs"),
    (["--runs", "{csv}", "--map", "nope=N"], "nope"),
])
def test_cli_errors_are_one_line(args, message, tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    pd.DataFrame({"N": [1e8, 2e8, 4e8], "C": [1e19] * 3, "loss": [3.0, 2.9, 3.1]}).to_csv(csv)
    args = [a.replace("{csv}", str(csv)) for a in args]
    code, _, err = run_cli(["report", *args, "-o", str(tmp_path / "o")], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], err


def test_cli_plan_json_and_compare_json(plan_file, tmp_path, capsys):
    compare = {"compute": 1e20, "law": "ludziejewski2025",
               "dense_vs_moe": [{"experts": e, "flop_savings": s} for e, s in
                                ((1, 0.0), (8, 0.4), (32, 0.6))],
               "experts_by_memory": [{"memory_bytes": m * 1e9, "experts": e, "loss": 2.5 - e / 100}
                                     for m, e in ((2, 1), (8, 4), (80, 32))]}
    cpath = tmp_path / "compare.json"
    cpath.write_text(json.dumps(compare))
    out = tmp_path / "p"
    code, stdout, err = run_cli(["report", "--plan", str(plan_file), "--compare", str(cpath),
                                 "--figure", "experts_memory", "--figure", "flop_savings",
                                 "--figure", "architecture", "-o", str(out), "--json"], capsys)
    assert code == 0, err
    names = {f["name"] for f in json.loads(stdout)["figures"]}
    assert names == {"experts_memory", "flop_savings", "architecture"}


@pytest.mark.parametrize("edit, key", [
    (lambda p: p.pop("counts"), "counts"),
    (lambda p: p.update(arch=p.pop("architecture")), "architecture"),  # a renamed key
    (lambda p: p["allocation"].pop("M_over_Na_target"), "M_over_Na_target"),
    (lambda p: p["counts"]["ratios"].pop("N_a"), "N_a"),
    (lambda p: p["budget"].pop("memory_bytes"), "memory_bytes"),
])
def test_a_plan_with_a_missing_or_renamed_key_is_a_clear_error(plan_file, tmp_path, edit, key):
    """Read time, naming the key — not a figure silently left out of the page."""
    plan = json.loads(plan_file.read_text())
    edit(plan)
    with pytest.raises(build.MoescaleError, match=f"has no '{key}'"):
        build.ReportInputs(plan=plan)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    with pytest.raises(build.MoescaleError, match=f"{path}.* has no '{key}'"):
        build.load_plan(path)


def test_a_comparison_or_leaderboard_with_a_missing_key_is_a_clear_error():
    compare = {"compute": 1e20, "law": "ludziejewski2025", "dense_vs_moe": [],
               "experts_by_memory": [{"memory_bytes": 8e9, "experts": 4}]}
    build.ReportInputs(compare=compare)
    with pytest.raises(build.MoescaleError, match="has no 'law'"):
        build.ReportInputs(compare={k: v for k, v in compare.items() if k != "law"})
    compare["experts_by_memory"] = [{"memory": 8e9, "experts": 4}]  # a renamed row key
    with pytest.raises(build.MoescaleError, match="experts_by_memory row has no 'memory_bytes'"):
        build.ReportInputs(compare=compare)
    with pytest.raises(build.MoescaleError, match="has no 'rank_by'"):
        build.ReportInputs(selection={"leaderboard": [], "not_ranked": []})


def test_a_law_plan_leaves_the_holistic_figures_out_and_says_why(tmp_path):
    from moescale.planning import Budget
    from moescale.planning.law_plan import plan_with_law

    inp = build.ReportInputs(plan=plan_with_law(Budget(compute=1e20)))  # a Plan object
    names = build.available_figures(inp)
    assert "architecture" in names and "landscape" not in names
    report = build.build_report(inp, tmp_path, figures=["architecture"])
    check_png(report.figures[0].files[0])
    with pytest.raises(build.MoescaleError, match="landscape.*method='holistic'"):
        build.build_report(inp, tmp_path, figures=["landscape"])


def test_a_figure_the_data_cannot_support_says_why_on_the_page(tmp_path):
    """flop_savings of a comparison without FLOP-savings rows: left out, with the reason."""
    compare = {"compute": 1e20, "law": "ludziejewski2025", "dense_vs_moe": [],
               "experts_by_memory": [{"memory_bytes": m * 1e9, "experts": e, "loss": 2.5}
                                     for m, e in ((2, 1), (8, 4), (80, 32))]}
    report = build.build_report(build.ReportInputs(compare=compare), tmp_path)
    assert [d.name for d in report.figures] == ["experts_memory"]
    reason = dict(report.skipped)["flop_savings"]
    assert reason.startswith("could not be drawn: no FLOP-savings rows")
    html = report.page.read_text(encoding="utf-8")
    assert "<code>flop_savings</code>: could not be drawn: no FLOP-savings rows" in html
    # inputs that are absent are listed with the parameter that would supply them
    assert "<code>isoflop</code>: needs finished runs (`store` or `runs`)" in html


@pytest.mark.parametrize("bug", [TypeError("unsupported operand"), KeyError("hidden_size"),
                                 ValueError("plain ValueError from numpy")])
def test_a_bug_in_a_figure_propagates(plan_file, tmp_path, monkeypatch, bug):
    """Only FigureUnavailable / MoescaleError mean "cannot be drawn"; anything else is a bug."""
    def broken(plan):
        raise bug

    monkeypatch.setattr(build.planfig, "architecture", broken)
    with pytest.raises(type(bug), match=str(bug.args[0])):
        build.build_report(build.load_plan(plan_file), tmp_path, figures=["architecture"])


def test_report_help_lists_examples(capsys):
    code, out, _ = run_cli(["report", "--help"], capsys)
    assert code == 0 and "moescale report --store sweep.db" in out
    code, out, _ = run_cli(["report", "--list-figures"], capsys)
    assert set(out.split()) == set(build.figure_names())


def test_learning_curves_tell_trunks_from_runs():
    """A sweep with reuse = "trunk": the trunks' curves are drawn grey and named as trunks."""
    import pandas as pd

    from moescale.reporting import sweeps as sweepfig

    curves = pd.DataFrame({"run_id": ["trunk-a"] * 3 + ["b1"] * 2,
                           "flops": [1e9, 2e9, 4e9, 3e9, 4e9],
                           "eval_loss": [3.0, 2.8, 2.7, 2.75, 2.6]})
    runs = pd.DataFrame({"id": ["b1"], "budget": [4e9]})
    fig = sweepfig.learning_curves(curves, runs)
    ax = fig.axes[0]
    assert ax.get_title() == "learning curves of 1 runs and 1 trunks"
    assert any("grey: trunks" in t.get_text() for t in ax.texts)


def test_runs_without_a_loss_column_are_one_error(tmp_path, capsys):
    """An audit found `report --runs` on a file without losses write 0 figures and exit 0."""
    from conftest import run_cli

    path = tmp_path / "sizes.csv"
    path.write_text("N,D\n1e8,1e9\n2e8,2e9\n")
    code, out, err = run_cli(["report", "--runs", str(path), "-o", str(tmp_path / "r")], capsys)
    assert code == 2 and "has no loss column" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
