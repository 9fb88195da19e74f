"""Measured matmul FLOPs (torch FlopCounterMode) of a forward + backward pass equal the
``exact`` convention without causal halving.

What FlopCounterMode sees (fp32, CPU, eager attention, eager experts):
- every ``Linear`` as mm/addmm: 2·in·out per token forward, twice that backward (input and
  weight gradients) — projections, dense FFNs, shared experts and their gate, router, logits;
- attention as two full ``bmm`` (QKᵀ and AV over all S keys; the causal mask is applied by
  addition, so nothing is halved): 4·H·h·S per token per layer forward;
- routed experts only on the tokens routed to them: T·K token-expert pairs per MoE layer, the
  top-k count — the eager experts loop runs one mm per expert on its tokens. (transformers'
  ``grouped_mm`` experts are not counted by FlopCounterMode, hence ``experts_implementation``
  "eager".) Norms, softmax, activations and the embedding lookup are not matmuls.
So the prediction is ``count(arch, "exact", context=S, causal_halving=False)
.training_flops_per_token × B·S`` and it agrees exactly.
"""

from __future__ import annotations

import pytest

from conftest import TINY_HF_CONFIGS
from moescale.accounting.counting import count
from moescale.accounting.hf import from_hf_config

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

# gpt-oss/mistral tiny configs use full attention only: eager attention computes the full S×S
# product even on sliding-window layers, which the exact convention (rightly) does not count.
FAMILIES = ["mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v2", "deepseek_v3",
            "gpt_oss", "llama", "qwen3"]


def measured_training_flops(cfg: dict, batch: int, seq: int) -> int:
    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model(**cfg)
    model = transformers.AutoModelForCausalLM.from_config(
        config, attn_implementation="eager", experts_implementation="eager",
        dtype=torch.float32)
    tokens = torch.randint(0, cfg["vocab_size"], (batch, seq))
    with FlopCounterMode(display=False) as counter:
        model(tokens, labels=tokens).loss.backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("family", FAMILIES)
def test_flop_counter_matches_exact_convention(family):
    cfg = TINY_HF_CONFIGS[family]
    batch, seq = 2, 16
    predicted = count(from_hf_config(cfg), "exact", context=seq,
                      causal_halving=False).training_flops_per_token * batch * seq
    assert measured_training_flops(cfg, batch, seq) == pytest.approx(predicted, rel=1e-9)


def test_flop_counter_top_k_not_all_experts():
    """Changing top-k changes measured FLOPs by exactly the routed-expert share."""
    cfg = TINY_HF_CONFIGS["mixtral"]
    k1 = measured_training_flops(dict(cfg, num_experts_per_tok=1), 2, 16)
    k3 = measured_training_flops(dict(cfg, num_experts_per_tok=3), 2, 16)
    arch = from_hf_config(cfg)
    per_pair = 3 * 2 * arch.ffn_matrices * arch.hidden_size * arch.expert_ffn  # fwd+bwd
    assert k3 - k1 == 2 * per_pair * arch.n_moe_layers * 2 * 16
