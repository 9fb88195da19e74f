"""Shared building blocks of law forms: stable log-sum-exp with its softmax weights, and the
generic power law ``y = k·x^p`` that several hyper-parameter and optimum laws share."""

from __future__ import annotations

import numpy as np

from moescale.laws.base import Law, Preset


def lse(*terms):
    """``(ln Σ e^t, [e^t / Σ e^t …])`` elementwise; differences below −60 are clipped (exact to
    double precision, and it keeps numpy off its slow subnormal path)."""
    terms = np.broadcast_arrays(*terms)
    m = terms[0]
    for t in terms[1:]:
        m = np.maximum(m, t)
    exps = [np.exp(np.maximum(t - m, -60.0)) for t in terms]
    total = sum(exps)
    return m + np.log(total), [e / total for e in exps]


def power_law(name: str, variable: str, target: str, citation: str, doc: str,
              presets: dict[str, Preset] | None = None, sign: float = 1.0) -> Law:
    """``target = k·variable^(sign·p)`` as a law fitted in log space (linear there)."""

    def log_loss(p, v):
        return np.log(p["k"]) + sign * p["p"] * np.log(v[variable])

    def grad(p, v):
        x = np.log(v[variable]) + 0 * p["p"]
        return {"k": np.ones_like(x), "p": sign * x}

    return Law(name=name, citation=citation, formula=doc, params=("k", "p"),
               variables=(variable,), convention="any", log_loss=log_loss,
               presets=presets or {}, log_params=("k",),
               init_grid={"k": (-10.0, 0.0, 10.0), "p": (-1.0, 0.0, 1.0)},
               grad_log_loss=grad, target=target)
