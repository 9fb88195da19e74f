"""An immutable, validated description of a decoder-only Mixture-of-Experts transformer.

It covers every dimension of the holistic paper (Wan et al. 2026, arXiv 2603.21862) — layers
``L = L_d + L_m``, hidden size ``d``, query/KV heads ``N_q, N_kv``, head dim ``d_qkv``, dense FFN
width ``d_d``, expert width ``d_m``, routed experts ``N_e``, top-k ``K``, shared experts,
FFN type, sequence length ``S`` — plus vocabulary, tying, biases, norms, general dense/MoE
layer patterns, sliding-window layers and DeepSeek's multi-head latent attention (MLA).

An ``Architecture`` knows nothing about scaling laws; :mod:`moescale.accounting.counting` counts it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moescale.errors import MoescaleError
from moescale.jsonio import read_json_object

FFN_TYPES = {"swiglu": 3, "geglu": 3, "gelu": 2, "relu": 2}  # matrices per FFN

# Upper limits of each size field: far beyond any model built so far (the largest have
# d ≈ 18k, ~130 layers, vocabularies of ~260k, 10M-token contexts, 256-384 routed experts;
# PEER used 1024² experts), so a value above them is a typo or a unit mistake (1e40 as a
# vocabulary), not a design. They also keep every count far inside float64.
MAX_EXPERTS = 2**20  # 1,048,576 routed (or shared) experts per MoE layer (PEER)
LIMITS: dict[str, int] = {
    "hidden_size": 2**18, "n_layers": 2**14, "n_heads": 2**16, "n_kv_heads": 2**16,
    "head_dim": 2**16, "vocab_size": 2**24, "seq_len": 2**30, "dense_ffn": 2**22,
    "expert_ffn": 2**22, "shared_expert_ffn": 2**22, "n_experts": MAX_EXPERTS,
    "top_k": MAX_EXPERTS, "n_shared_experts": MAX_EXPERTS, "first_dense_layers": 2**14,
    "moe_layer_step": 2**14, "sliding_window": 2**30,
}
MLA_LIMIT = 2**16  # every MLA rank and head dimension
MAX_PARAMS = 1e15  # parameters of one model: ~500x the largest built so far (moescale.units)
NORM_TYPES = {"rmsnorm": 1, "layernorm": 2}  # parameter vectors per norm (gain, bias)
QK_NORMS = ("none", "head", "full")


@dataclass(frozen=True)
class MLA:
    """Multi-head latent attention of DeepSeek-V2/V3 (low-rank q and kv projections).

    ``q_lora_rank=None`` means a plain ``d → H·(nope+rope)`` query projection (V2-Lite).
    The KV cache stores the latent: ``kv_lora_rank + qk_rope_head_dim`` values per token per layer.
    """

    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    q_lora_rank: int | None = None

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim


@dataclass(frozen=True)
class Architecture:
    """A decoder-only (MoE) transformer. Sizes are counts of scalars; no units beyond that.

    Layer pattern: layer ``i`` (0-based) is an MoE layer when ``n_experts > 0``,
    ``i >= first_dense_layers`` and ``(i + 1 - first_dense_layers) % moe_layer_step == 0``,
    unless ``moe_layers`` lists the MoE layer indices explicitly. All other layers use a
    dense FFN of width ``dense_ffn``.
    """

    hidden_size: int  # d
    n_layers: int  # L = L_d + L_m
    n_heads: int  # N_q
    vocab_size: int = 32000
    n_kv_heads: int | None = None  # N_kv; None → n_heads (multi-head attention)
    head_dim: int | None = None  # d_qkv; None → hidden_size / n_heads
    dense_ffn: int = 0  # d_d, width of dense-layer FFNs (0 only if every layer is MoE)
    n_experts: int = 0  # N_e routed experts per MoE layer; 0 → dense model
    top_k: int = 0  # K routed experts per token
    expert_ffn: int = 0  # d_m, width of one routed expert
    n_shared_experts: int = 0
    shared_expert_ffn: int | None = None  # width of one shared expert; None → expert_ffn
    first_dense_layers: int = 0  # L_d leading dense layers (DeepSeek first_k_dense_replace)
    moe_layer_step: int = 1  # after the leading dense layers, every k-th layer is MoE
    moe_layers: tuple[int, ...] | None = None  # explicit MoE layer indices (overrides the above)
    ffn_type: str = "swiglu"
    seq_len: int = 4096  # S, training context length
    tie_embeddings: bool = False
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False  # biases in dense FFNs and experts
    router_bias: bool = False
    shared_expert_gate: bool = False  # Qwen2-MoE's sigmoid gate on the shared expert (d → 1)
    qk_norm: str = "none"  # "head": RMSNorm(head_dim) (Qwen3); "full": RMSNorm over all heads (OLMoE)
    norm_type: str = "rmsnorm"
    attention_sinks: bool = False  # gpt-oss: one learned logit per head per layer
    sliding_window: int | None = None
    sliding_layers: tuple[int, ...] = ()  # layers with sliding-window attention
    mla: MLA | None = None
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name in ("moe_layers", "sliding_layers"):
            value = getattr(self, name)
            if value is None and name == "moe_layers":
                continue
            if not isinstance(value, (list, tuple)):
                raise MoescaleError(f"{name} must be a list of layer indices, got {value!r}"[:200])
            object.__setattr__(self, name, tuple(value))
        if isinstance(self.mla, dict):
            fields = {f.name for f in dataclasses.fields(MLA)}
            unknown = sorted(str(k) for k in self.mla if k not in fields)
            missing = sorted(f for f in fields - set(self.mla) if f != "q_lora_rank")
            if unknown or missing:
                raise MoescaleError(
                    f"mla: {'unknown field(s) ' + ', '.join(unknown) if unknown else ''}"
                    f"{'; ' if unknown and missing else ''}"
                    f"{'missing field(s) ' + ', '.join(missing) if missing else ''}")
            object.__setattr__(self, "mla", MLA(**self.mla))
        elif self.mla is not None and not isinstance(self.mla, MLA):
            raise MoescaleError(f"mla must be an object of MLA ranks or null, got {self.mla!r}"[:200])
        _validate(self)

    # ----- resolved dimensions -------------------------------------------------------------
    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def d_head(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.n_heads

    @property
    def shared_ffn(self) -> int:
        return self.expert_ffn if self.shared_expert_ffn is None else self.shared_expert_ffn

    @property
    def ffn_matrices(self) -> int:
        """Weight matrices per FFN: 3 for gated (SwiGLU), 2 for plain (GELU)."""
        return FFN_TYPES[self.ffn_type]

    @property
    def is_moe(self) -> bool:
        return self.n_moe_layers > 0

    @property
    def layer_is_moe(self) -> tuple[bool, ...]:
        """One flag per layer: True where the FFN is a mixture of experts."""
        if self.n_experts == 0:
            return (False,) * self.n_layers
        if self.moe_layers is not None:
            chosen = set(self.moe_layers)
            return tuple(i in chosen for i in range(self.n_layers))
        first, step = self.first_dense_layers, self.moe_layer_step
        return tuple(i >= first and (i + 1 - first) % step == 0 for i in range(self.n_layers))

    @property
    def n_moe_layers(self) -> int:
        """L_m."""
        return sum(self.layer_is_moe)

    @property
    def n_dense_layers(self) -> int:
        """L_d (all non-MoE layers, leading or interleaved)."""
        return self.n_layers - self.n_moe_layers

    @property
    def activated_experts(self) -> int:
        """G of the comprehensive law (Zhao et al. 2025): shared + routed experts per token."""
        return self.top_k + self.n_shared_experts

    @property
    def shared_ratio(self) -> float:
        """S of the comprehensive law: shared experts as a fraction of activated experts."""
        g = self.activated_experts
        return self.n_shared_experts / g if g else 0.0

    @property
    def granularity(self) -> float:
        """Granularity ``G`` (Krajewski et al. 2024, ``d_ff/d_expert``) measured against the
        dense model of equal active size: the FFN width one token uses,
        ``top_k·expert_ffn + n_shared·shared_ffn``, over one routed expert's width. 8 experts
        top-1 as wide as that FFN are ``G = 1``; 16 of half width top-2 are ``G = 2``; a dense
        model is ``G = 1``."""
        if not self.is_moe or not self.expert_ffn:
            return 1.0
        used = self.top_k * self.expert_ffn + self.n_shared_experts * self.shared_ffn
        return used / self.expert_ffn

    # ----- conversion ----------------------------------------------------------------------
    def replace(self, **changes: Any) -> Architecture:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; ``Architecture.from_dict`` reads it back."""
        out = dataclasses.asdict(self)
        for key in ("moe_layers", "sliding_layers"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture:
        """Build from a dict of field names; unknown keys are an error naming them."""
        if not isinstance(data, dict):
            raise MoescaleError(f"an architecture must be a JSON object of fields, got "
                                f"{type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise MoescaleError(
                f"unknown architecture field(s) {', '.join(unknown)}; valid fields: {', '.join(sorted(names))}"
            )
        missing = [n for n in ("hidden_size", "n_layers", "n_heads") if n not in data]
        if missing:
            raise MoescaleError(f"architecture is missing required field(s): {', '.join(missing)}")
        try:
            return cls(**{str(k): v for k, v in data.items()})
        except (TypeError, ValueError) as exc:  # e.g. a list where a number belongs
            if isinstance(exc, MoescaleError):
                raise
            raise MoescaleError(f"invalid architecture: {exc}") from None

    @classmethod
    def from_json(cls, path: str | Path) -> Architecture:
        """Read an architecture JSON file (the output of ``to_dict``, or a plan's ``architecture``)."""
        data = read_json_object(path, what="an architecture")
        if "architecture" in data and isinstance(data["architecture"], dict):
            data = data["architecture"]
        return cls.from_dict(data)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(a: Architecture) -> None:
    """Reject impossible combinations with a message that says what to change."""
    for name in ("ffn_type", "norm_type", "qk_norm", "name"):
        if not isinstance(getattr(a, name), str):
            raise MoescaleError(f"`{name}` must be a string, got {getattr(a, name)!r}"[:200])
    for name in ("tie_embeddings", "qkv_bias", "out_bias", "mlp_bias", "router_bias",
                 "shared_expert_gate", "attention_sinks"):
        if not isinstance(getattr(a, name), bool):
            raise MoescaleError(f"`{name}` must be true or false, got {getattr(a, name)!r}"[:200])
    positive = {"hidden_size": a.hidden_size, "n_layers": a.n_layers, "n_heads": a.n_heads,
                "vocab_size": a.vocab_size, "seq_len": a.seq_len, "moe_layer_step": a.moe_layer_step}
    for name, value in positive.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise MoescaleError(f"`{name}` must be a positive integer, got {value!r}")
    non_negative = {"dense_ffn": a.dense_ffn, "n_experts": a.n_experts, "top_k": a.top_k,
                    "expert_ffn": a.expert_ffn, "n_shared_experts": a.n_shared_experts,
                    "first_dense_layers": a.first_dense_layers}
    for name, value in non_negative.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise MoescaleError(f"`{name}` must be a non-negative integer, got {value!r}")
    for name in ("n_kv_heads", "head_dim", "shared_expert_ffn", "sliding_window"):
        value = getattr(a, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value <= 0):
            raise MoescaleError(f"`{name}` must be a positive integer or omitted, got {value!r}")
    for name, limit in LIMITS.items():
        value = getattr(a, name)
        if value is not None and value > limit:
            raise MoescaleError(f"`{name}`={value:,} is above the limit {limit:,} "
                                "(moescale.accounting.architecture.LIMITS); is it a typo or a unit mistake?")
    if a.ffn_type not in FFN_TYPES:
        raise MoescaleError(f"`ffn_type` must be one of {', '.join(FFN_TYPES)}, got {a.ffn_type!r}")
    if a.norm_type not in NORM_TYPES:
        raise MoescaleError(f"`norm_type` must be one of {', '.join(NORM_TYPES)}, got {a.norm_type!r}")
    if a.qk_norm not in QK_NORMS:
        raise MoescaleError(f"`qk_norm` must be one of {', '.join(QK_NORMS)}, got {a.qk_norm!r}")
    _validate_attention(a)
    _validate_moe(a)
    _validate_size(a)


def _validate_size(a: Architecture) -> None:
    """Fields each within their limits can still multiply to a model far beyond any built
    (2^18 wide × 2^14 layers): a rough parameter count above :data:`MAX_PARAMS` is refused."""
    d = a.hidden_size
    head_dim = a.head_dim or max(d // a.n_heads, 1)
    attention = 0 if a.mla is not None else (  # MLA ranks are bounded per field (MLA_LIMIT)
        d * head_dim * (2 * a.n_heads + 2 * (a.n_kv_heads or a.n_heads)))
    matrices = FFN_TYPES[a.ffn_type]
    moe = a.n_moe_layers
    shared = a.n_shared_experts * (a.shared_expert_ffn or a.expert_ffn)
    ffn = matrices * d * ((a.n_layers - moe) * a.dense_ffn
                          + moe * (a.n_experts * a.expert_ffn + shared))
    params = float(a.n_layers) * attention + ffn + a.vocab_size * d * (1 + (not a.tie_embeddings))
    if params > MAX_PARAMS:
        raise MoescaleError(f"this architecture has about {params:.2g} parameters, above the "
                            f"limit of {MAX_PARAMS:.0e} (far beyond any model built); is a size "
                            "a typo or a unit mistake?")


def _validate_attention(a: Architecture) -> None:
    if a.head_dim is None and a.mla is None and a.hidden_size % a.n_heads:
        raise MoescaleError(
            f"`n_heads`={a.n_heads} does not divide `hidden_size`={a.hidden_size}; "
            "choose a divisor or set `head_dim` explicitly"
        )
    if a.kv_heads > a.n_heads or a.n_heads % a.kv_heads:
        raise MoescaleError(
            f"`n_kv_heads`={a.kv_heads} must divide `n_heads`={a.n_heads} (grouped-query attention)"
        )
    if a.mla is not None:
        for f in dataclasses.fields(a.mla):
            v = getattr(a.mla, f.name)
            if v is None and f.name == "q_lora_rank":
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise MoescaleError(f"mla.{f.name} must be a positive integer, got {v!r}")
            if v > MLA_LIMIT:
                raise MoescaleError(f"mla.{f.name}={v:,} is above the limit {MLA_LIMIT:,}")
    bad = [i for i in a.sliding_layers
           if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < a.n_layers]
    if bad:
        raise MoescaleError(f"`sliding_layers` {bad} are outside 0..{a.n_layers - 1}")
    if a.sliding_layers and a.sliding_window is None:
        raise MoescaleError("`sliding_layers` are given but `sliding_window` is not; set `sliding_window`")


def _validate_moe(a: Architecture) -> None:
    if a.first_dense_layers > a.n_layers:
        raise MoescaleError(
            f"`first_dense_layers`={a.first_dense_layers} exceeds `n_layers`={a.n_layers}; "
            "lower `first_dense_layers` or add layers"
        )
    if a.moe_layers is not None:
        bad = [i for i in a.moe_layers
               if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < a.n_layers]
        if bad:
            raise MoescaleError(f"`moe_layers` {bad} are outside 0..{a.n_layers - 1}")
        if len(set(a.moe_layers)) != len(a.moe_layers):
            raise MoescaleError("`moe_layers` lists a layer twice")
    if a.n_experts == 0:
        if a.top_k or a.n_shared_experts:
            raise MoescaleError(
                "`top_k` and `n_shared_experts` need routed experts; set `n_experts` > 0 or set them to 0"
            )
        if a.dense_ffn == 0:
            raise MoescaleError("a dense model needs `dense_ffn` > 0 (the FFN width)")
        return
    if a.top_k < 1 or a.top_k > a.n_experts:
        raise MoescaleError(
            f"`top_k`={a.top_k} must be between 1 and `n_experts`={a.n_experts}"
        )
    if a.expert_ffn == 0:
        raise MoescaleError("an MoE model needs `expert_ffn` > 0 (the width of one routed expert)")
    if a.n_moe_layers == 0:
        raise MoescaleError(
            "`n_experts` > 0 but the layer pattern has no MoE layer; "
            "lower `first_dense_layers` or `moe_layer_step`, or list `moe_layers`"
        )
    if a.n_dense_layers > 0 and a.dense_ffn == 0:
        raise MoescaleError(
            f"{a.n_dense_layers} layer(s) are dense but `dense_ffn` is 0; set `dense_ffn`"
        )
    if a.shared_expert_gate and a.n_shared_experts == 0:
        raise MoescaleError("`shared_expert_gate` needs `n_shared_experts` > 0")
