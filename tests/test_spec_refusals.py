"""Issue 19, "refuse before running": a bad sweep spec is refused by `sweep plan` and
`sweep run` before any run starts, with one line naming the problem (exit status 2), using
the trainer's own rules (TrainConfig) for every run's [train] settings."""

from __future__ import annotations

import pytest

from conftest import run_cli
from moescale.errors import MoescaleError
from moescale.sweeps.spec import MAX_RUNS, SweepSpec
from sweep_helpers import MICRO_BASE

BASE = {"n_layers": 1, "n_heads": 2, "vocab_size": 256, "seq_len": 32, "n_experts": 4,
        "top_k": 1, "expert_ffn": 32, "dense_ffn": 64}


def spec(**changes) -> dict:
    data = {"name": "refusals", "budgets": [2e8], "seeds": [0], "base": dict(BASE),
            "grid": {"hidden_size": [16, 24]},
            "train": {"batch_tokens": 256, "lr": 3e-3, "eval_tokens": 1024}}
    for key, value in changes.items():
        if key == "train":
            data["train"] |= value
        else:
            data[key] = value
    return data


@pytest.fixture()
def data_files(tmp_path):
    binary = tmp_path / "weights.dat"  # .bin/.npy are token files now
    binary.write_bytes(bytes(range(256)) * 64)
    return {"missing": str(tmp_path / "no-such-corpus.txt"), "binary": str(binary)}


# (changes to a valid spec, fragment the one-line message must contain)
TRAIN_CATALOGUE = [
    ({"schedule": "linear-ish"}, "`schedule` must be one of"),
    ({"tokenizer": "sentencepiece"}, "sentencepiece"),
    ({"device": "tpu"}, "`device` 'tpu' is not supported"),
    ({"eval_every": 0}, "`eval_every` must be at least 1"),
    ({"seq_len": 1}, "seq_len"),
    ({"grad_accum": 0}, "`grad_accum` must be positive"),
    ({"grad_accum": -1}, "`grad_accum` must be positive"),
    ({"betas": [0.9, 1.5]}, "betas must be two numbers in [0, 1)"),
    ({"betas": [-0.1, 0.9]}, "betas must be two numbers in [0, 1)"),
    ({"warmup_fraction": 1.5}, "`warmup_fraction` must be a finite number in"),
    ({"decay_fraction": 2.0}, "`decay_fraction` must be a finite number in"),
    ({"val_fraction": 1.2}, "`val_fraction` must be a finite number in"),
    ({"min_lr_ratio": 3}, "`min_lr_ratio` must be a finite number in"),
    ({"data": 5}, "`data` must be"),
    ({"log_every": 0}, "`log_every` must be positive"),
    ({"tokenizer": "bpe", "vocab_size": 0}, "vocab_size = 0 is not a BPE vocabulary"),
]


@pytest.mark.parametrize("train, fragment", TRAIN_CATALOGUE,
                         ids=[next(iter(t)) + "=" + repr(next(iter(t.values())))
                              for t, _ in TRAIN_CATALOGUE])
def test_bad_train_values_are_refused_by_the_trainers_rules(train, fragment):
    with pytest.raises(MoescaleError) as err:
        SweepSpec.from_dict(spec(train=train))
    message = str(err.value)
    assert fragment in message and "\n" not in message
    assert "run (budget 2e+08" in message  # names the run it found it in


@pytest.mark.parametrize("which, fragment", [("missing", "not found"),
                                              ("binary", "binary file")])
def test_missing_or_binary_data_files_are_refused(which, fragment, data_files):
    with pytest.raises(MoescaleError, match=fragment):
        SweepSpec.from_dict(spec(train={"data": data_files[which]}))


# (a whole-spec change, fragment)
SPEC_CATALOGUE = [
    ({"convention": []}, "convention [] is not one of"),
    ({"convention": "flops-ish"}, "is not one of"),
    ({"budgets": [1e300]}, "more than the trainer's limit"),
    ({"points": [{"hidden_size": 16}], "grid": {"hidden_size": [16, 24]}},
     "hidden_size set both in [grid] and in [[points]]"),
    ({"holistic": {"m_over_na": [], "n_over_na": [4.0]}}, "[holistic] m_over_na is empty"),
    ({"base": BASE | {"vocab_size": 0}, "train": {"tokenizer": "bpe"}},
     "vocab_size = 0 is not a BPE vocabulary"),
    ({"grid": {"hidden_size": list(range(16, 16 + 1000)), "lr": [1e-3 * (i + 1) for i in range(200)]}},
     f"more than the {MAX_RUNS:,} a sweep may hold"),
]


@pytest.mark.parametrize("changes, fragment", SPEC_CATALOGUE,
                         ids=[next(iter(c)) for c, _ in SPEC_CATALOGUE])
def test_bad_specs_are_refused_in_one_line(changes, fragment):
    with pytest.raises(MoescaleError) as err:
        SweepSpec.from_dict(spec(**changes))
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_a_valid_spec_passes_and_bpe_vocab_is_kept():
    runs = SweepSpec.from_dict(spec(train={"tokenizer": "bpe", "vocab_size": 512}),).expand()
    assert len(runs) == 2 and {r.architecture["vocab_size"] for r in runs} == {512}


def test_huge_grid_is_counted_not_expanded(monkeypatch):
    from moescale.sweeps import spec as spec_module

    huge = spec(grid={"hidden_size": list(range(16, 1016)), "lr": [1e-3] * 1 + [2e-3] * 0,
                      "weight_decay": [0.01 * i for i in range(1, 1001)]})
    built = []
    monkeypatch.setattr(spec_module, "run_id", lambda *a: built.append(a) or "x")
    with pytest.raises(MoescaleError, match="makes 1,000,000 runs"):
        SweepSpec.from_dict(huge)
    assert built == []  # counted, not expanded: not one run was built (no clock: see
    #                     benchmarks/bench_spec_expand.py for the speed of expansion)


def test_a_large_grid_expands_to_distinct_runs():
    grid = {"hidden_size": [16, 24, 32, 48, 64, 96, 128, 192, 256, 384],
            "lr": [1e-3 * (i + 1) for i in range(10)]}
    big = spec(grid=grid, seeds=list(range(10)),
               budgets=[2e9 * 2**i for i in range(10)])
    runs = SweepSpec.from_dict(big).expand()
    assert len(runs) == 10_000 and len({r.id for r in runs}) == 10_000
    # its speed is measured by benchmarks/bench_spec_expand.py, not asserted by a clock


def _write(tmp_path, text: str):
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


MICRO = MICRO_BASE + """
[grid]
hidden_size = [16]
"""


@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize("train, fragment", [("grad_accum = 0", "grad_accum must be positive"),
                                              ('device = "tpu"', "'tpu' is not supported"),
                                              ("eval_every = 0", "eval_every must be at least 1")])
def test_cli_refuses_before_anything_runs(tmp_path, capsys, command, train, fragment):
    path = _write(tmp_path, f'name = "x"\nbudgets = [2e8]\n{MICRO}\n[train]\n'
                            f'batch_tokens = 256\n{train}\n')
    store = tmp_path / "s.db"
    args = ["sweep", command, str(path), "--store", str(store)]
    code, out, err = run_cli(args + (["--no-estimate"] if command == "plan" else []), capsys)
    assert code == 2 and fragment in err
    assert len(err.strip().splitlines()) == 1 and not out
    assert not store.exists() and not (tmp_path / "s_runs").exists()  # nothing started


def test_threads_are_capped_at_the_cpus_with_a_note(capsys):
    from moescale.cli._options import cap_threads
    from moescale.sweeps.executors.local import available_cpus

    cpus = available_cpus()
    assert cap_threads(1000) == cpus
    assert f"--threads 1000 is more than the {cpus} CPU(s) available" in capsys.readouterr().err
    assert cap_threads(1) == 1 and capsys.readouterr().err == ""


def test_control_characters_in_names_are_escaped(tmp_path, capsys):
    path = _write(tmp_path, 'name = "evil\\u001b[2J\\u001b]0;pwned\\u0007"\nbudgets = [2e8]\n'
                            f'{MICRO}\n[train]\nbatch_tokens = 256\n')
    code, out, err = run_cli(["sweep", "plan", str(path), "--no-estimate",
                              "--store", str(tmp_path / "none.db")], capsys)
    assert code == 0
    assert "\x1b" not in out + err and "\x07" not in out + err
    assert "evil\\x1b[2J" in out


def test_spec_refuses_renormalised_top1_and_records_the_default():
    from moescale.sweeps.spec import SweepSpec

    spec = {"name": "r", "budgets": [1e9], "base": {"hidden_size": 32, "n_layers": 2,
            "n_heads": 2, "n_experts": 4, "top_k": 1, "expert_ffn": 32, "seq_len": 16},
            "train": {"batch_tokens": 64, "seq_len": 16}}
    runs = SweepSpec.from_dict(spec).expand()
    assert runs[0].train["norm_topk_prob"] is False
    with pytest.raises(MoescaleError, match="norm_topk_prob"):
        SweepSpec.from_dict({**spec, "train": {**spec["train"], "norm_topk_prob": True}})


@pytest.mark.parametrize(("extra", "message"), [
    ({"base_seq_len": 0}, r"\[base\] seq_len must be a whole number of at least 2"),
    ({"compile": "yes"}, "`compile` must be true or false"),
])
def test_silent_settings_are_refused(tmp_path, extra, message):
    """An audit found `seq_len = 0` silently trained at 256 and `compile = "yes"` accepted."""
    from sweep_helpers import micro_spec

    path = micro_spec(tmp_path, train='compile = "yes"' if "compile" in extra else "")
    if "base_seq_len" in extra:
        path.write_text(path.read_text().replace("seq_len = 32", "seq_len = 0"))
    with pytest.raises(MoescaleError, match=message):
        SweepSpec.load(path)


def test_run_into_a_file_that_is_no_store_prints_only_the_error(tmp_path, capsys):
    """An audit found `sweep run SPEC --store notes.txt` print its header before the error."""
    from sweep_helpers import micro_spec

    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    code, out, err = run_cli(["sweep", "run", str(micro_spec(tmp_path)), "--store", str(notes)],
                             capsys)
    assert code == 2 and not out
    assert err.startswith("Error:") and len(err.strip().splitlines()) == 1
    assert notes.read_text() == "my notes\n"


def test_retire_with_another_sweeps_spec_is_an_error(tmp_path, capsys):
    """An audit found `sweep retire` of another sweep's spec report "retired 0"."""
    from moescale.sweeps.store import SweepStore
    from sweep_helpers import micro_spec

    store = tmp_path / "s.db"
    with SweepStore(store) as s:
        s.add_runs(SweepSpec.load(micro_spec(tmp_path)).expand())
    other = micro_spec(tmp_path, name="other")
    code, out, err = run_cli(["sweep", "retire", str(other), "--store", str(store)], capsys)
    assert code == 2 and "holds no run of sweep 'other'" in err and "'micro'" in err


def test_a_warmup_longer_than_the_run_is_refused(tmp_path):
    from sweep_helpers import micro_spec

    with pytest.raises(MoescaleError, match="warmup_steps = 100000 is not shorter than"):
        SweepSpec.load(micro_spec(tmp_path, train="warmup_steps = 100000"))
