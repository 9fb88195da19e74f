"""Catalogue of bad inputs: every one gives exit status 2, exactly one stderr line
``Error: …``, nothing on stdout and no file left behind — for count, laws, fit, predict, train
and click's own errors (missing option, bad integer, unknown command)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

# ----- input files (written once per test, before the snapshot of the folder) ---------------

HOFFMANN = dict(A=406.4, B=410.7, E=1.69, alpha=0.34, beta=0.28)
TINY = dict(hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=256, dense_ffn=0,
            n_experts=4, top_k=2, expert_ffn=64, seq_len=64, name="tiny")
HUGE = dict(hidden_size=16384, n_layers=128, n_heads=128, vocab_size=256, n_experts=256,
            top_k=8, expert_ffn=16384, seq_len=64, name="huge")  # ~ 2.6e13 parameters


def _fit(**changes) -> dict:
    """A valid chinchilla fit-file dict (as `moescale fit -o` writes), with changes."""
    fit = {"law": "chinchilla", "convention": "chinchilla", "target": "loss",
           "params": dict(HOFFMANN), "objective": {"name": "huber_log", "delta": 1e-3,
                                                    "value": 0.1, "reduction": "sum"},
           "optimizer": {"method": "grid", "starts": 1}, "data": {"n_runs": 20, "n_train": 20},
           "train": {"rmse": 0.01, "max_abs_error": 0.02, "mean_abs_rel_error": 0.01, "n": 20},
           "holdout": None, "derived": {}, "ci": {"alpha": [0.3, 0.4]}, "se": {"alpha": 0.01},
           "ci_level": 0.95, "bootstrap_params": [dict(HOFFMANN), dict(HOFFMANN)], "fixed": {},
           "format": "moescale-fit/1"}
    fit.update(changes)
    return fit


def _runs_csv(rows: int = 20, **columns) -> str:
    rng = np.random.default_rng(0)
    n = np.geomspace(1e8, 1e10, rows)
    d = np.geomspace(1e9, 1e11, rows)[rng.permutation(rows)]
    loss = 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28
    data = {"N": n, "D": d, "loss": loss, **columns}
    lines = [",".join(data)] + [",".join(repr(float(data[k][i])) for k in data) for i in range(rows)]
    return "\n".join(lines) + "\n"


def _write_inputs(root: Path) -> None:
    (root / "runs.csv").write_text(_runs_csv())
    (root / "moe_runs.csv").write_text(_runs_csv(E=np.full(20, 2.5)).replace("N,", "N_active,", 1))
    zhao = _runs_csv(N_a=np.full(20, 2e10), G=np.full(20, 4.0), S=np.full(20, 0.25))
    (root / "zhao_runs.csv").write_text(zhao)
    (root / "empty.csv").write_text("")
    (root / "binary.csv").write_bytes(b"\x00\x01\x02\xff\xfe" * 200)
    (root / "binary.txt").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 20)
    (root / "binary.json").write_bytes(b"\xff\xfe\x00\x00garbage")
    (root / "bad.json").write_text("{")
    (root / "list.json").write_text("[1, 2]")
    (root / "a_dir").mkdir()
    fits = {
        "fit_ok": _fit(),
        "fit_v2": _fit(format="moescale-fit/2"),
        "fit_noformat": {k: v for k, v in _fit().items() if k != "format"},
        "fit_law": _fit(law="nosuch"),
        "fit_missing": _fit(params={k: v for k, v in HOFFMANN.items() if k != "beta"}),
        "fit_text": _fit(params={**HOFFMANN, "alpha": "0.34"}),
        "fit_bounds": _fit(params={**HOFFMANN, "alpha": -5.0}),
        "fit_extra": _fit(params={**HOFFMANN, "gamma": 1.0}),
        "fit_boot": _fit(bootstrap_params={"alpha": 1}),
        "fit_boot_item": _fit(bootstrap_params=[dict(HOFFMANN), {"A": 1.0}]),
        "fit_ci": _fit(ci={"alpha": [0.3]}),
        "fit_level": _fit(ci_level=2),
        "fit_target": _fit(target="lr"),
        "fit_params_list": _fit(params=[1, 2, 3]),
        "fit_bool": _fit(params={**HOFFMANN, "E": True}),
    }
    for name, data in fits.items():
        (root / f"{name}.json").write_text(json.dumps(data))
    # JSON with a NaN literal and an integer beyond the float range (json.dumps cannot)
    text = json.dumps(_fit())
    (root / "fit_nan.json").write_text(text.replace('"alpha": 0.34', '"alpha": NaN', 1))
    (root / "fit_huge.json").write_text(text.replace('"A": 406.4', '"A": 1' + "0" * 400, 1))
    (root / "fit_inf.json").write_text(text.replace('"beta": 0.28', '"beta": Infinity', 1))
    arch = {
        "arch_frac": {**TINY, "n_experts": 7.5},
        "arch_vocab": {**TINY, "vocab_size": 1e40},
        "arch_vocab_int": {**TINY, "vocab_size": 10**40},
        "arch_experts": {**TINY, "n_experts": 10**9},
        "arch_mla": {**TINY, "mla": [1, 2]},
        "arch_bool": {**TINY, "tie_embeddings": "yes"},
        "arch_ffn": {**TINY, "ffn_type": ["swiglu"]},
        "arch_tiny": TINY,
        "arch_huge": HUGE,
    }
    for name, data in arch.items():
        (root / f"{name}.json").write_text(json.dumps(data))
    (root / "corrupt").mkdir()
    (root / "corrupt" / "checkpoint.pt").write_bytes(b"not a checkpoint" * 10)
    (root / "used").mkdir()
    (root / "used" / "log.jsonl").write_text('{"event": "start"}\n')
    (root / "a_file").write_text("x")


def _snapshot(root: Path) -> dict[str, tuple[int, float]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime)
            for p in root.rglob("*")}


@pytest.fixture
def bad_input(tmp_path, monkeypatch, capsys, tmp_path_factory):
    """Run one bad command line in a folder of input files; check the one-line contract."""
    work = tmp_path / "work"
    work.mkdir()
    _write_inputs(work)
    monkeypatch.chdir(work)
    monkeypatch.setenv("MOESCALE_CACHE", str(tmp_path_factory.getbasetemp() / "token-cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    def check(argv: list[str], message: str) -> str:
        before = _snapshot(work)
        code, out, err = run_cli(argv, capsys)
        assert code == 2, (argv, code, out, err)
        assert out == "", (argv, out)
        assert err.startswith("Error: ") and err.endswith("\n") and err.count("\n") == 1, (argv, err)
        assert "Traceback" not in err and "Warning" not in err, (argv, err)
        assert message.lower() in err.lower(), (argv, message, err)
        assert _snapshot(work) == before, (argv, set(_snapshot(work)) ^ set(before))
        return err
    return check


# ----- count ---------------------------------------------------------------------------------

SIZES = ["--hidden-size", "64", "--layers", "2", "--heads", "4", "--dense-ffn", "128"]
COUNT = [
    ([], "no architecture given"),
    (["--preset", "nosuch"], "nosuch"),
    (["--preset", "mixtral-8x7b", "--arch", "arch_tiny.json"], "only one of"),
    (["--arch", "missing.json"], "not found"),
    (["--arch", "a_dir"], "is a directory"),
    (["--arch", "binary.json"], "not a text"),
    (["--arch", "bad.json"], "not valid JSON"),
    (["--arch", "list.json"], "JSON object"),
    (["--arch", "arch_frac.json"], "--experts must be a non-negative integer"),
    (["--arch", "arch_vocab.json"], "--vocab must be a positive integer"),
    (["--arch", "arch_vocab_int.json"], "--vocab="),
    (["--arch", "arch_experts.json"], "above the limit"),
    (["--arch", "arch_mla.json"], "mla must be"),
    (["--arch", "arch_bool.json"], "tie_embeddings must be true or false"),
    (["--arch", "arch_ffn.json"], "--ffn-type must be a string"),
    ([*SIZES, "--vocab", "0"], "--vocab must be a positive integer"),
    ([*SIZES, "--vocab", "100000000000"], "above the limit"),
    ([*SIZES, "--experts", "1000000000", "--top-k", "1", "--expert-ffn", "8"], "above the limit"),
    ([*SIZES, "--experts", "8", "--top-k", "9", "--expert-ffn", "8"], "--top-k=9"),
    ([*SIZES, "--layers", "-2"], "--layers must be a positive integer"),
    (["--hidden-size", "65", "--layers", "2", "--heads", "4", "--dense-ffn", "8"], "divide"),
    ([*SIZES, "--layers", "x"], "not a valid integer"),
    ([*SIZES, "--context", "-1"], "--context must be positive"),
    ([*SIZES, "--kv-tokens", "10000000000000"], "--kv-tokens must be at most"),
    ([*SIZES, "--dtype", "fp7"], "unknown dtype"),
    ([*SIZES, "--convention", "nosuch"], "convention"),
    ([*SIZES, "--ffn-type", "foo"], "foo"),
]


@pytest.mark.parametrize("args, message", COUNT, ids=[" ".join(a)[:60] for a, _ in COUNT])
def test_count_bad_inputs(bad_input, args, message):
    bad_input(["count", *args], message)


# ----- laws ----------------------------------------------------------------------------------

LAWS = [
    (["--law", "chinchilla"], "No such option"),
    (["chinchilla"], "unexpected extra argument"),
    (["--json=yes"], "does not take a value"),
    (["--preset"], "No such option"),
    (["-j"], "No such option"),
    (["--jsn"], "No such option"),
    (["--json", "extra"], "unexpected extra argument"),
    (["a", "b", "c"], "unexpected extra argument"),
    (["--", "x"], "unexpected extra argument"),
    (["--JSON"], "No such option"),
    (["-"], "unexpected extra argument"),
    (["--json", "--fit", "f.json"], "No such option"),
    (["nan"], "unexpected extra argument"),
    (["--verbose"], "No such option"),
    (["--format", "csv"], "No such option"),
]


@pytest.mark.parametrize("args, message", LAWS, ids=[" ".join(a) for a, _ in LAWS])
def test_laws_bad_inputs(bad_input, args, message):
    bad_input(["laws", *args], message)


# ----- fit -----------------------------------------------------------------------------------

CH = ["--law", "chinchilla"]
FIT = [
    (["missing.csv", *CH], "not found"),
    (["a_dir", *CH], "is a directory"),
    (["empty.csv", *CH], "empty"),
    (["binary.csv", *CH], "binary.csv"),
    (["bad.json", *CH], "not valid JSON"),
    (["runs.csv", "--law", "nosuch"], "unknown law"),
    (["runs.csv", *CH, "--map", "Size=N"], "--map names column 'Size'"),
    (["runs.csv", "--law", "ludziejewski2025"], "column 'N_active' is missing"),
    (["runs.csv", *CH, "--where", "N < 0"], "matches no runs"),
    (["runs.csv", *CH, "--holdout", "bogus"], "--holdout"),
    (["runs.csv", *CH, "--bootstrap", "-1"], "--bootstrap"),
    (["runs.csv", *CH, "--bootstrap", "1000000000"], "--bootstrap"),
    (["runs.csv", *CH, "--level", "nan"], "--level must be a number"),
    (["runs.csv", *CH, "--level", "1.5"], "--level must be <="),
    (["runs.csv", *CH, "--delta", "inf"], "--delta must be a number"),
    (["runs.csv", *CH, "--delta", "0"], "--delta must be >"),
    (["runs.csv", *CH, "--fix", "alpha=-5"], "outside its domain"),
    (["runs.csv", *CH, "--fix", "alpha=nan"], "finite numbers"),
    (["runs.csv", *CH, "--fix", "gamma=1"], "has no parameter gamma"),
    (["runs.csv", *CH, "--fix", "alpha"], "must look like PARAM=VALUE"),
    (["runs.csv", *CH, "--grid", "alpha=1,x"], "finite numbers"),
    (["runs.csv", *CH, "--grid", "alpha=1..2"], "finite numbers"),
    (["runs.csv", "--law", "clark2022", "--map", "N=E", "--method", "varpro"], "E"),
    (["moe_runs.csv", "--law", "ludziejewski2025"], "column 'E' must be a whole number"),
    (["zhao_runs.csv", "--law", "zhao2025"], "column 'N_active' must be <= column 'N'"),
    (["runs.csv", *CH, "--seed", "-1"], "--seed"),
]


@pytest.mark.parametrize("args, message", FIT, ids=[" ".join(a)[:60] for a, _ in FIT])
def test_fit_bad_inputs(bad_input, args, message):
    bad_input(["fit", *args], message)


def test_fit_output_path_that_cannot_be_written(bad_input):
    bad_input(["fit", "runs.csv", *CH, "-o", "a_file/fit.json"], "cannot write the fit")


# ----- predict -------------------------------------------------------------------------------

PC = ["--law", "chinchilla"]
PREDICT = [
    ([*PC, "--N", "1.2.3", "--D", "1e10"], "--N must be a number"),
    ([*PC, "--N", "nan", "--D", "1e10"], "--N must be a number"),
    ([*PC, "--N", "inf", "--D", "1e10"], "--N must be a number"),
    ([*PC, "--N", "1e400", "--D", "1e10"], "finite"),
    ([*PC, "--N", "", "--D", "1e10"], "--N must be a number"),
    ([*PC, "--N", "1e-300", "--D", "1e10"], "N must be between 1 and"),
    ([*PC, "--N", "7B", "--D", "1e40"], "D must be between"),
    ([*PC, "--N", "-7B", "--D", "1e10"], "--N must be positive"),
    ([*PC, "--N", "7B"], "needs variable D"),
    ([*PC, "--N", "7B", "--D", "1e10", "--E", "8"], "does not use E"),
    ([*PC, "--N", "7B", "--var", "D"], "must look like NAME=VALUE"),
    ([*PC, "--N", "7B", "--D", "1e10", "--var", "N=3"], "given twice"),
    (["--law", "ludziejewski2025", "--N-active", "1e9", "--D", "2e10", "--E", "7.5"],
     "E must be a whole number"),
    (["--law", "ludziejewski2025", "--N-active", "1e9", "--D", "2e10", "--E", "0.5"],
     "E must be >= 1"),
    (["--law", "zhao2025", "--N", "1e9", "--N-a", "2e9", "--D", "1e10", "--G", "4", "--S", "0.2"],
     "N_a must be <= N"),
    (["--law", "zhao2025", "--N", "1e9", "--N-a", "2e8", "--D", "1e10", "--G", "4", "--S", "1.5"],
     "S must be <= 1"),
    (["--law", "zhao2025", "--N", "1e9", "--N-a", "2e8", "--D", "1e10", "--G", "4", "--S", "-0.1"],
     "S must be >= 0"),
    (["--law", "nosuch", "--N", "1"], "unknown law"),
    ([*PC, "--preset", "nosuch", "--N", "7B", "--D", "1e10"], "no preset 'nosuch'"),
    (["--law", "clark2022", "--N", "1e9", "--E", "8"], "no published coefficients"),
    (["--N", "7B", "--D", "1e10"], "give --law"),
    (["--fit", "fit_ok.json", *PC, "--N", "7B", "--D", "1e10"], "not both"),
    (["--fit", "missing.json", "--N", "7B", "--D", "1e10"], "not found"),
    (["--fit", "a_dir", "--N", "7B", "--D", "1e10"], "is a directory"),
    (["--fit", "bad.json", "--N", "7B", "--D", "1e10"], "not valid JSON"),
    (["--fit", "binary.json", "--N", "7B", "--D", "1e10"], "not a text"),
    (["--fit", "list.json", "--N", "7B", "--D", "1e10"], "not a moescale fit"),
    (["--fit", "fit_v2.json", "--N", "7B", "--D", "1e10"], "not supported"),
    (["--fit", "fit_noformat.json", "--N", "7B", "--D", "1e10"], "not a moescale fit"),
    (["--fit", "fit_law.json", "--N", "7B", "--D", "1e10"], "unknown law 'nosuch'"),
    (["--fit", "fit_missing.json", "--N", "7B", "--D", "1e10"], "beta"),
    (["--fit", "fit_text.json", "--N", "7B", "--D", "1e10"], "alpha"),
    (["--fit", "fit_nan.json", "--N", "7B", "--D", "1e10"], "alpha"),
    (["--fit", "fit_inf.json", "--N", "7B", "--D", "1e10"], "beta"),
    (["--fit", "fit_huge.json", "--N", "7B", "--D", "1e10"], "parameter A"),
    (["--fit", "fit_bounds.json", "--N", "7B", "--D", "1e10"], "outside its domain"),
    (["--fit", "fit_extra.json", "--N", "7B", "--D", "1e10"], "gamma"),
    (["--fit", "fit_boot.json", "--N", "7B", "--D", "1e10"], "bootstrap_params"),
    (["--fit", "fit_boot_item.json", "--N", "7B", "--D", "1e10"], "bootstrap_params[1]"),
    (["--fit", "fit_ci.json", "--N", "7B", "--D", "1e10"], "ci.alpha"),
    (["--fit", "fit_level.json", "--N", "7B", "--D", "1e10"], "ci_level"),
    (["--fit", "fit_target.json", "--N", "7B", "--D", "1e10"], "target"),
    (["--fit", "fit_params_list.json", "--N", "7B", "--D", "1e10"], "params"),
    (["--fit", "fit_bool.json", "--N", "7B", "--D", "1e10"], "parameter E"),
    (["--fit", "fit_ok.json", "--N", "7B", "--D", "0"], "--D must be positive"),
]


@pytest.mark.parametrize("args, message", PREDICT, ids=[" ".join(a)[:70] for a, _ in PREDICT])
def test_predict_bad_inputs(bad_input, args, message):
    bad_input(["predict", *args], message)


def test_predict_with_a_valid_fit_file_works(bad_input, capsys):
    code, out, err = run_cli(["predict", "--fit", "fit_ok.json", "--N", "7e9", "--D", "1.4e12",
                              "--json"], capsys)
    assert code == 0 and err == ""
    data = json.loads(out)
    assert math.isfinite(data["loss"]) and data["ci"][0] <= data["loss"] <= data["ci"][1]


# ----- train ---------------------------------------------------------------------------------

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="training needs torch (the train extra)")

TT = ["--preset", "tiny", "--batch-tokens", "1024", "--seq-len", "64", "--threads", "1"]
OK_TOKENS = ["--tokens", "4096"]
TRAIN = [
    ([*TT, "--tokens", "inf"], "--tokens must be a number"),
    ([*TT, "--tokens", "nan"], "--tokens must be a number"),
    ([*TT, "--tokens", "1e40"], "--tokens must be at most"),
    ([*TT, "--tokens", "1.5"], "--tokens must be a whole number"),
    ([*TT, "--tokens", "-5"], "--tokens must be positive"),
    ([*TT, "--tokens", "0"], "--tokens must be positive"),
    ([*TT, "--tokens", "lots"], "--tokens must be a number"),
    ([*TT, *OK_TOKENS, "--lr", "inf"], "--lr must be a number"),
    ([*TT, *OK_TOKENS, "--lr", "nan"], "--lr must be a number"),
    ([*TT, *OK_TOKENS, "--lr", "0"], "--lr must be >"),
    ([*TT, *OK_TOKENS, "--lr", "-1e-3"], "--lr must be >"),
    ([*TT, *OK_TOKENS, "--eval-every", "-1"], "--eval-every"),
    ([*TT, *OK_TOKENS, "--eval-every", "0"], "--eval-every"),
    ([*TT, *OK_TOKENS, "--vocab-size", "0"], "256 tokens"),
    ([*TT, *OK_TOKENS, "--tokenizer", "bpe", "--vocab-size", "10"], "257..1048576"),
    ([*TT, *OK_TOKENS, "--data", "binary.txt"], "binary file"),
    ([*TT, *OK_TOKENS, "--data", "missing.txt"], "data not found"),
    ([*TT, *OK_TOKENS, "--device", "tpu"], "--device 'tpu' is not supported"),
    ([*TT, *OK_TOKENS, "--resume"], "--resume needs --out"),
    ([*TT, *OK_TOKENS, "--resume", "--out", "corrupt"], "not a readable moescale checkpoint"),
    ([*TT, *OK_TOKENS, "--out", "used"], "already holds a run"),
    ([*TT, *OK_TOKENS, "--out", "a_file"], "is a file"),
    (["--arch", "arch_huge.json", *OK_TOKENS, "--threads", "1", "--out", "big"],
     "choose a smaller architecture"),
    (["--arch", "arch_frac.json", *OK_TOKENS], "--experts must be a non-negative integer"),
    ([*TT, *OK_TOKENS, "--capacity-factor", "nan"], "--capacity-factor must be a number"),
    ([*TT, *OK_TOKENS, "--capacity-factor", "0"], "--capacity-factor must be >"),
    ([*TT, *OK_TOKENS, "--seed", "-1"], "--seed"),
    ([*TT, *OK_TOKENS, "--threads", "0"], "--threads"),
    (["--preset", "tiny", *OK_TOKENS, "--batch-tokens", "0"], "--batch-tokens"),
    (["--preset", "tiny", *OK_TOKENS, "--seq-len", "1"], "--seq-len"),
    ([*OK_TOKENS], "no architecture given"),
    (["--preset", "tiny", *OK_TOKENS, "--schedule", "linear"], "linear"),
]


@needs_torch
@pytest.mark.parametrize("args, message", TRAIN, ids=[" ".join(a)[-60:] for a, _ in TRAIN])
def test_train_bad_inputs(bad_input, args, message):
    bad_input(["train", *args], message)


@needs_torch
def test_a_diverging_run_stops_with_a_clear_error(tmp_path, monkeypatch, capsys):
    """NaN loss: exit 2, one line naming the step, the log records why; no `null` result."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOESCALE_CACHE", str(tmp_path / "cache"))
    code, out, err = run_cli(["train", *TT, "--tokens", "8192", "--lr", "1e30", "--out", "run",
                              "--json"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("Error: training diverged at step ") and err.count("\n") == 1
    events = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "diverged" and events[-1]["step"] >= 1


def test_training_diverged_is_a_moescale_error_with_the_step():
    from moescale.errors import MoescaleError, TrainingDiverged

    exc = TrainingDiverged(7, "training loss", float("nan"))
    assert isinstance(exc, MoescaleError) and exc.step == 7 and "step 7" in str(exc)


# ----- click's own errors --------------------------------------------------------------------

CLICK = [
    (["nosuch"], "No such command 'nosuch'"),
    (["--nosuch"], "No such option"),
    (["count", "--nosuch"], "No such option"),
    (["train", "--preset", "tiny"], "--tokens"),
    (["count", "--layers", "x"], "not a valid integer"),
    (["count", "--layers", "1.5"], "not a valid integer"),
    (["fit"], "Missing"),
    (["fit", "--law", "chinchilla"], "runs file"),
    (["fit", "runs.csv"], "Missing option '--law'"),
    (["predict", "--N"], "requires an argument"),
    (["fit", "runs.csv", "--law"], "requires an argument"),
    (["count", "--ffn-type", "foo"], "'foo' is not one of"),
    (["fit", "runs.csv", *CH, "--bootstrap", "x"], "not a valid integer"),
    (["fit", "runs.csv", *CH, "--method", "foo"], "'foo' is not one of"),
    (["train", "--preset", "tiny", "--tokens", "1e4", "--schedule", "foo"], "'foo' is not one of"),
    (["-x"], "No such option"),
    (["count", "--json=1"], "does not take a value"),
    (["plann"], "No such command"),
]


@pytest.mark.parametrize("args, message", CLICK, ids=[" ".join(a) for a, _ in CLICK])
def test_click_errors_are_one_line(bad_input, args, message):
    bad_input(args, message)


def test_no_arguments_prints_the_help(capsys):
    code, out, err = run_cli([], capsys)
    assert code == 0 and "Commands:" in out and err == ""
