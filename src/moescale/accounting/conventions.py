"""Named counting conventions: which parameters count as ``N`` and how FLOPs per token are counted.

Calculators disagree by up to ~30 % on the same MoE (e.g. embeddings, router and
attention-score FLOPs in or out) because
each makes different choices. Every choice is an explicit field here, and every scaling law
declares the convention it was fitted under.

Components (see :mod:`moescale.accounting.counting`): ``embedding``, ``attention``, ``attention_scores``
(FLOPs only), ``dense_ffn``, ``routed_experts``, ``shared_experts``, ``router``, ``norms``,
``unembedding`` (the logits matmul; no parameters of its own when embeddings are tied).

FLOP rules:
- ``"matmul"``: the sum of each counted component's matmul FLOPs (2 per multiply-add),
  forward × ``backward_factor`` for training (3 = forward + 2× for the backward pass).
- ``"6N"``: ``6 · N_active`` (the convention's active parameters) plus, if
  ``attention_scores``, 3× the forward attention-score FLOPs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from moescale.errors import MoescaleError

ALL = frozenset({"embedding", "attention", "dense_ffn", "routed_experts", "shared_experts",
                 "router", "norms", "unembedding"})
NON_EMBEDDING = ALL - {"embedding", "unembedding"}
MATMUL_WEIGHTS = frozenset({"attention", "dense_ffn", "routed_experts", "shared_experts"})


@dataclass(frozen=True)
class Convention:
    """How parameters and FLOPs are counted.

    Attributes
    ----------
    param_components : components whose parameters make up ``N`` and ``N_active``.
    flop_rule : ``"matmul"`` (per-component matmuls) or ``"6N"`` (6 × active parameters).
    flop_components : for ``"matmul"``, the components whose matmuls are counted.
    attention_scores : count ``QKᵀ`` and ``AV`` FLOPs (they grow with context length).
    causal_halving : a causal mask halves attention-score work at training time.
    backward_factor : training FLOPs = forward × this (3: backward costs twice the forward).
    """

    name: str
    description: str
    param_components: frozenset[str]
    flop_rule: str = "matmul"
    flop_components: frozenset[str] = ALL - {"embedding", "norms"}
    attention_scores: bool = True
    causal_halving: bool = True
    backward_factor: float = 3.0

    def with_(self, **changes: object) -> Convention:
        """A modified copy, e.g. ``EXACT.with_(causal_halving=False)``."""
        return dataclasses.replace(self, **changes)


EXACT = Convention(
    "exact",
    "Every parameter (embeddings, norms, biases, router) counts. FLOPs are every matmul: "
    "projections, FFNs, top-k experts, router (2·d·E), logits (2·d·V), attention scores "
    "with causal halving; the embedding lookup costs nothing.",
    param_components=ALL,
)
MEGATRON = Convention(
    "megatron",
    "Megatron-LM / NeMo: all parameters; matmul FLOPs with causal halving and logits, "
    "but no router FLOPs.",
    param_components=ALL,
    flop_components=ALL - {"embedding", "norms", "router"},
)
HOLISTIC = Convention(
    "holistic",
    "Wan et al. 2026 (arXiv 2603.21862, Appendix A): N and N_a exclude embeddings, router and "
    "norms; M = 6·N_a + 6·S·N_q·d_qkv·L (attention over the full sequence S with coefficient "
    "6, i.e. the causally halved score term); no logits.",
    param_components=MATMUL_WEIGHTS,
    flop_rule="6N",
)
CHINCHILLA = Convention(
    "chinchilla",
    "Hoffmann et al. 2022 / joint-MoE law (Ludziejewski et al. 2025, Eq. 9/10): N counts the "
    "weight matrices (attention, FFNs, experts) plus input embedding and unembedding; router "
    "and norms are ignored; training FLOPs = 6·N_active·D; no attention term.",
    param_components=MATMUL_WEIGHTS | {"embedding", "unembedding"},
    flop_rule="6N",
    attention_scores=False,
)
KAPLAN = Convention(
    "kaplan",
    "Kaplan et al. 2020: non-embedding parameters; training FLOPs = 6·N + 6·L·S·d_attn "
    "(the context term with causal halving); no logits.",
    param_components=NON_EMBEDDING,
    flop_rule="6N",
)

CONVENTIONS: dict[str, Convention] = {c.name: c for c in (EXACT, MEGATRON, HOLISTIC, CHINCHILLA, KAPLAN)}


def get_convention(name: str | Convention) -> Convention:
    """Look up a convention by name (a ``Convention`` passes through)."""
    if isinstance(name, Convention):
        return name
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise MoescaleError(
            f"unknown convention {name!r}; choose one of {', '.join(CONVENTIONS)}"
        ) from None
