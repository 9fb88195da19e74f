"""Issue 32: training settings in one place. ``TrainConfig`` holds the defaults and the
accepted keys; a sweep's ``[train]`` and ``moescale train`` only override them."""

from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import run_cli
from moescale.sweeps.spec import DEFAULT_TRAIN, ROUTING_KEYS, TRAIN_KEYS, SweepSpec
from moescale.training.config import RUN_FIELDS, SPEC_FIELDS, TRAIN_DEFAULTS, TrainConfig

# one valid value, not the default, for every TrainConfig field a spec may set; a field added
# to TrainConfig without an entry here fails the first test (so the spec can never drift)
SAMPLES = {"batch_tokens": 512, "seq_len": 32, "grad_accum": 2, "lr": 1e-3, "min_lr_ratio": 0.2,
           "schedule": "cosine", "warmup_fraction": 0.1, "warmup_steps": 2,
           "decay_fraction": 0.3, "cooldown": "1-sqrt", "betas": [0.9, 0.99],
           "weight_decay": 0.05, "grad_clip": 0.5, "aux_loss_coef": 0.02, "z_loss_coef": 0.0,
           "router_loss_reduction": "mean", "bias_update_rate": 2e-3, "eval_every": 5,
           "eval_tokens": 512, "checkpoint_every": 5, "log_every": 2, "data": "ROWS",
           "tokenizer": "bytes", "vocab_size": 256, "text_column": "body", "val_fraction": 0.1,
           "compile": True, "device": "cpu", "router": "sigmoid", "norm_topk_prob": True,
           "capacity_factor": 1.25, "trackers": ["tensorboard"]}
SEQUENCES = ("betas", "trackers")  # TOML lists, tuples in TrainConfig


def _spec(train: dict) -> dict:
    return {"name": "s", "budgets": [1e10],
            "base": {"n_layers": 1, "n_heads": 2, "hidden_size": 32, "vocab_size": 256,
                     "n_experts": 4, "top_k": 2, "expert_ffn": 64, "dense_ffn": 64},
            "train": train}


def test_every_config_field_is_a_train_key_or_owned_by_the_run():
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(SPEC_FIELDS) | set(RUN_FIELDS) == fields
    assert not set(SPEC_FIELDS) & set(RUN_FIELDS)
    assert set(TRAIN_KEYS) == set(SPEC_FIELDS) | set(ROUTING_KEYS) == set(SAMPLES)


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_every_train_key_is_accepted_and_reaches_the_run(tmp_path, key):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"body": f"document {i} " * 40}) + "\n"
                            for i in range(40)))
    value = SAMPLES[key]
    train = {key: str(rows) if value == "ROWS" else value}
    if key == "text_column":
        train["data"] = str(rows)
    if key == "checkpoint_every":
        train["eval_every"] = 5
    (run,) = SweepSpec.from_dict(_spec(train)).expand()
    expected = tuple(value) if key in SEQUENCES else train[key]
    got = run.train[key]
    assert (tuple(got) if key in SEQUENCES else got) == expected
    if key not in ROUTING_KEYS:  # the worker builds its TrainConfig from the same dict
        options = {k: v for k, v in run.train.items() if k not in ROUTING_KEYS}
        assert getattr(TrainConfig(**options), key) == (tuple(value) if key in SEQUENCES
                                                        else train[key])


def test_defaults_agree():
    config = TrainConfig()
    for key, value in DEFAULT_TRAIN.items():  # what a spec writes into each run
        assert getattr(config, key) == value == TRAIN_DEFAULTS[key]
    (run,) = SweepSpec.from_dict(_spec({})).expand()
    options = {k: v for k, v in run.train.items() if k not in ROUTING_KEYS}
    built = TrainConfig(**options)
    for key in SPEC_FIELDS:  # a run with no [train] trains with TrainConfig's defaults
        if key != "seq_len":  # the spec resolves the context from [base]
            assert getattr(built, key) == TRAIN_DEFAULTS[key], key


def test_train_help_states_the_config_defaults(capsys):
    code, out, _ = run_cli(["train", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0
    assert f"else {TRAIN_DEFAULTS['batch_tokens']}]" in text
    assert f"else {TRAIN_DEFAULTS['lr']:g}]" in text
