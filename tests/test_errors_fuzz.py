"""Fuzzing (hypothesis) of what users type and the files they give: number and size parsers,
fit files and architecture JSON. Any input gives a value or a MoescaleError — never another
exception, never a non-finite number."""

from __future__ import annotations

import json
import math
import warnings

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from moescale.accounting.architecture import Architecture
from moescale.errors import MoescaleError
from moescale.fitting.result import FitResult
from moescale.units import parse_bytes, parse_count, parse_number, parse_positive

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# text that looks like numbers, sizes and their near misses
number_like = st.from_regex(
    r"\s?[-+]?[0-9.]{0,6}([eE][-+]?[0-9]{0,4})?\s?([kKmMbBgGtT]|[kKmMgGtT]i?[bB]|nan|inf)?\s?",
    fullmatch=True)
anything = st.one_of(number_like, st.text(max_size=30), st.floats(allow_nan=True),
                     st.integers(), st.booleans(), st.none(), st.binary(max_size=10),
                     st.lists(st.integers(), max_size=3))


def _value_or_error(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return fn(*args, **kw)
        except MoescaleError:
            return None


@FUZZ
@given(text=anything)
def test_number_parsers_give_a_finite_value_or_a_moescale_error(text):
    for fn in (parse_number, parse_positive, parse_bytes, parse_count):
        value = _value_or_error(fn, text, "--x")
        if value is not None:
            assert math.isfinite(value)
            if fn is not parse_number:
                assert value > 0
            if fn is parse_count:
                assert isinstance(value, int)


@pytest.mark.parametrize("text, value", [
    ("1e21", 1e21), ("7B", 7e9), ("300M", 3e8), ("2.5k", 2500.0), (" 6e9 ", 6e9), (".5", 0.5),
    ("5.", 5.0), ("1E3", 1e3), ("+3", 3.0), ("2T", 2e12), (4, 4.0), (2.5, 2.5),
])
def test_positive_numbers_parse(text, value):
    assert parse_positive(text, "--x") == value


@pytest.mark.parametrize("text", ["1.2.3", "1..5", "nan", "inf", "-inf", "", " ", "1e", "e5",
                                  "1_000", "0x10", "1,000", "٣", "1e400", "7BB", "--1", "1 2",
                                  "NaN", "Infinity", "0", "-1", True, None, [1], float("nan"),
                                  float("inf")])
def test_bad_positive_numbers_are_errors(text):
    with pytest.raises(MoescaleError):
        parse_positive(text, "--x")


@pytest.mark.parametrize("text, value", [("80GB", 80e9), ("80GiB", 80 * 2**30), ("1.5TB", 1.5e12),
                                         ("1e11", 1e11), ("512 MiB", 512 * 2**20), ("1kb", 1e3)])
def test_sizes_parse(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["1..5GB", "1.2.3GB", "nanGB", "infGB", "80GG", "80 gigs", "",
                                  "GB", "-1GB", "0GB", "1e400B", "80g"])
def test_bad_sizes_are_errors(text):
    with pytest.raises(MoescaleError):
        parse_bytes(text)


def test_counts_must_be_whole():
    assert parse_count("2e6", "--tokens") == 2_000_000
    with pytest.raises(MoescaleError, match="whole number"):
        parse_count("1.5", "--tokens")
    with pytest.raises(MoescaleError, match="at most"):
        parse_count("1e40", "--tokens", maximum=1e15)


# ----- fit files -----------------------------------------------------------------------------

HOFFMANN = dict(A=406.4, B=410.7, E=1.69, alpha=0.34, beta=0.28)
VALID_FIT = {
    "law": "chinchilla", "convention": "chinchilla", "target": "loss", "params": HOFFMANN,
    "objective": {"name": "huber_log", "delta": 1e-3, "value": 0.1}, "optimizer": {},
    "data": {}, "train": {"rmse": 0.01, "n": 3}, "holdout": None, "derived": {"x": 0.5},
    "ci": {"alpha": [0.3, 0.4]}, "se": {"alpha": 0.01}, "ci_level": 0.95,
    "bootstrap_params": [HOFFMANN, HOFFMANN], "fixed": {}, "format": "moescale-fit/1",
}
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)
fit_keys = st.sampled_from(sorted(VALID_FIT))
param_keys = st.sampled_from(sorted(HOFFMANN))


@st.composite
def mutated_fits(draw):
    """A valid fit with a few fields replaced, dropped or nested values changed."""
    fit = json.loads(json.dumps(VALID_FIT))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "drop", "param", "boot", "law"]))
        if action == "replace":
            fit[draw(fit_keys)] = draw(json_values)
        elif action == "drop":
            fit.pop(draw(fit_keys), None)
        elif action == "param" and isinstance(fit.get("params"), dict):
            fit["params"][draw(param_keys)] = draw(json_values)
        elif action == "boot" and isinstance(fit.get("bootstrap_params"), list):
            fit["bootstrap_params"].append(draw(json_values))
        elif action == "law":
            fit["law"] = draw(st.sampled_from(["wang2024", "zhao2025", "nosuch", "", "CHINCHILLA"]))
    return fit


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return FitResult.load(path)
        except MoescaleError:
            return None


@FUZZ
@given(fit=mutated_fits())
def test_fit_files_load_or_raise_moescale_error(tmp_path, fit):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(fit))  # NaN/Infinity literals included, as Python writes them
    result = _load(path)
    if result is not None:  # whatever loads predicts a finite loss (or raises MoescaleError)
        law = result.law_object()
        assert all(math.isfinite(v) for v in result.params.values())
        try:
            value = float(law.predict(result.params, {"N": 7e9, "D": 1.4e12, "E": 8.0,
                                                      "N_active": 1e9, "N_a": 1e9, "G": 4.0,
                                                      "S": 0.2}, strict=True))
            assert math.isfinite(value)
            if result.bootstrap_params:
                lo, hi = result.predict_interval(N=7e9, D=1.4e12, E=8.0, N_active=1e9)
                assert math.isfinite(float(lo)) and math.isfinite(float(hi))
        except MoescaleError:
            pass


@FUZZ
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_as_a_fit_file(tmp_path, raw):
    path = tmp_path / "fit.json"
    path.write_bytes(raw)
    assert _load(path) is None


def test_the_valid_fit_loads(tmp_path):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(VALID_FIT))
    result = FitResult.load(path)
    assert result.params == HOFFMANN and len(result.bootstrap_params) == 2


# ----- architecture JSON ---------------------------------------------------------------------

TINY = dict(hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=256, dense_ffn=0,
            n_experts=4, top_k=2, expert_ffn=64, seq_len=64, name="tiny")
arch_fields = st.sampled_from([*TINY, "mla", "moe_layers", "sliding_layers", "sliding_window",
                               "ffn_type", "norm_type", "qk_norm", "tie_embeddings", "head_dim",
                               "n_shared_experts", "first_dense_layers", "moe_layer_step",
                               "shared_expert_gate", "bogus"])
arch_values = st.one_of(json_values, st.integers(-3, 2**25), st.integers(),
                        st.sampled_from([1e40, 0.5, 8.0, float("nan"), "swiglu", [0, 1], [5]]),
                        st.fixed_dictionaries({"kv_lora_rank": st.integers(-1, 10**6),
                                               "qk_nope_head_dim": st.integers(0, 64),
                                               "qk_rope_head_dim": st.integers(0, 64),
                                               "v_head_dim": json_values}))


@st.composite
def mutated_architectures(draw):
    data = dict(TINY)
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            data[draw(arch_fields)] = draw(arch_values)
        else:
            data.pop(draw(arch_fields), None)
    return data if draw(st.integers(0, 9)) else draw(json_values)


@FUZZ
@given(data=mutated_architectures(), wrap=st.booleans())
def test_architecture_json_loads_or_raises_moescale_error(tmp_path, data, wrap):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"architecture": data} if wrap else data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            arch = Architecture.from_json(path)
        except MoescaleError:
            return
    assume(arch is not None)
    from moescale.accounting.counting import count

    c = count(arch, "exact")  # a valid architecture is countable
    assert c.total_params > 0 and math.isfinite(c.training_flops_per_token)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_as_an_architecture(tmp_path, raw):
    path = tmp_path / "arch.json"
    path.write_bytes(raw)
    with pytest.raises(MoescaleError):
        Architecture.from_json(path)
