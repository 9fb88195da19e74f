"""The report page: one self-contained HTML file (inline CSS, no script, no network) that
references its figures by relative path, with a short text summary above them.

Every user-supplied string (file names, run tags and ids, law and column names, messages that
quote them) goes through :func:`html.escape` before it reaches the page.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from moescale.errors import MoescaleError
from moescale.reporting import fits as fitfig
from moescale.reporting import plans as planfig
from moescale.reporting.style import human, sci

# colours: ink #1d2733, muted #5b6672, rule #d9dee4, accent #0072B2, warning #b34700 (written
# out rather than as CSS custom properties, whose names read like command-line flags)
CSS = """
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2733;
       margin: 0 auto; max-width: 1480px; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 32px 0 10px; border-bottom: 1px solid #d9dee4; padding-bottom: 4px; }
h3 { font-size: 1rem; margin: 18px 0 6px; }
.sub { color: #5b6672; margin: 0 0 16px; }
.summary { background: #f5f8fb; border: 1px solid #d9dee4; border-radius: 6px; padding: 10px 18px; }
.summary li { margin: 3px 0; }
.warn { color: #b34700; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 18px; }
figure { margin: 0; border: 1px solid #d9dee4; border-radius: 6px; padding: 8px; background: #fff; }
figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: 0.86rem; color: #5b6672; margin-top: 6px; }
figcaption b { color: #1d2733; }
table { border-collapse: collapse; font-size: 0.88rem; margin: 6px 0 12px; }
th, td { border-bottom: 1px solid #d9dee4; padding: 3px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eef3f8; }
code { font-size: 0.9em; background: #f0f2f5; padding: 0 3px; border-radius: 3px; }
.left-out li { color: #5b6672; font-size: 0.88rem; }
a { color: #0072B2; }
"""

SECTIONS = {"sweep": "Runs and sweep", "plan": "Laws and the plan",
            "selection": "Which law, how robust, which runs next"}


def e(value: Any) -> str:
    """Escape any value for HTML text or attribute context."""
    return html.escape(str(value), quote=True)


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return e(x)
    if not math.isfinite(v):
        return "-"
    if abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-3):
        return e(human(v, digits) if abs(v) >= 1e3 and abs(v) < 1e18 else sci(v, digits))
    return e(f"{v:.{digits}g}")


def render_page(inp, drawn: Sequence, skipped: Sequence[tuple[str, str]],
                title: str | None = None, directory: Path | None = None) -> str:
    """The HTML text of the report page."""
    from moescale import __version__

    title = title or "moescale report"
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             '<link rel="icon" href="data:,">',
             f"<title>{e(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{e(title)}</h1>",
             f'<p class="sub">Written by moescale {e(__version__)} from '
             f"{e(_inputs_line(inp))}. Figures are PNG (with SVG alongside).</p>",
             "<h2>Summary</h2>", '<ul class="summary">']
    parts += [f"<li>{item}</li>" for item in summary_items(inp)]
    parts.append("</ul>")
    by_section: dict[str, list] = {}
    for d in drawn:
        by_section.setdefault(d.section, []).append(d)
    order = ["sweep"] + [f"fit{i}" for i in range(len(inp.fits))] + ["plan", "selection"]
    for section in order:
        items = by_section.get(section, [])
        tables = _section_tables(inp, section)
        if not items and not tables:
            continue
        parts.append(f"<h2>{e(_section_title(inp, section))}</h2>")
        if section != "sweep":  # the sweep's table of best runs goes below its figures
            parts += tables
        if items:
            parts.append('<div class="grid">')
            parts += [_figure_html(d) for d in items]
            parts.append("</div>")
        if section == "sweep":
            parts += tables
    if skipped:
        parts.append("<h2>Left out</h2>")
        parts.append('<ul class="left-out">')
        parts += [f"<li><code>{e(n)}</code>: {e(r)}</li>" for n, r in skipped]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _inputs_line(inp) -> str:
    s = inp.sources
    bits = []
    if "store" in s:
        bits.append(f"sweep store {s['store']}")
    if "runs" in s:
        bits.append(f"runs {s['runs']}")
    for f in s.get("fits", []):
        bits.append(f"fit {f}")
    if "plan" in s:
        bits.append(f"plan {s['plan']}")
    if "compare" in s:
        bits.append(f"comparison {s['compare']}")
    return ", ".join(bits) or "the given inputs"


def _section_title(inp, section: str) -> str:
    if section.startswith("fit"):
        i = int(section[3:])
        fit = inp.fits[i]
        src = inp.sources.get("fits", [])
        return f"Fit: {fit.law}" + (f" ({src[i]})" if i < len(src) else "")
    return SECTIONS.get(section, section)


def _figure_html(d) -> str:
    png = next((f for f in d.files if f.suffix == ".png"), d.files[0])
    others = [f for f in d.files if f is not png]
    links = " · ".join(f'<a href="figures/{e(quote(f.name))}">{e(f.suffix[1:].upper())}</a>'
                       for f in others)
    return (f'<figure id="{e(d.name)}"><img src="figures/{e(quote(png.name))}" '
            f'alt="{e(d.title)}" loading="eager">'
            f"<figcaption><b>{e(d.title)}</b> — {e(d.caption)}"
            + (f" ({links})" if links else "") + "</figcaption></figure>")


# ----- the summary --------------------------------------------------------------------------------
def summary_items(inp) -> list[str]:
    """Sentences (already escaped HTML) on what was run, fitted and planned."""
    items = []
    items += _runs_items(inp)
    items += _sweep_items(inp)
    for i, fit in enumerate(inp.fits):
        items += _fit_items(inp, i, fit)
    items += _plan_items(inp)
    items += [f"Note: {e(n)}" for n in inp.notes]
    return items or ["No inputs: give a sweep store, runs, a fit or a plan."]


def _runs_items(inp) -> list[str]:
    runs = inp.runs
    if runs is None:
        return []
    done = inp.done()
    n_done = 0 if done is None else len(done)
    where = (f"sweep store <code>{e(inp.sources['store'])}</code>" if "store" in inp.sources
             else f"<code>{e(inp.sources.get('runs', 'the run table'))}</code>")
    text = f"{len(runs):,} runs from {where}"
    counts = inp.store_counts
    if counts:
        text += " (" + ", ".join(f"{v:,} {e(k)}" for k, v in counts.items() if v) + ")"
    elif n_done != len(runs):
        text += f" ({n_done:,} with a finite loss)"
    if done is not None and "budget" in done.columns:
        b = done["budget"].dropna()
        if len(b):
            text += (f"; {b.nunique()} compute budgets from {e(sci(b.min()))} to "
                     f"{e(sci(b.max()))} FLOPs")
    if done is not None and "loss" in done.columns and n_done:
        best = done.loc[done["loss"].astype(float).idxmin()]
        ident = best.get("id", best.name)
        text += f"; lowest loss {float(best['loss']):.4f} (run <code>{e(ident)}</code>)"
    items = [text + "."]
    failed = runs[runs["status"].astype(str) == "failed"] if "status" in runs.columns else []
    if len(failed):
        first = failed.iloc[0]
        items.append(f'<span class="warn">{len(failed)} failed run(s)</span>, e.g. '
                     f"<code>{e(first.get('id', ''))}</code>: {e(first.get('error', ''))}")
    return items


def _sweep_items(inp) -> list[str]:
    items = []
    for x in inp.isoflop_axes():
        a = inp.analysis(x)
        groups = sorted({tuple(b.group.items()) for b in a.budgets})
        for group in groups:
            members = [b for b in a.budgets if tuple(b.group.items()) == group]
            text = _optimum_sentence(x, members, a.power_laws, group)
            if text:
                items.append(text)
        bad = [b for b in a.budgets if b.status in ("edge-low", "edge-high")]
        for b in bad:
            where = "".join(f" ({v})" if isinstance(v, str) else f" ({k} = {v:g})"
                            for k, v in b.group.items())
            items.append(f'<span class="warn">{e(b.message + where)}</span>')
    return items + _experts_items(inp)


def _optimum_sentence(x: str, budgets: list, power_laws: dict, group: tuple) -> str | None:
    """The optimum at the largest budget with an interior optimum, and its power law in C."""
    ok = [b for b in budgets if b.status == "ok" and b.x_opt is not None]
    if not ok:
        return None
    top = max(ok, key=lambda b: b.budget)
    suffix = "".join(f"[{v}]" if isinstance(v, str) else f"[{k}={v:g}]" for k, v in group)
    who = "".join(f" for {v}" if isinstance(v, str) else " for dense (E = 1)"
                  if (k, v) == ("E", 1) else f" for {k} = {v:g}" for k, v in group)
    ci = (f" (interval {_num(top.x_opt_ci[0], 3)} – {_num(top.x_opt_ci[1], 3)})"
          if top.x_opt_ci else "")
    text = (f"Optimal <b>{e(x)}</b>{e(who)} at the largest budget with an interior optimum "
            f"(C = {e(sci(top.budget))}): <b>{_num(top.x_opt, 3)}</b>{ci}, loss "
            f"{_num(top.loss_opt)}")
    law = power_laws.get(f"{x}_opt{suffix}")
    if law is not None:
        p, ci_p = law.params["p"], (law.ci or {}).get("p")
        text += (f"; {e(x)}<sub>opt</sub> ∝ C<sup>{p:.3f}</sup>"
                 + (f" [{ci_p[0]:.3f}, {ci_p[1]:.3f}]" if ci_p else ""))
    d_law = power_laws.get(f"D_opt{suffix}")
    if d_law is not None and x in ("N", "N_active"):
        text += f", D<sub>opt</sub> ∝ C<sup>{d_law.params['p']:.3f}</sup>"
    return text + "."


def _experts_items(inp) -> list[str]:
    """The dense-vs-experts answer: compute multipliers with intervals, and the seed noise."""
    comparison = inp.experts_comparison()
    if comparison is None:
        return []
    items = [e(comparison.noise.describe()[0].upper() + comparison.noise.describe()[1:]) + "."]
    summary = [m for m in comparison.multipliers if m.budget is None]
    if summary:
        parts = []
        for m in summary:
            mc = f", ends ±{m.ci_mc_error:.2g}" if m.ci_mc_error is not None else ""
            ci = f" ({m.ci[0]:.3g}–{m.ci[1]:.3g}×{mc})" if m.ci else " (no interval)"
            parts.append(f"{e(m.arm)}: <b>{m.multiplier:.3g}×</b>{ci}"
                         + (" <i>extrapolated</i>" if m.extrapolated else ""))
        items.append(f"Compute multiplier over {e(comparison.reference)} at equal loss "
                     "(geometric mean over "
                     "budgets, " f"{int(100 * comparison.level)} % bootstrap interval): "
                     + "; ".join(parts) + ".")
    within = [m for m in comparison.multipliers if m.within_noise]
    if within:
        cells = ", ".join(f"{m.arm} at C = {sci(m.budget)}" for m in within)
        items.append(f'<span class="warn">Not distinguishable from the reference arm (the interval of the '
                     f'best-loss difference contains 0, or within the seed noise): '
                     f'{e(cells)}</span>')
    items += [f'<span class="warn">{e(msg)}</span>' for msg in comparison.messages]
    return items


def _fit_items(inp, i: int, fit) -> list[str]:
    data = fit.data or {}
    held = f", held out {e(data['holdout'])}" if data.get("holdout") else ""
    text = (f"Fit <b>{e(fit.law)}</b> ({e(fit.convention)} convention) on "
            f"{e(data.get('n_train', '?'))} of {e(data.get('n_runs', '?'))} runs{held}: "
            f"train RMSE {_num((fit.train or {}).get('rmse'))}")
    if fit.holdout:
        text += (f", held-out RMSE {_num(fit.holdout.get('rmse'))} (max |error| "
                 f"{_num(fit.holdout.get('max_abs_error'))})")
        if data.get("extrapolates") is False:
            text += f' <span class="warn">Not validated: {e(data.get("verdict", ""))}</span>'
        elif data.get("verdict"):
            text += f" ({e(data['verdict'])})"
    if fit.derived:
        bits = []
        for k, v in fit.derived.items():
            ci = (fit.ci or {}).get(k)
            bits.append(f"{e(k)} = {_num(v)}" + (f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else ""))
        text += "; " + ", ".join(bits)
    items = [text + "."]
    items += [f'<span class="warn">⚠ {e(w)}</span>' for w in fitfig.fit_warnings(fit)]
    return items


def _plan_items(inp) -> list[str]:
    """The plan in one sentence (``inp.plan`` is a :class:`PlanData`)."""
    plan = inp.plan
    if not plan:
        return []
    arch = plan.architecture
    text = (f"Plan for C = <b>{e(sci(plan.compute))}</b> FLOPs "
            f"({e(plan.method)}, {e(plan.law)}): ")
    shape = [f"d = {e(arch.hidden_size)}", f"{e(arch.n_layers)} layers"]
    if arch.n_experts:
        shape.append(f"{e(arch.n_experts)} experts, top-{e(arch.top_k)}")
    text += ", ".join(shape)
    text += (f"; N<sub>a</sub> = {e(human(float(plan.ratios['N_a'])))}, "
             f"N = {e(human(float(plan.ratios['N'])))}")
    if plan.allocation.get("tokens"):  # every planner's allocation says D; older files may not
        text += f", D = {e(human(float(plan.allocation['tokens'])))} tokens"
    if plan.predicted_loss is not None:
        text += f"; predicted loss <b>{_num(plan.predicted_loss)}</b>"
        if plan.predicted_loss_ci:
            lo, hi = plan.predicted_loss_ci
            text += f" [{_num(lo)}, {_num(hi)}]"
    if plan.binding_constraint:
        text += f"; binding constraint: {e(plan.binding_constraint)}"
    return [text + "."]


# ----- tables ----------------------------------------------------------------------------------
def _section_tables(inp, section: str) -> list[str]:
    if section == "sweep":
        return _runs_table(inp)
    if section.startswith("fit"):
        return _fit_table(inp.fits[int(section[3:])])
    if section == "plan":
        return _plan_tables(inp)
    return []


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table from already-escaped cells (headers are escaped here)."""
    out = ["<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead>",
           "<tbody>"]
    out += ["<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows]
    out.append("</tbody></table>")
    return "\n".join(out)


def _runs_table(inp, limit: int = 14) -> list[str]:
    """The best run of each budget, with its string tags (escaped)."""
    runs = inp.done()
    if runs is None or "loss" not in runs.columns:
        return []
    group = "budget" if "budget" in runs.columns else None
    frame = runs.assign(_loss=pd.to_numeric(runs["loss"], errors="coerce"))
    best = frame.loc[frame.groupby(group)["_loss"].idxmin()] if group else \
        frame.nsmallest(limit, "_loss")
    best = best.sort_values(group or "_loss").tail(limit)
    numeric = [c for c in ("budget", "C", "N", "N_active", "D", "E", "loss") if c in best.columns]
    tags = [c for c in best.columns if not c.startswith("_") and c not in numeric
            and c not in ("id", "status", "error", "curve_path", "spec_hash", "sweep")
            and not pd.api.types.is_numeric_dtype(best[c])][:4]
    head = (["run"] if "id" in best.columns else []) + numeric + tags
    rows = []
    for _, r in best.iterrows():
        row = [f"<code>{e(r['id'])}</code>"] if "id" in best.columns else []
        row += [_num(r[c]) for c in numeric]
        row += [e(r[c]) for c in tags]
        rows.append(row)
    title = "Best run of each budget" if group else "Lowest-loss runs"
    return [f"<h3>{e(title)}</h3>", _table(head, rows)]


def _fit_table(fit) -> list[str]:
    rows = []
    for r in fitfig.param_rows(fit):
        ci = r["ci"]
        rows.append([e(r["name"]), _num(r["value"]),
                     f"{_num(ci[0])} … {_num(ci[1])}" if ci else "-", _num(r["se"]),
                     e(r["kind"])])
    out = [_table(["parameter", "value", f"{fit.ci_level:.0%} interval", "SE", ""], rows)]
    warnings = fitfig.fit_warnings(fit)
    if warnings:
        out.append("<ul>" + "".join(f'<li class="warn">⚠ {e(w)}</li>' for w in warnings)
                   + "</ul>")
    return out


def _plan_tables(inp) -> list[str]:
    """The planned architecture's main fields and its per-component counts."""
    plan = inp.plan
    if not plan:
        return []
    arch = plan.architecture
    keys = ["name", "hidden_size", "n_layers", "first_dense_layers", "n_heads", "n_kv_heads",
            "head_dim", "dense_ffn", "n_experts", "top_k", "expert_ffn", "n_shared_experts",
            "vocab_size", "seq_len"]
    rows = [[e(k), e(getattr(arch, k))] for k in keys
            if getattr(arch, k) not in (None, "", [])]
    out = ["<h3>Planned architecture</h3>", _table(["field", "value"], rows)]
    try:
        shares = planfig.component_shares(plan)
    except MoescaleError as exc:  # an architecture the counting library refuses to count
        return out + [f'<p class="warn">per-component counts unavailable: {e(exc)}</p>']
    rows = [[e(planfig.COMPONENT_NAMES.get(r["component"], r["component"])),
             _num(r["params"]), f"{100 * r['params_share']:.1f} %",
             _num(r["active_params"]), f"{100 * r['active_share']:.1f} %",
             _num(r["training_flops"]), f"{100 * r['flops_share']:.1f} %"] for r in shares]
    out += ["<h3>Per-component parameters and training FLOPs per token (exact count)</h3>",
            _table(["component", "parameters", "share", "active", "share",
                    "training FLOPs/token", "share"], rows)]
    return out
