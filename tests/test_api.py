"""The public Python API: the lazy top level, its doctests, one FitResult, objects accepted
where paths are, and one preset namespace."""

import dataclasses
import doctest
import importlib
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import moescale
from moescale.errors import MoescaleError

DOCTEST_MODULES = ["moescale", "moescale.api", "moescale.jsonio", "moescale.accounting.presets",
                   "moescale.fitting", "moescale.fitting.result", "moescale.fitting.estimator",
                   "moescale.fitting.diagnostics", "moescale.fitting.likelihood"]


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, name


def test_every_public_name_resolves_and_import_is_light():
    for name in moescale.__all__:
        assert getattr(moescale, name) is not None, name
    code = ("import sys, moescale; heavy = {'torch', 'scipy', 'pandas', 'matplotlib'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    with pytest.raises(AttributeError):
        moescale.no_such_name  # noqa: B018


def _chinchilla_runs(n=16, seed=0, bad_run=None):
    rng = np.random.default_rng(seed)
    N = np.geomspace(1e8, 1e10, n)
    D = np.tile([1e10, 4e10, 1.6e11, 6.4e11], n // 4)
    loss = (1.69 + 406.4 / N**0.34 + 410.7 / D**0.28) * np.exp(rng.normal(0, 1e-3, n))
    if bad_run is not None:
        loss[bad_run] *= 1.08
    return pd.DataFrame({"N": N, "D": D, "loss": loss})


@pytest.fixture(scope="module")
def fitted():
    return moescale.fit("chinchilla", _chinchilla_runs(bad_run=5), bootstrap=20, seed=1)


def test_fit_result_is_frozen_with_the_optimiser_report_at_the_top(fitted):
    assert fitted.success is True, fitted.message
    assert "converge" in fitted.message.lower(), fitted.message
    assert fitted.nfev > fitted.n_starts > 0 and fitted.nit > 0
    assert fitted.fun == fitted.objective["value"]
    assert fitted.bootstrap_converged is not None and 0 <= fitted.bootstrap_converged <= 20
    with pytest.raises(dataclasses.FrozenInstanceError):
        fitted.params = {}
    text = repr(fitted)
    assert len(text) < 400 and "bootstrap=20" in text and "{'A'" not in text


def test_fit_result_round_trips_through_json(tmp_path, fitted):
    path = tmp_path / "fit.json"
    fitted.save(path)
    raw = json.loads(path.read_text())
    assert raw["success"] is True and raw["nfev"] == fitted.nfev
    back = moescale.FitResult.load(path)
    assert back.params == fitted.params and back.warnings == fitted.warnings
    assert back.residuals == fitted.residuals
    lo, hi = back.interval(N=1e9, D=2e10)
    assert lo < back.predict(N=1e9, D=2e10) < hi


def test_the_outlier_run_is_named_in_the_residual_table_and_warnings(fitted):
    assert len(fitted.residuals) == 16
    assert [r["run"] for r in fitted.outliers] == [5]
    assert any("run 5" in w for w in fitted.warnings)


def test_a_prediction_far_outside_the_fitted_range_warns(fitted):
    with pytest.warns(moescale.fitting.ExtrapolationWarning, match="N = 1e\\+12"):
        fitted.predict(N=1e12, D=2e10)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted.predict(N=1e9, D=2e10)  # inside: silent


def test_fit_takes_a_law_object_a_frame_and_a_path(tmp_path):
    frame = _chinchilla_runs()
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    from moescale import fitting

    a = fitting.fit(moescale.get_law("chinchilla"), frame)
    b = fitting.fit("chinchilla", str(path))
    assert a.params == pytest.approx(b.params)
    with pytest.raises(MoescaleError, match="law name or a Law"):
        fitting.fit(3, frame)


def test_fit_on_arrays_returns_the_same_result_type():
    frame = _chinchilla_runs()
    r = moescale.fitting.fit_arrays("chinchilla", {"N": frame.N.to_numpy(), "D": frame.D.to_numpy()},
                             frame.loss.to_numpy())
    assert isinstance(r, moescale.FitResult) and r.data["source"] == "arrays"
    assert r.predict(N=1e9, D=2e10) > 0


def test_success_is_measured_not_assumed(monkeypatch):
    """When LM stops at its iteration limit and L-BFGS-B does worse, the fit says so."""
    from scipy.optimize import OptimizeResult

    import moescale.fitting.engine as engine

    real_refine = engine.ms.refine
    monkeypatch.setattr(engine.ms, "refine",
                        lambda problem, theta, **kw: real_refine(problem, theta,
                                                                 **{**kw, "max_iter": 1}))
    monkeypatch.setattr(engine.ms, "polish", lambda problem, theta: OptimizeResult(
        x=theta, fun=np.inf, success=True, message="patched"))
    frame = _chinchilla_runs()
    r = moescale.fitting.fit("chinchilla", frame)
    assert r.success is False and "iteration limit" in r.message
    assert any("did not converge" in w for w in r.warnings)


def test_a_collapsed_parameter_and_a_flat_direction_are_reported():
    # the loss does not depend on D at all: the D term must collapse (B → 0 or β at a bound)
    N = np.geomspace(1e8, 1e10, 12)
    D = np.geomspace(1e9, 1e11, 12)[::-1]
    loss = 1.7 + 400 / N**0.34
    r = moescale.fitting.fit_arrays("chinchilla", {"N": N, "D": D}, loss)
    text = " ".join(r.warnings)
    assert "collapsed" in text or "bound" in text or "not identifiable" in text, r.warnings


def test_estimator_follows_scikit_learn():
    model = moescale.ScalingLaw("chinchilla")
    with pytest.raises(MoescaleError, match="fit"):
        model.predict(N=1e9, D=1e10)
    assert model.fit(_chinchilla_runs()) is model
    assert model.params_ == model.result_.params and model.success_
    assert model.score(_chinchilla_runs(seed=3)) > -0.01


def test_planners_take_a_fit_object_or_its_file(tmp_path):
    rng = np.random.default_rng(8)
    v = {"N": np.exp(rng.uniform(np.log(5e7), np.log(5e9), 80)),
         "D": np.exp(rng.uniform(np.log(1e9), np.log(2e11), 80)),
         "E": rng.choice([1, 2, 4, 8, 16], 80).astype(float)}
    law = moescale.get_law("wang2024")
    truth = dict(A=300.0, alpha=0.3, gamma=0.15, B=400.0, beta=0.3, sigma=1.7)
    frame = pd.DataFrame({**v, "loss": law.predict(truth, v)})
    result = moescale.fit("wang2024", frame)
    path = tmp_path / "fit.json"
    result.save(path)
    by_object = moescale.plan(1e21, fit=result, experts=[8])
    by_path = moescale.plan(1e21, fit=str(path), experts=[8])
    assert by_object.allocation == by_path.allocation
    assert not any(e["quantity"] == "C" for e in by_object.extrapolation)  # inside the runs
    far = moescale.plan(1e24, fit=result, experts=[8])  # beyond every run's C = 6·N·D (6e21)
    assert any(e["quantity"] == "C" for e in far.extrapolation)
    assert any("fit of wang2024" in line for line in far.assumptions)


@pytest.mark.parametrize("preset", ["tiny", "mixtral-8x7b", "example"])
def test_count_command_and_api_count_the_same_preset(preset, capsys):
    from moescale.cli import main

    main(["count", "--preset", preset, "--json"])
    shown = json.loads(capsys.readouterr().out)
    counts = moescale.count(preset)
    assert shown["total_params"] == counts.total_params
    assert shown["active_params"] == counts.active_params


def test_count_accepts_objects_names_and_files(tmp_path):
    arch = moescale.get_preset("tiny")
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(arch.to_dict()))
    totals = {moescale.count(x).total_params for x in (arch, "tiny", str(path))}
    assert len(totals) == 1
    with pytest.raises(MoescaleError, match="neither a preset"):
        moescale.count("no-such-model")


def test_experts_by_memory_reports_only_budgets_that_do_not_fit():
    from moescale.planning import compare as cmp
    from moescale.planning.law_plan import loss_function

    loss, *_ = loss_function("ludziejewski2025")
    rows = cmp.experts_by_memory(loss, 1e21, [1e6, 80e9], [1, 8])
    assert rows[0]["experts"] is None and "cannot hold" in rows[0]["reason"]
    assert rows[1]["experts"] in (1, 8)

    def broken(n, d, e):
        raise MoescaleError("a bug in the law, not a memory budget")

    broken.has_experts = True
    with pytest.raises(MoescaleError, match="a bug in the law"):
        cmp.experts_by_memory(broken, 1e21, [80e9], [8])


@pytest.mark.parametrize("kwargs", [{}, {"law": "ludziejewski2025", "experts": [8]}])
def test_every_plan_has_the_same_typed_summary(kwargs):
    p = moescale.plan(1e20, **kwargs)
    s = p.summary
    assert s.active_params_in_convention == p.allocation["active_params"]
    assert s.active_params > s.active_params_non_embedding  # names state the convention
    assert s.total_params == p.counts.total_params
    assert s.training_compute == pytest.approx(s.flops_per_token * s.training_tokens)
    assert p.to_dict()["summary"]["convention"] == p.convention


def test_no_function_of_the_api_shares_its_name_with_a_module():
    """``moescale.architecture`` is the function; the module is
    ``moescale.accounting.architecture``, so importing one never hides the other."""
    import importlib.util

    import moescale
    import moescale.accounting.architecture  # noqa: F401
    from moescale.accounting.architecture import Architecture

    for name in moescale.__all__:
        assert importlib.util.find_spec(f"moescale.{name}") is None or name == "laws", name
    arch = moescale.architecture("tiny")
    assert isinstance(arch, Architecture) and arch.hidden_size == 64  # tiny preset: d = 64


def test_objects_people_print_have_short_reprs():
    import moescale

    counts = moescale.count("mixtral-8x7b")
    plan = moescale.plan(1e21)
    law = moescale.get_law("chinchilla")
    for obj in (counts, plan, law):
        text = repr(obj)
        assert len(text) < 300 and "0x" not in text, text  # no dumps, no function addresses
    import re

    # Mixtral-8x7B model card: 46.7B total, 12.9B active parameters
    shown = dict(re.findall(r"(\w+_params)=([\d,]+)", repr(counts)))
    assert round(int(shown["total_params"].replace(",", "")) / 1e9, 1) == 46.7
    assert round(int(shown["active_params"].replace(",", "")) / 1e9, 1) == 12.9
    with pytest.raises(moescale.MoescaleError, match="no component 'x'; components: "):
        counts.component("x")


def test_scaling_law_can_be_cloned_as_scikit_learn_does():
    from moescale.fitting.estimator import ScalingLaw

    est = ScalingLaw("chinchilla", holdout="largest-C:1", bootstrap=5, delta=1e-3)
    params = est.get_params()
    clone = type(est)(**params)  # sklearn.base.clone: the class called with get_params()
    assert clone.get_params() == params and clone is not est
    assert est.set_params(bootstrap=7, delta=1e-2).get_params()["bootstrap"] == 7
    assert est.get_params()["delta"] == 1e-2


@pytest.mark.parametrize("preset", sorted(__import__("moescale.accounting.presets").accounting.presets.PRESETS))
def test_api_and_cli_train_resolve_every_preset_to_the_same_model(preset, monkeypatch):
    """``moescale.train(preset)`` and ``moescale train --preset`` build the same architecture
    with the same model options (an HF preset's RoPE θ, norm ε and routing included)."""
    pytest.importorskip("torch")
    import moescale.training.trainer as trainer
    from moescale.cli import main

    seen = []

    def record(arch, config, options):
        seen.append((arch, options))
        raise SystemExit(0)  # stop before the command prints a result

    monkeypatch.setattr(trainer, "train", record)
    with pytest.raises(SystemExit):
        moescale.train(preset, tokens=1024)
    with pytest.raises(SystemExit):
        main(["train", "--preset", preset, "--tokens", "1024"])
    (api_arch, api_options), (cli_arch, cli_options) = seen
    assert api_arch == cli_arch
    from moescale.training.model import ModelOptions

    assert (api_options or ModelOptions()) == (cli_options or ModelOptions())
