"""Every validation rule of Architecture, tested for its message; conversions."""

from __future__ import annotations

import json

import pytest

from moescale.accounting.architecture import MLA, Architecture
from moescale.errors import MoescaleError

BASE = dict(hidden_size=64, n_layers=4, n_heads=4, dense_ffn=128)
MOE = dict(BASE, n_experts=8, top_k=2, expert_ffn=32)


def arch(**changes) -> Architecture:
    return Architecture(**{**MOE, **changes})


@pytest.mark.parametrize("field", ["hidden_size", "n_layers", "n_heads", "vocab_size", "seq_len",
                                   "moe_layer_step"])
@pytest.mark.parametrize("value", [0, -1, 2.5, True, "8"])
def test_positive_fields(field, value):
    with pytest.raises(MoescaleError, match=f"`{field}` must be a positive integer, got"):
        arch(**{field: value})


@pytest.mark.parametrize("field", ["dense_ffn", "n_experts", "top_k", "expert_ffn",
                                   "n_shared_experts", "first_dense_layers"])
@pytest.mark.parametrize("value", [-1, 1.5, False])
def test_non_negative_fields(field, value):
    with pytest.raises(MoescaleError, match=f"`{field}` must be a non-negative integer, got"):
        arch(**{field: value})


@pytest.mark.parametrize("field", ["n_kv_heads", "head_dim", "shared_expert_ffn",
                                   "sliding_window"])
@pytest.mark.parametrize("value", [0, -4, 3.0, True])
def test_optional_positive_fields(field, value):
    with pytest.raises(MoescaleError, match=f"`{field}` must be a positive integer or omitted"):
        arch(**{field: value})


@pytest.mark.parametrize("field, choices", [("ffn_type", "swiglu, geglu, gelu, relu"),
                                            ("norm_type", "rmsnorm, layernorm"),
                                            ("qk_norm", "none, head, full")])
def test_choice_fields(field, choices):
    with pytest.raises(MoescaleError, match=f"`{field}` must be one of {choices}, got 'bogus'"):
        arch(**{field: "bogus"})


def test_heads_must_divide_hidden_when_head_dim_is_implied():
    with pytest.raises(MoescaleError, match="`n_heads`=3 does not divide `hidden_size`=64; choose a "
                                            "divisor or set `head_dim` explicitly"):
        arch(n_heads=3, n_kv_heads=1)
    assert arch(n_heads=3, n_kv_heads=1, head_dim=16).d_head == 16
    assert arch(n_heads=3, mla=MLA(8, 8, 8, 8)).mla is not None


@pytest.mark.parametrize("kv", [3, 8])
def test_kv_heads_must_divide_heads(kv):
    with pytest.raises(MoescaleError, match=f"`n_kv_heads`={kv} must divide `n_heads`=4"):
        arch(n_kv_heads=kv)


@pytest.mark.parametrize("mla, field", [(MLA(0, 8, 8, 8), "kv_lora_rank"),
                                        (MLA(8, -1, 8, 8), "qk_nope_head_dim"),
                                        (MLA(8, 8, 8, 8, q_lora_rank=0), "q_lora_rank"),
                                        (MLA(None, 8, 8, 8), "kv_lora_rank")])
def test_mla_fields_positive(mla, field):
    with pytest.raises(MoescaleError, match=f"mla.{field} must be a positive integer"):
        arch(mla=mla)


def test_mla_from_dict():
    a = arch(mla={"kv_lora_rank": 8, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4,
                  "v_head_dim": 8})
    assert a.mla == MLA(8, 8, 4, 8) and a.mla.qk_head_dim == 12


def test_sliding_layers_rules():
    with pytest.raises(MoescaleError, match=r"`sliding_layers` \[4\] are outside 0..3"):
        arch(sliding_window=8, sliding_layers=[0, 4])
    with pytest.raises(MoescaleError, match="`sliding_layers` are given but `sliding_window` is not"):
        arch(sliding_layers=[0])
    assert arch(sliding_window=8, sliding_layers=[1]).sliding_layers == (1,)


def test_first_dense_layers_at_most_layers():
    with pytest.raises(MoescaleError, match="`first_dense_layers`=5 exceeds `n_layers`=4; lower "
                                            "`first_dense_layers` or add layers"):
        arch(first_dense_layers=5)


def test_moe_layers_rules():
    with pytest.raises(MoescaleError, match=r"`moe_layers` \[7\] are outside 0..3"):
        arch(moe_layers=[1, 7])
    with pytest.raises(MoescaleError, match="`moe_layers` lists a layer twice"):
        arch(moe_layers=[1, 1])
    a = arch(moe_layers=[0, 3])
    assert a.moe_layers == (0, 3) and a.layer_is_moe == (True, False, False, True)


def test_dense_model_rules():
    with pytest.raises(MoescaleError, match="`top_k` and `n_shared_experts` need routed experts"):
        Architecture(**BASE, top_k=2)
    with pytest.raises(MoescaleError, match="`top_k` and `n_shared_experts` need routed experts"):
        Architecture(**BASE, n_shared_experts=1)
    with pytest.raises(MoescaleError, match=r"a dense model needs `dense_ffn` > 0"):
        Architecture(**{**BASE, "dense_ffn": 0})


@pytest.mark.parametrize("top_k", [0, 9])
def test_top_k_range(top_k):
    with pytest.raises(MoescaleError, match=f"`top_k`={top_k} must be between 1 and `n_experts`=8"):
        arch(top_k=top_k)


def test_moe_rules():
    with pytest.raises(MoescaleError, match=r"an MoE model needs `expert_ffn` > 0"):
        arch(expert_ffn=0)
    with pytest.raises(MoescaleError, match="`n_experts` > 0 but the layer pattern has no MoE "
                                            "layer; lower `first_dense_layers`"):
        arch(first_dense_layers=4)
    with pytest.raises(MoescaleError, match="`n_experts` > 0 but the layer pattern has no MoE"):
        arch(moe_layers=[])
    with pytest.raises(MoescaleError, match=r"2 layer\(s\) are dense but `dense_ffn` is 0; set "
                                            "`dense_ffn`"):
        arch(dense_ffn=0, moe_layer_step=2)
    with pytest.raises(MoescaleError, match="`shared_expert_gate` needs `n_shared_experts` > 0"):
        arch(shared_expert_gate=True)
    assert arch(dense_ffn=0).n_moe_layers == 4


def test_layer_pattern_and_derived_values():
    a = arch(first_dense_layers=1, moe_layer_step=2, n_shared_experts=1)
    assert a.layer_is_moe == (False, False, True, False)
    assert (a.n_moe_layers, a.n_dense_layers, a.is_moe) == (1, 3, True)
    # granularity against the dense model of equal active size: (K·d_e + n_s·d_s)/d_e = 2 + 1
    assert (a.activated_experts, a.shared_ratio, a.granularity) == (3, 1 / 3, 3.0)
    assert (a.kv_heads, a.d_head, a.shared_ffn, a.ffn_matrices) == (4, 16, 32, 3)


def test_immutable_and_replace_validates():
    a = arch()
    with pytest.raises(AttributeError):
        a.hidden_size = 8  # type: ignore[misc]
    with pytest.raises(MoescaleError, match="`top_k`=9"):
        a.replace(top_k=9)
    assert a.replace(name="x") == a  # the name does not take part in equality


def test_dict_and_json_round_trip(tmp_path):
    a = arch(moe_layers=[1, 2], sliding_window=8, sliding_layers=[0], mla=MLA(8, 8, 4, 8, 16),
             name="m")
    assert Architecture.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    path = tmp_path / "arch.json"
    a.to_json(path)
    assert Architecture.from_json(path) == a
    path.write_text(json.dumps({"architecture": a.to_dict()}))
    assert Architecture.from_json(path) == a


def test_from_dict_errors(tmp_path):
    with pytest.raises(MoescaleError, match="unknown architecture field\\(s\\) bogus, layers; "
                                            "valid fields:"):
        Architecture.from_dict({**MOE, "bogus": 1, "layers": 2})
    with pytest.raises(MoescaleError, match="architecture is missing required field\\(s\\): "
                                            "n_heads"):
        Architecture.from_dict({"hidden_size": 64, "n_layers": 2})
    with pytest.raises(MoescaleError, match="mla: unknown field\\(s\\) rank; missing field"):
        Architecture.from_dict({**MOE, "mla": {"rank": 1}})
    with pytest.raises(MoescaleError, match="file not found"):
        Architecture.from_json(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(MoescaleError, match="is not valid JSON"):
        Architecture.from_json(bad)
    bad.write_text("3")
    with pytest.raises(MoescaleError, match="must hold a JSON object"):
        Architecture.from_json(bad)
