"""The store as a run table: one row per run, in the columns the laws are fitted on.

Columns (units: parameters, tokens, FLOPs, nats per token, seconds):

- ``budget`` requested FLOPs; ``C`` realised training FLOPs under the spec's convention,
  ``C_exact`` under ``exact``; ``D`` training tokens; ``unique_tokens``, ``repeated_tokens``,
  ``epochs`` (``D / corpus_tokens``: passes over the corpus's training split, below 1 for a
  run that did not finish one; ``D / unique_tokens`` for runs that predate ``corpus_tokens``).
- ``corpus`` and ``tokenizer``: what the run trained on (``NAME@SHA-256 prefix`` of the text
  and of the tokenizer file; ``bytes`` for bytes), ``corpus_tokens`` the size of the corpus's
  training split. ``moescale fit`` refuses a table that mixes corpora or tokenizers.
- ``N``, ``N_active`` every parameter (= numel) and those one token uses; ``N_ne``,
  ``N_active_ne`` without embeddings; ``N_<conv>``, ``N_active_<conv>``, ``C_<conv>`` under
  each of the ``chinchilla``, ``holistic`` and ``kaplan`` conventions; ``M`` holistic FLOPs per
  token, ``M_over_Na``, ``N_over_Na`` (holistic ratios, Wan et al. 2026).
- The MoE vocabulary (README, "One vocabulary"): ``E`` routed experts (1 for a dense model,
  the papers' convention), ``K`` routed experts chosen per token (top-k), ``n_shared`` shared
  experts, ``G`` granularity against the dense model of equal active size (Krajewski et al.
  2024; 1 for dense), ``G_act`` activated experts ``K + n_shared`` and ``S`` the shared
  fraction (Zhao et al. 2025; a dense model is one activated expert, ``S = 0``),
  ``activation_ratio`` ``N_a/N`` (non-embedding), ``arm`` the run's arm named by its axes
  (``dense``, ``E 8``, ``E 16, K 2, G 2``; a ``[[arms]]`` label is ``tag_label``); ``d``, ``L``.
- ``loss`` final eval loss, ``best_loss``, ``train_loss``, ``initial_loss``, ``lr``,
  ``batch_tokens``, ``seed``, ``wall_seconds``, ``tokens_per_second``, ``mfu``,
  ``spec_hash`` (the run id: a hash of its content), ``curve_path``, ``attempts``, ``error``
  and ``tag_<name>`` for each grid value or target of the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from moescale.accounting.architecture import Architecture
from moescale.accounting.counting import count
from moescale.errors import MoescaleError
from moescale.sweeps import worker
from moescale.sweeps.spec import TRAIN_KEYS, RunSpec, run_id

CONVENTIONS = ("chinchilla", "holistic", "kaplan")
DATA_COLUMNS = ("corpus", "tokenizer")


def run_columns(spec: dict[str, Any]) -> dict[str, Any]:
    """The architecture- and budget-derived columns of one run spec."""
    run = RunSpec.from_dict(spec)
    arch = run.arch()
    seq = arch.seq_len
    exact = count(arch, "exact", context=seq)
    row = {"id": run.id, "sweep": run.sweep, "budget": run.budget, "convention": run.convention,
           "D": float(run.tokens), "C": run.flops, "C_exact": run.tokens * exact.training_flops_per_token,
           "N": float(exact.total_params), "N_active": float(exact.active_params),
           "N_ne": float(exact.total_params_non_embedding),
           "N_active_ne": float(exact.active_params_non_embedding),
           "E": float(max(arch.n_experts, 1)), "K": float(arch.top_k),
           "n_shared": float(arch.n_shared_experts), "G": arch.granularity,
           "G_act": float(arch.activated_experts) if arch.is_moe else 1.0,
           "S": arch.shared_ratio, "arm": arm_label(arch),
           "activation_ratio": exact.active_params_non_embedding / exact.total_params_non_embedding,
           "d": float(arch.hidden_size), "L": float(arch.n_layers),
           "lr": float(run.train["lr"]), "batch_tokens": float(run.train["batch_tokens"]),
           "seed": run.seed, "spec_hash": run.id, "role": run.role, "trunk_id": run.trunk,
           "branch_step": run.branch_step}
    for name in CONVENTIONS:
        c = count(arch, name, context=seq)
        row |= {f"N_{name}": float(c.params), f"N_active_{name}": float(c.params_active),
                f"C_{name}": run.tokens * c.training_flops_per_token}
    hol = count(arch, "holistic", context=seq)
    row["M"] = hol.training_flops_per_token
    if hol.params_active:
        row["M_over_Na"] = hol.training_flops_per_token / hol.params_active
        row["N_over_Na"] = hol.params / hol.params_active
    row |= {f"tag_{k}": v for k, v in run.tags.items() if not isinstance(v, (list, dict))}
    return row


def arm_label(arch: Architecture) -> str:
    """``dense``, or the MoE's axes where they differ from the plainest MoE: ``E 8``,
    ``E 16, K 2, G 2``, ``E 16, G 2, S 0.5``."""
    if not arch.is_moe:
        return "dense"
    parts = [f"E {arch.n_experts}"]
    if arch.top_k != 1:
        parts.append(f"K {arch.top_k}")
    if arch.granularity != 1:
        parts.append(f"G {arch.granularity:g}")
    if arch.shared_ratio:
        parts.append(f"S {arch.shared_ratio:g}")
    return ", ".join(parts)


def result_columns(result: dict[str, Any] | None, run_dir: str | None) -> dict[str, Any]:
    if not result:
        return {}
    unique = result.get("unique_tokens") or 0
    corpus_tokens = result.get("corpus_tokens") or 0
    epochs = result["tokens"] / (corpus_tokens or unique) if (corpus_tokens or unique) else None
    data = {"corpus": result.get("corpus"), "tokenizer": result.get("tokenizer"),
            "corpus_tokens": float(corpus_tokens) if corpus_tokens else None} \
        if result.get("corpus") else {}
    return data | {"loss": result.get("eval_loss"), "best_loss": result.get("best_eval_loss"),
            "train_loss": result.get("train_loss"),
            "initial_loss": result.get("initial_eval_loss"),
            "unique_tokens": float(unique), "repeated_tokens": float(result.get("repeated_tokens") or 0),
            "epochs": epochs,
            "wall_seconds": result.get("seconds"),
            "tokens_per_second": result.get("tokens_per_second"), "mfu": result.get("mfu"),
            "curve_path": str(Path(run_dir) / worker.LOG_FILE) if run_dir else None}


def runs_frame(store, status: str | None = "done", trunk_points: bool = False):
    """pandas DataFrame of the store's runs (``status=None`` → every run).

    Trunks (``[train] reuse = "trunk"``) are not runs of a budget and are left out; with
    ``trunk_points`` each trunk gives one row per branch point instead: its eval loss there,
    at the peak learning rate (not cooled down), with ``D`` and ``C`` up to that step and
    ``role = "trunk point"``. Branches are rows like independent runs (``role = "branch"``,
    with ``trunk_id`` and ``branch_step``)."""
    import pandas as pd

    rows = []
    for r in store.rows():
        if status is not None and r["status"] != status:
            continue
        if r["spec"].get("role") == "trunk":
            if trunk_points:
                rows.extend(_trunk_points(store, r))
            continue
        row = run_columns(r["spec"]) | {"status": r["status"], "attempts": r["attempts"],
                                        "error": r["error"]}
        rows.append(row | result_columns(r["result"], r["run_dir"]))
    return pd.DataFrame(rows)


def _trunk_points(store, row: dict[str, Any]) -> list[dict[str, Any]]:
    """A trunk's eval loss at each of its branch points as rows of the run table, with the
    token and compute columns of a run that stopped there."""
    run = RunSpec.from_dict(row["spec"])
    evals = {p["step"]: p["eval_loss"] for p in store.curve(run.id) if p["eval_loss"] is not None}
    base = run_columns(row["spec"])
    out = []
    for step in run.train.get("keep_steps", ()):
        if step not in evals:
            continue
        share = step / run.steps  # of the trunk's schedule, whose tokens are the longest run's
        scaled = {k: base[k] * share for k in base if k == "D" or k.startswith("C")}
        out.append(base | scaled | {
            "id": f"{run.id}@{step}", "budget": scaled["C"], "role": "trunk point",
            "trunk_id": run.id, "branch_step": step, "status": row["status"],
            "loss": evals[step], "attempts": row["attempts"], "error": row["error"]})
    return out


def law_mapping(law_name: str | None, frame_columns) -> dict[str, str]:
    """Column renames that give a law the variables it expects under its own convention
    (``N`` → ``N_chinchilla`` for a chinchilla-convention law, ``G`` → ``G_act`` for Zhao)."""
    if law_name is None:
        return {}
    from moescale.laws import get_law

    law = get_law(law_name)
    mapping = {}
    if law.convention in CONVENTIONS:
        for var in ("N", "N_active", "C"):
            source = f"{var}_{law.convention}"
            if source in frame_columns:
                mapping[var] = source
    mapping.update({var: col for var, col in law.columns.items() if col in frame_columns})
    return mapping


def run_table(store, law: str | None = None):
    """A :class:`~moescale.runs.RunTable` of the store's done runs, with the columns ``law``
    needs taken under that law's counting convention."""
    from moescale.runs import RunTable

    frame = runs_frame(store)
    if frame.empty:
        raise MoescaleError(f"{store.path} has no finished run to fit")
    mapping = law_mapping(law, frame.columns)
    frame = frame.drop(columns=list(mapping), errors="ignore").rename(columns={v: k for k, v in mapping.items()})
    numeric = frame.select_dtypes("number")
    for name in ("id", *DATA_COLUMNS):  # text: run ids name residuals; corpora are told apart
        if name in frame.columns:
            numeric[name] = frame[name]
    return RunTable.from_frame(numeric, source=str(store.path))


# ----- importing folders of `moescale train` ---------------------------------------------------
def spec_from_train_folder(folder: str | Path, sweep: str = "imported") -> tuple[RunSpec, dict, list]:
    """(run spec, result, curve) of a finished ``moescale train`` run folder."""
    folder = Path(folder)
    info_path = folder / "run.json"
    if not info_path.is_file():
        raise MoescaleError(f"{folder} is not a moescale train run folder (no run.json)")
    try:
        info = json.loads(info_path.read_text())
        arch = Architecture.from_dict(info["architecture"])
        config = info["config"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise MoescaleError(f"{info_path} is not a moescale run description ({exc})") from None
    result = _end_record(folder)
    train = {k: config[k] for k in TRAIN_KEYS if k in config} | {"tokens": result["tokens"]}
    fpt = float(info["flops_per_token"])
    exact = count(arch, "exact", context=arch.seq_len).training_flops_per_token
    a = arch.to_dict()
    budget = float(result["flops"])
    run = RunSpec(id=run_id(budget, a, train, config.get("seed", 0)), sweep=sweep,
                  budget=budget, seed=config.get("seed", 0), architecture=a, train=train,
                  convention=config.get("convention", "exact"), flops_per_token=fpt,
                  flops_per_token_exact=exact, tags={"imported_from": str(folder)})
    curve = worker.read_curve(folder)
    evals = [p["eval_loss"] for p in curve if p.get("eval_loss") is not None]
    result["best_eval_loss"] = min(evals, default=result["eval_loss"])
    return run, result, curve


def specs_from_mlflow(uri: str, experiment: str,
                      sweep: str = "imported") -> list[tuple[RunSpec, dict, list]]:
    """(run spec, result, curve) of each finished run of MLflow ``experiment`` at ``uri`` that
    moescale's trainer logged (``--tracker mlflow``: its ``architecture.*`` and ``config.*``
    parameters, its final metrics), as :func:`spec_from_train_folder` gives them for a run
    folder. A run without them (logged by other code) is one error naming it."""
    import ast

    from moescale.tracker_runs import finished_runs

    def literal(text: str) -> Any:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text  # a bare string (ffn_type "swiglu")

    def nested(params: dict[str, str], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, text in params.items():
            if key.startswith(prefix):
                *parents, leaf = key[len(prefix):].split(".")
                node = out
                for name in parents:
                    node = node.setdefault(name, {}) if isinstance(node.get(name, {}), dict) \
                        else {}
                node[leaf] = literal(text)
        return out

    found = []
    for mlrun in finished_runs(uri, experiment):
        params, metrics = mlrun.data.params, dict(mlrun.data.metrics)
        name = mlrun.info.run_name
        try:
            arch = Architecture.from_dict(nested(params, "architecture."))
            config = nested(params, "config.")
            result = {k: metrics[k] for k in ("eval_loss", "train_loss", "tokens", "flops")}
        except (MoescaleError, KeyError) as exc:
            raise MoescaleError(f"MLflow run {name!r} of {experiment!r} was not logged by "
                                f"moescale's trainer ({exc}); fit its metrics directly "
                                "(moescale.tracker_runs.runs_from_mlflow) instead") from None
        result["tokens"] = int(result["tokens"])
        train = {k: config[k] for k in TRAIN_KEYS if k in config} | {"tokens": result["tokens"]}
        seed = int(config.get("seed", 0))
        fpt = result["flops"] / result["tokens"]
        exact = count(arch, "exact", context=arch.seq_len).training_flops_per_token
        a = arch.to_dict()
        run = RunSpec(id=run_id(result["flops"], a, train, seed), sweep=sweep,
                      budget=float(result["flops"]), seed=seed, architecture=a, train=train,
                      convention=config.get("convention", "exact"), flops_per_token=fpt,
                      flops_per_token_exact=exact,
                      tags={"imported_from": f"mlflow {uri} {experiment} {name}"})
        result["best_eval_loss"] = result["eval_loss"]
        found.append((run, result, []))
    return found


def _end_record(folder: Path) -> dict[str, Any]:
    log = folder / worker.LOG_FILE
    end = None
    if log.is_file():
        for line in log.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("event") == "end":
                end = rec
    if end is None:
        raise MoescaleError(f"{folder} has not finished (no end record in {worker.LOG_FILE}); "
                            "resume its training first")
    end.pop("event")
    return end


def runs_from_store(path, law: str | None = None):
    """The finished runs of the sweep store at ``path`` as a :class:`~moescale.runs.RunTable`;
    with ``law``, ``N``, ``N_active`` and ``C`` are counted under that law's convention."""
    from moescale.sweeps.store import SweepStore

    with SweepStore(path, create=False, readonly=True) as store:
        return run_table(store, law)


def runs_from_train_folders(folders: str | Path | Iterable[str | Path], law: str | None = None):
    """A RunTable of finished ``moescale train`` run folders (``run.json`` and the ``end``
    record of ``log.jsonl``), one row per folder with the columns of a sweep's export
    (:func:`run_columns`, :func:`result_columns`).

    Parameters
    ----------
    folders : path or iterable of paths
        Run folders, or one folder whose sub-folders are runs (``runs/*``).
    law : str, optional
        Take ``N``, ``N_active`` and ``C`` under this law's counting convention (as
        ``moescale fit --store`` does), so the table fits that law directly.
    """
    import pandas as pd

    from moescale.runs import RunTable

    paths = _run_folders(folders)
    rows = []
    for folder in paths:
        run, result, _ = spec_from_train_folder(folder)
        rows.append(run_columns(run.to_dict()) | result_columns(result, str(folder))
                    | {"folder": str(folder)})
    frame = pd.DataFrame(rows)
    mapping = law_mapping(law, frame.columns)
    frame = frame.drop(columns=list(mapping), errors="ignore") \
        .rename(columns={v: k for k, v in mapping.items()})
    source = str(paths[0].parent if len(paths) > 1 else paths[0])
    return RunTable.from_frame(frame.select_dtypes("number"), source=source)


def _run_folders(folders) -> list[Path]:
    """The run folders named, a folder of run folders expanded; none is an error."""
    if isinstance(folders, (str, Path)):
        given = [Path(folders)]
    elif isinstance(folders, (list, tuple)) and all(isinstance(f, (str, Path)) for f in folders):
        given = [Path(f) for f in folders]
    else:
        raise MoescaleError(f"`folders` must be a run folder or a list of them, got "
                            f"{type(folders).__name__}")
    out: list[Path] = []
    for path in given:
        if (path / "run.json").is_file():
            out.append(path)
        elif path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if (p / "run.json").is_file()))
        else:
            raise MoescaleError(f"run folder not found: {path}")
    if not out:
        raise MoescaleError("no moescale train run folder (with run.json) in "
                            + ", ".join(map(str, given)))
    return out
