"""Issue 19, the Python API and the physical ranges where values enter: a wrong type or value
raises the library's MoescaleError naming the Python parameter (not an error from deep inside,
not a wrong answer); sizes, hold-out percentages and losses are checked where they enter."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import moescale
import moescale.api
from conftest import needs_torch, run_cli
from moescale.errors import MoescaleError

RUNS = pd.DataFrame({"N": np.geomspace(1e7, 1e9, 8), "D": np.geomspace(1e9, 1e11, 8),
                     "loss": np.linspace(3.5, 2.6, 8)})

# (call, fragment naming the parameter and the problem)
CATALOGUE = [
    (lambda: moescale.count(123), "arch must be an Architecture, a preset name or a file path"),
    (lambda: moescale.count(None), "arch must be"),
    (lambda: moescale.count("tiny", context=-100000), "context must be positive"),
    (lambda: moescale.count("tiny", context=2.5), "context must be a whole number"),
    (lambda: moescale.count("tiny", inference_context="4k"), "inference_context must be a whole number"),
    (lambda: moescale.count("tiny", convention="bogus"), "convention must be one of"),
    (lambda: moescale.count("tiny", causal_halving="yes"), "causal_halving must be True, False or None"),
    (lambda: moescale.count("tiny", contxt=512), "count() got unknown argument(s) contxt"),
    (lambda: moescale.plan("1e21"), "compute must be a number, not a string"),
    (lambda: moescale.plan(-1e21), "compute must be positive"),
    (lambda: moescale.plan(float("nan")), "compute must be finite"),
    (lambda: moescale.plan(True), "compute must be a number"),
    (lambda: moescale.plan(1e21, experts="16"), "experts must be a non-empty list of positive whole numbers"),
    (lambda: moescale.plan(1e21, experts=[16, 0]), "experts[1] must be positive"),
    (lambda: moescale.plan(1e21, method="bogus"), "method must be one of 'holistic', 'law'"),
    (lambda: moescale.plan(1e21, memory_bytes="80GB"), "memory_bytes must be a number"),
    (lambda: moescale.plan(1e21, kv_tokens=-1), "kv_tokens must be at least 0"),
    (lambda: moescale.plan(1e21, inference_tokens=float("inf")), "inference_tokens must be finite"),
    (lambda: moescale.plan(1e21, dtype=2), "dtype must be a name"),
    (lambda: moescale.compare(1e21, tolerance=-1), "tolerance must be positive"),
    (lambda: moescale.compare(1e21, tolerance=1.5), "tolerance must be less than 1"),
    (lambda: moescale.compare(1e21, experts=8), "experts must be a non-empty list"),
    (lambda: moescale.compare(1e21, sizes=[]), "sizes must be a non-empty list"),
    (lambda: moescale.compare("1e21"), "compute must be a number, not a string"),
    (lambda: moescale.fit("chinchilla", RUNS, holdout=5), "holdout must be a rule such as 'largest-C:5'"),
    (lambda: moescale.fit(42, RUNS), "law must be a law name or a Law"),
    (lambda: moescale.fit("chinchilla", RUNS, bootstrap=-3), "bootstrap must be at least 0"),
    (lambda: moescale.fit("chinchilla", RUNS, level=95), "level must be less than 1"),
]


@pytest.mark.parametrize("call, fragment", CATALOGUE, ids=[f for _, f in CATALOGUE])
def test_api_refuses_with_the_parameters_name(call, fragment):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy or other warning on the way
        with pytest.raises(MoescaleError) as err:
            call()
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_good_calls_work_and_mean_what_they_say():
    assert moescale.plan(1e20, experts=16).architecture.n_experts == 16
    assert moescale.plan(1e20, experts=[16]).architecture.n_experts == 16  # not 6
    assert moescale.count("tiny", context=128).total_params == moescale.count("tiny").total_params
    assert moescale.plan(1e20, method="holistic").method == "holistic"


# ----- physical ranges where values enter ----------------------------------------------------
def test_architectures_past_1e15_parameters_are_refused(capsys):
    with pytest.raises(MoescaleError, match=r"about 5\.9e\+16 parameters, above the limit of 1e\+15"):
        moescale.api.architecture(None, hidden_size=2**18, n_layers=2**14, n_heads=64,
                              dense_ffn=2**22)
    code, out, err = run_cli(["count", "--hidden-size", "65536", "--layers", "4096", "--heads",
                              "64", "--experts", "4096", "--top-k", "8", "--expert-ffn", "65536",
                              "--dense-ffn", "65536"], capsys)
    assert code == 2 and "above the limit of 1e+15" in err and len(err.strip().splitlines()) == 1
    assert moescale.count("mixtral-8x7b").total_params < 1e15  # real models pass


@pytest.mark.parametrize("rule, fragment", [("largest-N:150%", "at most 100 %"),
                                            ("largest-N:0%", "above 0 %"),
                                            ("lowest-loss:nan%", "at most 100 %"),
                                            ("largest-N:-5%", "above 0 %")])
def test_holdout_percentages_outside_0_100_are_one_line(tmp_path, capsys, rule, fragment):
    path = tmp_path / "runs.csv"
    RUNS.to_csv(path, index=False)
    code, out, err = run_cli(["fit", str(path), "--law", "chinchilla", "--holdout", rule],
                             capsys)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("loss", ["1e308", "1e30", "5000"])
def test_losses_that_would_overflow_the_fit_are_refused(tmp_path, capsys, loss):
    path = tmp_path / "runs.csv"
    RUNS.assign(loss=float(loss)).to_csv(path, index=False)
    code, out, err = run_cli(["fit", str(path), "--law", "chinchilla"], capsys)
    assert code == 2 and "must be at most 1000 nats/token" in err
    assert "Warning" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("call", "message"), [
    (lambda: moescale.RunTable.from_file(123), "`path` must be a file path"),
    (lambda: moescale.runs_from_train_folders(123), "`folders` must be a run folder"),
    (lambda: __import__("moescale.sweeps.spec", fromlist=["SweepSpec"]).SweepSpec.from_dict(
        [1, 2]), "a sweep spec is a table"),
    (lambda: moescale.TrainConfig(tokens=1024, out=5), "`out` must be a folder path"),
])
def test_wrong_kinds_name_their_parameter(call, message):
    """An audit found these raise AttributeError or TypeError from deep inside."""
    with pytest.raises(moescale.MoescaleError, match=message):
        call()


@needs_torch
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"config": 5}, "`config` must be a TrainConfig"),
    ({"options": "x"}, "`options` must be a ModelOptions"),
])
def test_train_names_a_wrong_config_or_options(kwargs, message):
    with pytest.raises(moescale.MoescaleError, match=message):
        moescale.train("tiny", **kwargs)


def test_prepare_names_a_text_val_fraction(tmp_path):
    from moescale.training.corpora import prepare

    (tmp_path / "a.txt").write_text("in the beginning " * 200)
    with pytest.raises(moescale.MoescaleError, match="`val_fraction` must be a number"):
        prepare(tmp_path / "a.txt", tmp_path / "out", val_fraction="0.1")
