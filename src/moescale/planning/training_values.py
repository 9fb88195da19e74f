"""What a plan tells the trainer beyond the architecture: learning rate, batch, loss — kept
sane at any budget, with every extrapolation of a law stated.

- learning rates are clipped to :data:`LR_RANGE` (a law extrapolated to a 10⁴-parameter model
  otherwise asks for LR ≈ 1–3);
- batches are a whole number of sequences (≥ 1), never more than the training tokens;
- predicted losses are capped at ``ln V`` nats/token (the loss of a uniform prediction over the
  vocabulary: any trained model does at least that well);
- :func:`extrapolation` says by how much a law is used outside the range it was fitted on.
"""

from __future__ import annotations

import math

LR_RANGE = (1e-5, 1e-2)  # peak AdamW learning rates moescale will recommend
MAX_COMPUTE = 1e30  # FLOPs; beyond this no law says anything (fitted at 1e17–1e21)


def check_compute(compute: float) -> None:
    """Refuse budgets no law can speak to (one clear line instead of a solver failure)."""
    from moescale.errors import MoescaleError

    if compute > MAX_COMPUTE:
        raise MoescaleError(
            f"compute {compute:.3g} FLOPs is beyond what moescale plans (≤ {MAX_COMPUTE:.0e}; "
            "the laws were fitted at 1e17–1e21 FLOPs); lower `compute`"
        )


def clip_lr(lr: float, notes: list[str], source: str) -> float:
    """``lr`` clipped into :data:`LR_RANGE`; a note says so when it was clipped."""
    lo, hi = LR_RANGE
    out = min(max(lr, lo), hi)
    if out != lr:
        notes.append(f"Learning rate: {source} gives {lr:.3g}, clipped to {out:.3g} "
                     f"(recommended range {lo:g}–{hi:g}).")
    return out


def batch_sequences(batch_tokens: float, seq_len: int, tokens: float) -> int:
    """A whole number of sequences near ``batch_tokens`` (≥ 1, ≤ the training tokens)."""
    most = max(1, int(tokens // seq_len))
    return int(min(max(1, round(batch_tokens / seq_len)), most))


def cap_loss(loss: float | None, vocab: int, notes: list[str]) -> float | None:
    """``min(loss, ln V)``; a note says so when the law predicted more."""
    if loss is None:
        return None
    cap = math.log(vocab)
    if not math.isfinite(loss) or loss > cap:
        notes.append(f"Predicted loss: the law gives {loss:.4g} nats, above ln(V) = {cap:.4g} "
                     "(a uniform prediction over the vocabulary); capped there.")
        return cap
    return loss


def extrapolation(name: str, value: float, low: float, high: float,
                  law: str = "") -> dict[str, float] | None:
    """How far ``value`` of ``law`` lies outside its fitted range ``[low, high]`` (None inside).

    ``factor`` is ``low/value`` below the range and ``value/high`` above it; ``decades`` its
    log10.
    """
    if low <= value <= high:
        return None
    factor = low / value if value < low else value / high
    return {"law": law, "quantity": name, "value": value, "fitted_range": [low, high],
            "side": "below" if value < low else "above", "factor": factor,
            "decades": math.log10(factor)}


def describe(extrapolations: list[dict]) -> list[str]:
    """One assumption line per law for ``extrapolations``."""
    laws = dict.fromkeys(e["law"] for e in extrapolations)
    return [_describe([e for e in extrapolations if e["law"] == law], law) for law in laws]


def _describe(extrapolations: list[dict], law: str) -> str:
    parts = [f"{e['quantity']} = {e['value']:.3g} is {e['factor']:.3g}× ({e['decades']:.1f} "
             f"decades) {e['side']} the fitted range {e['fitted_range'][0]:.3g}–"
             f"{e['fitted_range'][1]:.3g}" for e in extrapolations]
    return f"Extrapolation of {law}: " + "; ".join(parts) + "."


def plan_training_values(path: str, given: dict, grad_accum: int = 1) -> tuple[dict, list[str]]:
    """Training settings from a plan JSON (``moescale plan -o``/``--json``), overridden by the
    ``given`` command-line values that are not ``None``.

    Keys: ``tokens``, ``lr``, ``batch_tokens``, ``seq_len``, ``tokenizer``, ``vocab_size``. The
    plan's vocabulary selects the tokenizer: 256 → bytes, more → a BPE of that size. Returns
    the merged values and one message per value the command line overrode.
    """
    from moescale.jsonio import read_json_object

    data = read_json_object(path, "a moescale plan", kind="plan file")
    arch = data.get("architecture") if isinstance(data.get("architecture"), dict) else {}
    alloc = data.get("allocation") if isinstance(data.get("allocation"), dict) else {}
    plan = {"tokens": alloc.get("tokens"), "lr": data.get("learning_rate"),
            "batch_tokens": data.get("batch_size_tokens"), "seq_len": arch.get("seq_len")}
    out, notes = dict(given), []
    for key in ("tokens", "lr", "batch_tokens", "seq_len"):
        if plan[key] is None:
            continue
        if given.get(key) is None:
            out[key] = plan[key]
        elif float(given[key]) != float(plan[key]):
            notes.append(f"`{key}` {given[key]:g} overrides the plan's {float(plan[key]):g}")
    for key in ("tokens", "batch_tokens", "seq_len"):
        if out.get(key) is not None:
            out[key] = int(out[key])
    vocab = arch.get("vocab_size")
    if vocab and given.get("tokenizer") is None and given.get("vocab_size") is None:
        out["tokenizer"], out["vocab_size"] = ("bytes", None) if vocab == 256 else ("bpe", int(vocab))
    elif vocab:
        kind = given.get("tokenizer") or ("bpe" if given.get("vocab_size") else "bytes")
        size = 256 if kind == "bytes" else (given.get("vocab_size") or 4096)
        out["tokenizer"] = kind
        if size != vocab:
            notes.append(f"the {kind} tokenizer's vocabulary {size} overrides the plan's {vocab}")
    if plan["batch_tokens"] is not None and given.get("batch_tokens") is None and out.get("seq_len"):
        unit = out["seq_len"] * grad_accum
        rounded = max(1, round(out["batch_tokens"] / unit)) * unit
        if rounded != out["batch_tokens"]:
            notes.append(f"the plan's batch of {out['batch_tokens']} tokens is rounded to "
                         f"{rounded} (whole sequences of {out['seq_len']} × {grad_accum} micro-batches)")
            out["batch_tokens"] = rounded
    return out, notes
