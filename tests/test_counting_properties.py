"""Property tests: counts grow with every size, active ≤ total, dense models are fully active."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from moescale.accounting.architecture import Architecture
from moescale.accounting.conventions import CONVENTIONS
from moescale.accounting.counting import count
from moescale.errors import MoescaleError

SIZES = ["hidden_size", "n_layers", "n_experts", "top_k", "expert_ffn", "dense_ffn",
         "vocab_size", "seq_len", "n_shared_experts"]
FLOP_ONLY = {"seq_len"}


@st.composite
def moe_archs(draw) -> Architecture:
    heads = draw(st.sampled_from([1, 2, 4, 8]))
    experts = draw(st.integers(1, 64))
    layers = draw(st.integers(1, 12))
    return Architecture(
        hidden_size=heads * draw(st.integers(1, 32)) * 4, n_layers=layers,
        n_heads=heads, n_kv_heads=draw(st.sampled_from([h for h in (1, 2, 4, 8) if h <= heads])),
        vocab_size=draw(st.integers(1, 5000)), dense_ffn=draw(st.integers(1, 512)),
        n_experts=experts, top_k=draw(st.integers(1, experts)),
        expert_ffn=draw(st.integers(1, 256)), n_shared_experts=draw(st.integers(0, 2)),
        first_dense_layers=draw(st.integers(0, min(1, layers - 1))), seq_len=draw(st.integers(1, 4096)),
        ffn_type=draw(st.sampled_from(["swiglu", "gelu"])),
        tie_embeddings=draw(st.booleans()), qkv_bias=draw(st.booleans()),
        mlp_bias=draw(st.booleans()), router_bias=draw(st.booleans()))


def _grown(arch: Architecture, size: str) -> Architecture | None:
    value = getattr(arch, size)
    changes = {size: value + (arch.n_heads if size == "hidden_size" else 1)}
    if size == "top_k" and value == arch.n_experts:
        return None
    if size == "n_layers" and arch.first_dense_layers >= arch.n_layers:
        return None
    try:
        return dataclasses.replace(arch, **changes)
    except MoescaleError:
        return None


def _numbers(arch: Architecture, convention: str) -> tuple:
    c = count(arch, convention)
    return (c.total_params, c.active_params, c.params, c.params_active,
            c.training_flops_per_token, c.inference_flops_per_token)


@settings(max_examples=60, deadline=None)
@given(arch=moe_archs(), size=st.sampled_from(SIZES), convention=st.sampled_from(list(CONVENTIONS)))
def test_counts_monotone_in_every_size(arch, size, convention):
    bigger = _grown(arch, size)
    if bigger is None:
        return
    before, after = _numbers(arch, convention), _numbers(bigger, convention)
    for name, a, b in zip(("total", "active", "N", "N_a", "train", "infer"), before, after,
                          strict=True):
        assert b >= a, (size, name)
    if size in FLOP_ONLY:
        assert after[:4] == before[:4]
    elif size in ("n_experts",):
        assert after[0] > before[0]
    elif size != "top_k":
        assert after[0] > before[0] or size == "dense_ffn" and arch.n_dense_layers == 0


@settings(max_examples=60, deadline=None)
@given(arch=moe_archs(), convention=st.sampled_from(list(CONVENTIONS)))
def test_active_at_most_total(arch, convention):
    c = count(arch, convention)
    assert c.active_params <= c.total_params
    assert c.params_active <= c.params
    assert c.active_params_non_embedding <= c.total_params_non_embedding
    assert c.inference_flops_per_token <= c.training_flops_per_token
    for row in c.components:
        assert row.active_params <= row.params


@settings(max_examples=40, deadline=None)
@given(arch=moe_archs(), convention=st.sampled_from(list(CONVENTIONS)))
def test_dense_models_are_fully_active(arch, convention):
    dense = dataclasses.replace(arch, n_experts=0, top_k=0, expert_ffn=0, n_shared_experts=0,
                                first_dense_layers=0)
    c = count(dense, convention)
    assert c.active_params == c.total_params
    assert c.params_active == c.params
    assert c.active_params_non_embedding == c.total_params_non_embedding


@settings(max_examples=40, deadline=None)
@given(arch=moe_archs())
def test_top_k_equal_to_experts_is_fully_active(arch):
    c = count(dataclasses.replace(arch, top_k=arch.n_experts))
    assert c.active_params == c.total_params
