"""The sweep specification: one TOML file → validated, deterministic :class:`RunSpec` s.

```toml
name = "isoflop-mini"
budgets = [3e11, 1e12]     # training FLOPs of each run, counted under `convention`
convention = "exact"       # tokens = budget / flops_per_token, rounded to whole steps
seeds = [0]
[base]                     # Architecture fields shared by every run
[[points]]                 # optional: explicit points, fields that vary together
                           # (e.g. hidden_size with expert_ffn); crossed with [grid]
[[arms]]                   # optional: the arms of a study (label = "G 2", fields and ratio
                           # axes that vary together); crossed with points and [grid]
[grid]                     # Cartesian product over Architecture fields, ratio axes
                           # (granularity, activation_ratio, shared_ratio) and [train] keys
[train]                    # options of `moescale train`; lr / batch_tokens may name a law
[holistic]                 # optional: m_over_na, n_over_na (, d_points, flops_per_token)
[resources]                # optional: cpus_per_run, gpus_per_run
[[runs]]                   # optional: single extra runs (budget = …, fields), e.g. those
                           # `moescale sweep suggest --append` proposes
```

A run's id is a hash of its full content (budget, architecture, training settings, seed),
so editing the spec to add points keeps every finished run.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moescale.accounting.architecture import Architecture
from moescale.errors import MoescaleError
from moescale.jsonio import content_hash
from moescale.sweeps import axes
from moescale.sweeps.reuse import NOT_IDENTITY, with_trunks
from moescale.training.config import (  # the trainer's limits and defaults (no torch import)
    MAX_TOKENS,
    SPEC_FIELDS,
    TRAIN_DEFAULTS,
)

TOP_KEYS = ("name", "description", "budgets", "convention", "seeds", "base", "points", "arms",
            "grid", "train", "holistic", "resources", "runs")
# Routing options of the model (moescale.training.options.model_options), set in [train] like
# the trainer's own: score function, top-k renormalisation and expert capacity.
ROUTING_KEYS = ("router", "norm_topk_prob", "capacity_factor")
# [train] keys: the TrainConfig fields a spec may set (the sweep owns the others,
# moescale.training.config.RUN_FIELDS) and the routing options.
TRAIN_KEYS = SPEC_FIELDS + ROUTING_KEYS
RESOURCE_KEYS = ("cpus_per_run", "gpus_per_run")
# [train] reuse: "trunk" trains one constant-LR trunk per model and branches a cooldown per
# budget (moescale.sweeps.reuse); "none" trains every run from scratch
REUSE_OPTIONS = ("none", "trunk")
# TrainConfig's defaults written into every run (and so into its id): the rest stay implicit
DEFAULT_TRAIN = {k: TRAIN_DEFAULTS[k] for k in ("batch_tokens", "lr", "data", "tokenizer")}
BPE_DEFAULT_VOCAB = 4096  # TrainConfig's BPE default
MAX_RUNS = 100_000  # runs of one spec; counted before expansion, a larger grid is refused
DEFAULT_SEQ_LEN = 256  # training context when neither [base] nor [train] gives one


@dataclass(frozen=True)
class RunSpec:
    """One training run of a sweep: everything needed to train it, and its id.

    ``flops_per_token`` is counted under the spec's ``convention`` with the training context;
    ``budget`` is the requested training FLOPs and ``flops`` the realised ones
    (``tokens × flops_per_token``) after rounding to whole optimizer steps.
    """

    id: str
    sweep: str
    budget: float
    seed: int
    architecture: dict[str, Any]
    train: dict[str, Any]  # TrainConfig fields, tokens included
    convention: str
    flops_per_token: float
    flops_per_token_exact: float
    tags: dict[str, Any] = field(default_factory=dict)  # grid point and targets
    # lineage under [train] reuse = "trunk" (moescale.sweeps.reuse): a "trunk" trains the
    # shared constant-LR part; a "branch" starts from its trunk's checkpoint at branch_step
    role: str = "run"
    trunk: str | None = None
    branch_step: int | None = None

    @property
    def tokens(self) -> int:
        return int(self.train["tokens"])

    @property
    def flops(self) -> float:
        return self.tokens * self.flops_per_token

    @property
    def steps(self) -> int:
        """Optimizer steps of the run's schedule (a trunk's: those of its longest branch)."""
        return self.tokens // int(self.train["batch_tokens"])

    @property
    def first_step(self) -> int:
        """The step this run starts at: a branch's branch point, else 0."""
        return int(self.branch_step or 0)

    @property
    def last_step(self) -> int:
        """The step this run ends at: a trunk's last branch point, else :attr:`steps`."""
        return int(self.train["stop_after_steps"]) if self.role == "trunk" else self.steps

    @property
    def own_flops(self) -> float:
        """The FLOPs this run itself spends (``first_step`` to ``last_step``): all of an
        independent run, a trunk up to its last branch point, a branch its cooldown. A branch
        still counts as the papers count a run (:attr:`flops`, trunk share included)."""
        return ((self.last_step - self.first_step) * int(self.train["batch_tokens"])
                * self.flops_per_token)

    def arch(self) -> Architecture:
        return Architecture.from_dict(self.architecture)

    def label(self) -> str:
        point = ", ".join(f"{k}={_short(v)}" for k, v in self.tags.items()
                          if not isinstance(v, (list, dict)))
        return f"budget {self.budget:g}" + (f", {point}" if point else "") + f", seed {self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """The run as plain data; lineage fields only for trunks and branches (so the specs
        of independent runs read as before)."""
        out = dataclasses.asdict(self)
        if self.role == "run":
            for key in ("role", "trunk", "branch_step"):
                del out[key]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        return cls(**data)


def run_id(budget: float, architecture: dict, train: dict, seed: int) -> str:
    """Deterministic id of a run's content (16 hex digits of a SHA-256)."""
    train = {k: v for k, v in train.items() if k not in NOT_IDENTITY}
    return content_hash({"budget": budget, "architecture": architecture, "train": train,
                         "seed": seed})


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file; :meth:`expand` gives its runs."""

    name: str
    budgets: tuple[float, ...]
    convention: str = "exact"
    seeds: tuple[int, ...] = (0,)
    base: dict[str, Any] = field(default_factory=dict)
    points: tuple[dict[str, Any], ...] = ({},)
    arms: tuple[dict[str, Any], ...] = ({},)
    grid: dict[str, list] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    holistic: dict[str, Any] | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    runs: tuple[dict[str, Any], ...] = ()
    description: str = ""
    source: str = "<spec>"
    reuse: str = "none"  # [train] reuse (REUSE_OPTIONS)

    @classmethod
    def load(cls, path: str | Path) -> SweepSpec:
        """Read and validate a TOML spec file."""
        p = Path(path)
        if not p.is_file():
            raise MoescaleError(f"sweep spec not found: {p}")
        try:
            data = tomllib.loads(p.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise MoescaleError(f"{p} is not valid TOML: {exc}") from None
        return cls.from_dict(data, source=str(p))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<spec>") -> SweepSpec:
        if not isinstance(data, dict):
            raise MoescaleError(f"{source}: a sweep spec is a table of keys (name, budgets, "
                                f"[base], …), got {type(data).__name__}")
        unknown = sorted(set(data) - set(TOP_KEYS))
        if unknown:
            raise MoescaleError(f"{source}: unknown key(s) {', '.join(unknown)}; "
                                f"valid keys: {', '.join(TOP_KEYS)}")
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise MoescaleError(f"{source}: 'name' must be a non-empty string")
        train = _train(data, source)
        reuse = train.pop("reuse", "none")
        if reuse not in REUSE_OPTIONS:
            raise MoescaleError(f"{source}: [train] reuse must be one of "
                                f"{', '.join(map(repr, REUSE_OPTIONS))}, got {reuse!r}")
        if reuse == "trunk" and train.get("schedule", "wsd") != "wsd":
            raise MoescaleError(f"{source}: [train] reuse = \"trunk\" branches the cooldown of "
                                f"a WSD schedule; schedule = {train['schedule']!r} has none")
        spec = cls(name=name, budgets=_budgets(data.get("budgets"), source),
                   convention=_convention(data.get("convention", "exact"), source),
                   seeds=_seeds(data.get("seeds", [0]), source),
                   base=_table(data, "base", source), points=_points(data, source),
                   arms=_points(data, source, "arms"),
                   grid=_grid(data, source),
                   train={**DEFAULT_TRAIN, **train}, reuse=reuse,
                   holistic=_holistic(data, source),
                   resources=_resources(data, source), runs=_explicit_runs(data, source),
                   description=str(data.get("description", "")), source=source)
        _grid_point_overlap(spec, source)
        n = spec.count_runs()
        if n > MAX_RUNS:
            raise MoescaleError(f"{source}: the spec makes {n:,} runs (before duplicates are "
                                f"merged), more than the {MAX_RUNS:,} a sweep may hold; split it "
                                "or use fewer grid values, budgets or seeds")
        if not spec.expand():  # every run must validate before anything runs
            raise MoescaleError(f"{source}: the spec makes no run")
        return spec

    def count_runs(self) -> int:
        """Runs the spec makes, counted without expanding it (duplicates counted)."""
        per_point = 1
        if self.holistic is not None:
            h = self.holistic
            d_points = h.get("d_points")
            per_point = len(h["m_over_na"]) * len(h["n_over_na"]) * (
                d_points if isinstance(d_points, int) and d_points > 0 else 1)
        grid = math.prod(len(v) for v in self.grid.values())
        n = (len(self.budgets) * len(self.points) * len(self.arms) * grid * per_point
             * len(self.seeds))
        return n + sum(per_point * (1 if "seed" in r else len(self.seeds)) for r in self.runs)

    # ----- expansion -----------------------------------------------------------------------
    def expand(self) -> list[RunSpec]:
        """Every run: budgets × points × arms × grid points × holistic targets × seeds, in that
        order.

        Runs whose content coincides (same id) appear once — the dense model once per size
        whatever the MoE axes say; ``[[runs]]`` entries come last.
        Expanded once per spec (a cached list; each call returns a copy).
        """
        cached = self.__dict__.get("_expanded")
        if cached is None:
            cached = self._expand()
            object.__setattr__(self, "_expanded", cached)
        return list(cached)

    def _expand(self) -> list[RunSpec]:
        object.__setattr__(self, "_memo", {})
        runs: dict[str, RunSpec] = {}
        keys = list(self.grid)
        for budget in self.budgets:
            for fixed, arm, values in itertools.product(
                    self.points, self.arms, itertools.product(*(self.grid[k] for k in keys))):
                point = {**fixed, **arm, **dict(zip(keys, values, strict=True))}
                for fields, train, tags in self._variants(budget, point):
                    for seed in self.seeds:
                        run = self._run(budget, fields, train, {**point, **tags}, seed)
                        runs.setdefault(run.id, run)
        for entry in self.runs:
            point = {k: v for k, v in entry.items() if k not in ("budget", "seed")}
            seeds = [entry["seed"]] if "seed" in entry else self.seeds
            for fields, train, tags in self._variants(entry["budget"], point):
                for seed in seeds:
                    run = self._run(entry["budget"], fields, train, {**point, **tags}, seed)
                    runs.setdefault(run.id, run)
        object.__setattr__(self, "_memo", {})
        if self.reuse == "trunk":
            return with_trunks(runs.values())
        return list(runs.values())

    def _variants(self, budget: float, point: dict):
        """(architecture fields, train settings, tags) for one budget and grid point."""
        arch_point = {k: v for k, v in point.items() if k not in TRAIN_KEYS and k != "label"}
        train = {**self.train, **{k: v for k, v in point.items() if k in TRAIN_KEYS}}
        fields = {**self.base, **arch_point}
        train = axes.routing_of_ratio_axes(fields, train)
        if "seq_len" in point:  # a grid or point value sets the context of model and training
            fields["seq_len"] = point["seq_len"]
        where = _where(budget, point)
        try:
            fields = axes.resolve_dense(axes.resolve_ratios(fields))
            if self.holistic is None:
                return [(fields, train, {})]
            h = self.holistic
            return [(f, train, tags)
                    for x in h["m_over_na"] for y in h["n_over_na"]
                    for f, tags in axes.holistic_architectures(fields, budget, x, y, h)]
        except MoescaleError as exc:
            raise MoescaleError(f"{self.source}: run {where}: {exc}") from None

    def _run(self, budget: float, fields: dict, train: dict, tags: dict, seed: int) -> RunSpec:
        if fields.get("n_experts", 0) in (0, 1):  # dense: one run per size, whatever the arms
            tags = {k: v for k, v in tags.items() if k not in DENSE_CLEARED}
        where = _where(budget, tags, seed)
        try:
            arch, counts, exact, a = self._model(fields, train)
            seq_len = arch.seq_len
            train = _resolve_hyper(train, budget, arch, counts)
            self._check_train(train, seq_len)
            per_step = seq_len * int(train.get("grad_accum", 1))
            if train["batch_tokens"] % per_step:
                raise MoescaleError(f"batch_tokens={train['batch_tokens']} must be a multiple "
                                    f"of seq_len × grad_accum = {per_step}")
            fpt = counts.training_flops_per_token
            steps = round(budget / (fpt * train["batch_tokens"]))
            if steps < 1:
                raise MoescaleError(
                    f"budget {budget:g} FLOPs is less than one optimizer step "
                    f"({fpt * train['batch_tokens']:.3g} FLOPs = {train['batch_tokens']} tokens × "
                    f"{fpt:.4g} FLOPs/token); raise the budget or lower batch_tokens")
            tokens = steps * train["batch_tokens"]
            warmup = train.get("warmup_steps")
            if isinstance(warmup, int) and not isinstance(warmup, bool) and warmup >= steps:
                raise MoescaleError(f"warmup_steps = {warmup} is not shorter than the run's "
                                    f"{steps} steps: it would never reach its peak learning "
                                    "rate; lower warmup_steps or raise the budget")
            if tokens > MAX_TOKENS:
                raise MoescaleError(
                    f"budget {budget:g} FLOPs means {tokens:.3g} training tokens at "
                    f"{fpt:.4g} FLOPs/token, more than the trainer's limit of {MAX_TOKENS:.0e}")
        except MoescaleError as exc:
            raise MoescaleError(f"{self.source}: run {where}: {exc}") from None
        train = {**_routing(train, arch, where), "tokens": tokens}
        return RunSpec(id=run_id(budget, a, train, seed), sweep=self.name, budget=budget,
                       seed=seed, architecture=a, train=train, convention=self.convention,
                       flops_per_token=fpt, flops_per_token_exact=exact.training_flops_per_token,
                       tags=tags)

    def _model(self, fields: dict, train: dict):
        """(architecture, counts, exact counts, architecture dict) of a run's fields; the
        same fields at another budget or seed are counted once."""
        from moescale.accounting.counting import count

        memo = self.__dict__.setdefault("_memo", {})
        key = ("model", _key(fields), _key({k: train.get(k) for k in
                                             ("seq_len", "tokenizer", "vocab_size")}))
        if key not in memo:
            _check_vocab(fields, train)
            fields = {**fields, "vocab_size": _vocab(fields, train)}
            seq_len = _seq_len(fields, train)
            arch = Architecture.from_dict({**fields, "seq_len": seq_len,
                                           "name": fields.get("name") or self.name})
            memo[key] = (arch, count(arch, self.convention, context=seq_len),
                         count(arch, "exact", context=seq_len), arch.to_dict())
        return memo[key]

    def _check_train(self, train: dict, seq_len: int) -> None:
        """The run's [train] settings pass the trainer's own rules (:class:`TrainConfig`) and
        name a readable text corpus; checked once per distinct setting."""
        memo = self.__dict__.setdefault("_memo", {})
        key = ("train", _key(train), seq_len)
        if key in memo:
            return
        from moescale.training.config import TrainConfig

        options = {k: v for k, v in train.items() if k not in ROUTING_KEYS}
        options.setdefault("seq_len", seq_len)
        try:
            TrainConfig(**options, tokens=int(train["batch_tokens"]), convention=self.convention)
        except TypeError as exc:  # a value of the wrong kind (e.g. a list for a number)
            raise MoescaleError(f"[train] {exc}") from None
        _check_data(train.get("data", "kjv"), train.get("text_column"), memo,
                    train.get("tokenizer"), train.get("vocab_size"))
        memo[key] = True


def _key(value) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def _check_vocab(fields: dict, train: dict) -> None:
    """A vocabulary must be a positive whole number; with BPE, 0 is not "the default"."""
    bpe = train.get("tokenizer", "bytes") == "bpe"
    for where, given in (("[train] vocab_size", train.get("vocab_size")),
                         ("vocab_size", fields.get("vocab_size"))):
        if given is None:
            continue
        if isinstance(given, bool) or not isinstance(given, int):
            raise MoescaleError(f"{where} must be a whole number, got {given!r}")
        if given < 1 or (bpe and where.startswith("[train]") and not 257 <= given <= 1 << 20):
            raise MoescaleError(f"{where} = {given} is not a{' BPE' if bpe else ''} vocabulary; "
                                + ("give 257..1048576 or leave it out "
                                   f"({BPE_DEFAULT_VOCAB})" if bpe else "give a positive size"))


def _check_data(data, text_column, memo: dict, tokenizer=None, vocab_size=None) -> None:
    """``data`` names a usable corpus (:func:`moescale.training.corpora.sources.resolve_source`: the
    built-in one, text, rows with a text column, token files or a prepared folder); a text
    file must be UTF-8 text, not a binary file; a prepared folder opens with the spec's
    tokenizer (the one that made it) and takes no text column."""
    from moescale.training.corpora import open_prepared, resolve_source

    if not isinstance(data, str) or not data:
        raise MoescaleError(f"[train] data must be 'kjv', a file or a folder, got {data!r}")
    key = ("data", data, text_column, tokenizer, vocab_size)
    if key in memo:
        return
    try:
        source = resolve_source(data, text_column)  # refuses a text_column on tokens
        if source.kind == "prepared":  # a tokenizer file must be the one that made it
            open_prepared(Path(data), tokenizer, vocab_size)
    except MoescaleError as exc:
        raise MoescaleError(f"[train] data: {exc}") from None
    for path in source.files if source.kind == "text" else ():
        _check_text_file(path)
    memo[key] = True


def _check_text_file(path: Path) -> None:
    """The first 64 KiB of a text source must be UTF-8 text (a data file named by mistake)."""
    from moescale.training.data import check_text_bytes

    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError as exc:
        raise MoescaleError(f"[train] data file {path} cannot be read: "
                            f"{exc.strerror or exc}") from None
    try:
        check_text_bytes(path, head, head=True)
    except MoescaleError as exc:
        raise MoescaleError(f"[train] data file {exc}") from None


def _grid_point_overlap(spec: SweepSpec, source: str) -> None:
    """A field in two of [grid], [[points]] and [[arms]]: one would silently win."""
    sets = {"[grid]": set(spec.grid), "[[points]]": {k for p in spec.points for k in p},
            "[[arms]]": {k for p in spec.arms for k in p} - {"label"}}
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = sorted(sets[a] & sets[b])
            if both:
                raise MoescaleError(f"{source}: {', '.join(both)} set both in {a} and in {b}; "
                                    "one would replace the other — give each field in one of them")


# ----- validation helpers -----------------------------------------------------------------------
def _where(budget: float, point: dict, seed: int | None = None) -> str:
    parts = [f"budget {budget:g}"] + [f"{k}={_short(v)}" for k, v in point.items()
                                       if not isinstance(v, (list, dict))]
    return "(" + ", ".join(parts) + (f", seed {seed}" if seed is not None else "") + ")"


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _budgets(value, source: str) -> tuple[float, ...]:
    if value is None:
        raise MoescaleError(f"{source}: 'budgets' is missing (training FLOPs per run, e.g. [1e12])")
    values = value if isinstance(value, list) else [value]
    if not values:
        raise MoescaleError(f"{source}: 'budgets' is empty")
    for v in values:
        if isinstance(v, str):
            from moescale.units import parse_positive

            v = parse_positive(v, "budget")
        if not _number(v) or v <= 0:
            raise MoescaleError(f"{source}: budget {_short(v)} must be a positive number of FLOPs")
    return tuple(sorted({float(v) for v in values}))


def _convention(value, source: str) -> str:
    from moescale.accounting.conventions import CONVENTIONS

    if not isinstance(value, str) or value not in CONVENTIONS:
        raise MoescaleError(f"{source}: convention {value!r} is not one of "
                            f"{', '.join(CONVENTIONS)}")
    return value


def _seeds(value, source: str) -> tuple[int, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in values):
        raise MoescaleError(f"{source}: 'seeds' must be a list of non-negative integers")
    return tuple(dict.fromkeys(values))


def _table(data: dict, key: str, source: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise MoescaleError(f"{source}: [{key}] must be a table")
    return dict(value)


def _arch_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(Architecture)}


def _grid(data: dict, source: str) -> dict[str, list]:
    grid = _table(data, "grid", source)
    allowed = _arch_fields() | set(axes.RATIO_AXES) | set(TRAIN_KEYS)
    for key, values in grid.items():
        if key not in allowed:
            raise MoescaleError(f"{source}: [grid] {key} is not an architecture field, a ratio "
                                f"axis ({', '.join(axes.RATIO_AXES)}) or a [train] key")
        if not isinstance(values, list) or not values:
            raise MoescaleError(f"{source}: [grid] {key} must be a non-empty list")
    base = _table(data, "base", source)
    unknown = sorted(set(base) - _arch_fields() - set(axes.RATIO_AXES))
    if unknown:
        raise MoescaleError(f"{source}: [base] has unknown architecture field(s) "
                            f"{', '.join(unknown)}")
    return grid


# Tags a dense run does not keep: the MoE axes and fields that its dense model ignores.
DENSE_CLEARED = ("granularity", "shared_ratio", "activation_ratio", "n_experts", "top_k",
                 "n_shared_experts", "label")


def _points(data: dict, source: str, key: str = "points") -> tuple[dict, ...]:
    """``[[points]]`` (or ``[[arms]]``: the same, plus an optional text ``label``)."""
    points = data.get(key)
    if points is None:
        return ({},)
    if not isinstance(points, list) or not points or not all(isinstance(p, dict) for p in points):
        raise MoescaleError(f"{source}: '{key}' must be a non-empty array of tables "
                            f"([[{key}]] sections)")
    allowed = _arch_fields() | set(axes.RATIO_AXES) | set(TRAIN_KEYS)
    if key == "arms":
        allowed |= {"label"}
    for i, point in enumerate(points, 1):
        unknown = sorted(set(point) - allowed)
        if unknown:
            raise MoescaleError(f"{source}: [[{key}]] #{i} has unknown field(s) "
                                f"{', '.join(unknown)}")
        if "label" in point and (not isinstance(point["label"], str) or not point["label"].strip()):
            raise MoescaleError(f"{source}: [[arms]] #{i}: label must be a non-empty string")
    labels = [p["label"] for p in points if "label" in p]
    if len(set(labels)) != len(labels):
        raise MoescaleError(f"{source}: [[arms]] labels must differ, got {labels}")
    return tuple(points)


def _explicit_runs(data: dict, source: str) -> tuple[dict, ...]:
    runs = data.get("runs", [])
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise MoescaleError(f"{source}: 'runs' must be an array of tables ([[runs]] sections)")
    allowed = _arch_fields() | set(axes.RATIO_AXES) | set(TRAIN_KEYS) | {"budget", "seed"}
    out = []
    for i, run in enumerate(runs, 1):
        unknown = sorted(set(run) - allowed)
        if unknown:
            raise MoescaleError(f"{source}: [[runs]] #{i} has unknown field(s) {', '.join(unknown)}")
        if "budget" not in run:
            raise MoescaleError(f"{source}: [[runs]] #{i} needs a budget (training FLOPs)")
        budget = _budgets([run["budget"]], f"{source}: [[runs]] #{i}")[0]
        seed = run.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise MoescaleError(f"{source}: [[runs]] #{i} seed must be a non-negative integer")
        out.append({**run, "budget": budget})
    return tuple(out)


def _train(data: dict, source: str) -> dict:
    train = _table(data, "train", source)
    unknown = sorted(set(train) - set(TRAIN_KEYS) - {"reuse"})
    if unknown:
        raise MoescaleError(f"{source}: [train] has unknown key(s) {', '.join(unknown)}; "
                            f"valid keys: {', '.join((*TRAIN_KEYS, 'reuse'))}")
    return train


def _holistic(data: dict, source: str) -> dict | None:
    if "holistic" not in data:
        return None
    h = _table(data, "holistic", source)
    unknown = sorted(set(h) - axes.HOLISTIC_KEYS)
    if unknown:
        raise MoescaleError(f"{source}: [holistic] has unknown key(s) {', '.join(unknown)}; "
                            f"valid keys: {', '.join(sorted(axes.HOLISTIC_KEYS))}")
    for key in ("m_over_na", "n_over_na"):
        values = h.get(key)
        values = values if isinstance(values, list) else [values]
        if not values:
            raise MoescaleError(f"{source}: [holistic] {key} is empty; give at least one target")
        if not all(_number(v) for v in values):
            raise MoescaleError(f"{source}: [holistic] {key} must be a list of numbers")
        h[key] = [float(v) for v in values]
    return h


def _resources(data: dict, source: str) -> dict:
    res = _table(data, "resources", source)
    for key, value in res.items():
        if key not in RESOURCE_KEYS:
            raise MoescaleError(f"{source}: [resources] {key} is unknown; valid keys: "
                                f"{', '.join(RESOURCE_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise MoescaleError(f"{source}: [resources] {key} must be a non-negative integer")
    return res


def _seq_len(fields: dict, train: dict) -> int:
    """The training context: ``[train] seq_len``, else the architecture's ``seq_len``, else
    256. Both given and different is an error (one would be silently dropped)."""
    arch, given = fields.get("seq_len"), train.get("seq_len")
    for where, value in (("[base] seq_len", arch), ("[train] seq_len", given)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 2):
            raise MoescaleError(f"{where} must be a whole number of at least 2 tokens, "
                                f"got {value!r}")
    if arch is not None and given is not None and arch != given:
        raise MoescaleError(f"[base] seq_len = {arch} and [train] seq_len = {given} differ; "
                            "give the training context once")
    return int(given or arch or DEFAULT_SEQ_LEN)


def _routing(train: dict, arch: Architecture, where: str) -> dict:
    """``train`` with its routing options checked; dense runs drop them (they have no router)
    and top-1 MoE runs record their renormalisation, which decides whether the router learns.
    """
    from moescale.training.routing import frozen_router_gate, resolve_norm_topk_prob

    if not arch.is_moe:
        return {k: v for k, v in train.items() if k not in ROUTING_KEYS}
    router, norm, cap = (train.get(k) for k in ROUTING_KEYS)
    if router is not None and router not in ("softmax", "sigmoid"):
        raise MoescaleError(f"run {where}: router must be 'softmax' or 'sigmoid', got {router!r}")
    if norm is not None and not isinstance(norm, bool):
        raise MoescaleError(f"run {where}: norm_topk_prob must be true or false, got {norm!r}")
    if cap is not None and not (_number(cap) and math.isfinite(cap) and cap > 0):
        raise MoescaleError(f"run {where}: capacity_factor must be a positive number, got {cap!r}")
    if frozen_router_gate(arch.top_k, norm):
        raise MoescaleError(f"run {where}: top-1 routing with norm_topk_prob = true gives every "
                            "token the weight 1, so the router learns nothing from the loss; "
                            "set norm_topk_prob = false (the default for top-1)")
    if arch.top_k == 1:
        return {**train, "norm_topk_prob": resolve_norm_topk_prob(norm, 1)}
    return train


def _vocab(fields: dict, train: dict) -> int:
    """The vocabulary the trainer will use (the tokenizer's); a conflicting one is an error.

    A prepared corpus (``data = "DIR"`` of ``moescale data prepare``) and a tokenizer file
    give their own vocabulary, which ``[train] vocab_size`` may pad; a raw token file needs
    ``vocab_size`` (``[train]`` or ``[base]``). The default ``tokenizer = "bytes"`` does not
    apply to data that holds token ids already."""
    from moescale.training.corpora import is_token_source, resolve_vocab

    data, tokenizer = str(train.get("data", "kjv")), train.get("tokenizer", "bytes")
    if is_token_source(data) or tokenizer not in ("bytes", "bpe"):
        arch = fields.get("vocab_size")
        vocab = resolve_vocab(data, tokenizer, train.get("vocab_size"), arch)
        if arch is not None and arch != vocab:
            raise MoescaleError(f"[base] vocab_size = {arch} but the run's tokens have a "
                                f"vocabulary of {vocab}; drop it (or pad with [train] "
                                "vocab_size)")
        return vocab
    if tokenizer == "bytes":
        given = fields.get("vocab_size", 256)
        if given != 256:
            raise MoescaleError(f"vocab_size={given} but the bytes tokenizer has 256 tokens; "
                                "set vocab_size = 256 or tokenizer = 'bpe'")
        return 256
    return int(train.get("vocab_size") or fields.get("vocab_size") or BPE_DEFAULT_VOCAB)


def _resolve_hyper(train: dict, budget: float, arch: Architecture, counts) -> dict:
    """Numbers for ``lr`` and ``batch_tokens``; a law name is evaluated with its first preset."""
    out = dict(train)
    for key, target in (("lr", "lr"), ("batch_tokens", "batch_size")):
        value = out.get(key)
        if isinstance(value, str):
            out[key] = _from_law(value, target, budget, arch, counts)
            if key == "batch_tokens":  # whole sequences, at least one
                seq = arch.seq_len
                out[key] = max(int(round(out[key] / seq)), 1) * seq
        if not _number(out.get(key)) or out[key] <= 0:
            raise MoescaleError(f"{key} must be a positive number or a law name, got {value!r}")
    if not float(out["batch_tokens"]).is_integer():
        raise MoescaleError(f"batch_tokens must be a whole number, got {out['batch_tokens']}")
    out["batch_tokens"] = int(out["batch_tokens"])
    return out


def _from_law(name: str, target: str, budget: float, arch: Architecture, counts) -> float:
    from moescale.accounting.counting import count
    from moescale.laws import get_law

    law = get_law(name)
    if law.target != target:
        raise MoescaleError(f"law {name!r} predicts {law.target}, not {target}")
    if not law.presets:
        raise MoescaleError(f"law {name!r} has no published coefficients to set {target}")
    conv = counts if law.convention in ("any", counts.convention.name) else count(
        arch, law.convention, context=arch.seq_len)
    known = {"C": budget, "N": conv.params, "N_active": conv.params_active,
             "N_a": conv.params_active, "E": arch.n_experts or 1, "G": arch.granularity,
             "S": arch.shared_ratio}
    missing = [v for v in law.variables if v not in known]
    if missing:
        raise MoescaleError(f"law {name!r} needs {', '.join(missing)}, which a sweep run does "
                            "not know before training; give a number instead")
    preset = next(iter(law.presets))
    return float(law.predict(preset, {v: known[v] for v in law.variables}))
