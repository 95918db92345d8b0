"""Settings search on a temporal validation split of the shop's own data, with Optuna.

A search space maps dotted config paths (``collaborative.factors``, ``candidates.sources.0.n``)
to ranges; each trial fits a system on the split's earlier part and scores NDCG@k on the
held-out newest events, which the test set of an evaluation never sees. The first trial is
always the base settings and always runs, so a search can only keep or improve them on
validation; no other trial starts when the longest so far would end past the budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd

from recsys.config import RecommenderConfig
from recsys.evaluation.baselines import (
    ImplicitSystem,
    PipelineSystem,
    System,
    long_tail_items,
    validation_split,
    with_overrides,
)
from recsys.evaluation.metrics import exposure_share, ndcg_values
from recsys.evaluation.protocol import Exclusions, Protocol
from recsys.privacy.policy import Policy
from recsys.rerank.stages import MMR, FairTopK, RerankConfig


@dataclass(frozen=True)
class Range:
    """A numeric setting between ``low`` and ``high`` (integers when both are ints)."""

    low: float
    high: float
    log: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        if isinstance(self.low, int) and isinstance(self.high, int):
            return trial.suggest_int(name, self.low, self.high, log=self.log)
        value = trial.suggest_float(name, float(self.low), float(self.high), log=self.log)
        return float(f"{value:.3g}")  # three digits: what the TOML says is what was tried


@dataclass(frozen=True)
class Choice:
    """One of a few values."""

    values: tuple[Any, ...]

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.values))


Space = Mapping[str, Range | Choice]


@dataclass(frozen=True)
class Split:
    """A validation split: fit on ``inner``, score on ``truth`` (relevant held-out items per
    user) with ``exclude`` (items no list may hold) under the run's protocol."""

    inner: pd.DataFrame
    truth: dict[str, set[str]]
    exclude: Exclusions | None
    items: pd.DataFrame
    users: pd.DataFrame

    @classmethod
    def carve(
        cls,
        train: pd.DataFrame,
        items: pd.DataFrame,
        users: pd.DataFrame,
        *,
        fraction: float = 0.2,
        protocol: Protocol | None = None,
        max_users: int | None = None,
        seed: int = 0,
    ) -> Split:
        """Each user's newest ``fraction`` of ``train`` held out; at most ``max_users`` scored
        (a random sample: a large shop's search needs no more for a stable NDCG)."""
        inner, truth, exclude = validation_split(train, items, fraction, protocol)
        if max_users is not None and len(truth) > max_users:
            keep = np.random.default_rng(seed).choice(sorted(truth), max_users, replace=False)
            truth = {u: truth[u] for u in sorted(keep)}
        return cls(inner, truth, exclude, items, users)

    def minimized(self, cfg: RecommenderConfig, policy: Policy | None) -> Split:
        """The split with its fitting part reduced as the pipeline reduces it (consent,
        retention, history caps): what a bare collaborative model may learn from."""
        from recsys.data.dataset import Dataset
        from recsys.model.train import minimized

        ds = Dataset(interactions=self.inner, items=self.items, users=self.users)
        md = minimized(ds, cfg, policy or Policy.default(), now=self.inner["timestamp"].max())
        return Split(md.interactions, self.truth, self.exclude, self.items, self.users)

    def score(self, recs: Mapping[str, Sequence[str]], k: int) -> float:
        return float(ndcg_values(recs, self.truth, k).mean())


@dataclass
class TrialRecord:
    number: int
    params: dict[str, Any]
    ndcg: float | None
    seconds: float
    long_tail: float | None = None


@dataclass
class SearchResult:
    """The best settings found (``params``: dotted overrides) and every trial."""

    name: str
    params: dict[str, Any]
    ndcg: float
    trials: list[TrialRecord] = field(default_factory=list)
    seconds: float = 0.0
    long_tail: float | None = None
    met: bool = True
    """Re-ranking: whether any trial reached the minimum long-tail exposure."""

    @property
    def base_ndcg(self) -> float | None:
        """Validation NDCG of the base settings (always the first trial)."""
        first = self.trials[0] if self.trials else None
        return first.ndcg if first is not None else None


def _budget_callback(budget_s: float, started: float, durations: list[float]):
    """Stops the study when the next trial could end past the budget (as long as the longest
    so far)."""

    def check(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        spent = time.perf_counter() - started
        longest = max(durations, default=0.0)  # trials vary 10x with their settings
        if spent + longest > budget_s:
            study.stop()

    return check


def covering(space: Space, first: Mapping[str, Any] | None) -> dict[str, Range | Choice]:
    """``space`` widened where the base settings lie outside it, so the first trial is them."""
    out = dict(space)
    for key, value in (first or {}).items():
        rng = out.get(key)
        if isinstance(rng, Range) and isinstance(value, int | float) and value is not None:
            low, high = min(rng.low, value), max(rng.high, value)
            if rng.log and low <= 0:
                continue
            out[key] = Range(type(rng.low)(low), type(rng.high)(high), rng.log)
        elif isinstance(rng, Choice) and value not in rng.values:
            out[key] = Choice((*rng.values, value))
    return out


def _optimize(
    name: str,
    objective: Callable[[optuna.Trial], tuple[float, TrialRecord]],
    *,
    budget_s: float,
    max_trials: int | None,
    seed: int,
    first: Mapping[str, Any] | None,
    progress: bool,
    constraint: Callable[[TrialRecord], float] | None = None,
    also: Sequence[Mapping[str, Any]] = (),
) -> tuple[optuna.Study, list[TrialRecord], float]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    records: list[TrialRecord] = []
    durations: list[float] = []

    def wrapped(trial: optuna.Trial) -> float:
        t0 = time.perf_counter()
        value, rec = objective(trial)
        rec.seconds = time.perf_counter() - t0
        durations.append(rec.seconds)
        records.append(rec)
        if constraint is not None:  # feasible at <= 0: TPE learns where the minimum holds
            trial.set_constraint("minimum", constraint(rec))
        return value

    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=8, multivariate=True)
    study = optuna.create_study(direction="maximize", sampler=sampler, study_name=name)
    for point in [first, *also] if first else also:
        study.enqueue_trial(dict(point), skip_if_exists=True)
    started = time.perf_counter()
    study.optimize(wrapped, n_trials=1, catch=())  # the base settings, whatever the budget
    left = budget_s - (time.perf_counter() - started)
    more = None if max_trials is None else max_trials - 1
    if left > durations[-1] and (more is None or more > 0):
        study.optimize(
            wrapped,
            n_trials=more,
            timeout=left,
            callbacks=[_budget_callback(budget_s, started, durations)],
            show_progress_bar=progress,
            catch=(),
        )
    return study, records, time.perf_counter() - started


def search(
    name: str,
    make: Callable[..., System],
    space: Space,
    split: Split,
    *,
    budget_s: float,
    k: int = 10,
    max_trials: int | None = None,
    fixed: Mapping[str, Any] | None = None,
    first: Mapping[str, Any] | None = None,
    also: Sequence[Mapping[str, Any]] = (),
    seed: int = 0,
    progress: bool = False,
) -> SearchResult:
    """Best validation NDCG@k of ``make(**fixed, **params)`` over ``space`` within ``budget_s``
    seconds (and ``max_trials``); ``first`` is tried first (the base settings), ``also`` next."""
    space = covering(space, first)
    users_v = sorted(split.truth)

    def objective(trial: optuna.Trial) -> tuple[float, TrialRecord]:
        params = {key: rng.suggest(trial, key) for key, rng in space.items()}
        system = make(**{**(fixed or {}), **params}).fit(split.inner, split.items, split.users)
        value = split.score(system.recommend_all(users_v, k, split.exclude), k)
        return value, TrialRecord(trial.number, params, value, 0.0)

    _, records, seconds = _optimize(
        name, objective, budget_s=budget_s, max_trials=max_trials, seed=seed, first=first,
        progress=progress, also=also,
    )  # fmt: skip
    best = max(records, key=lambda r: r.ndcg if r.ndcg is not None else -math.inf)
    return SearchResult(name, dict(best.params), float(best.ndcg or 0.0), records, seconds)


def search_rerank(
    system: PipelineSystem,
    space: Space,
    split: Split,
    *,
    min_long_tail: float,
    budget_s: float,
    k: int = 10,
    max_trials: int | None = None,
    first: Mapping[str, Any] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> SearchResult:
    """Re-ranking settings with the best validation NDCG@k among those that give the long tail
    at least ``min_long_tail`` of the top-k exposure. One fit: re-ranking is set per call."""
    space = covering(space, first)
    t0 = time.perf_counter()
    tail = long_tail_items(split.inner, split.items)
    system.fit(split.inner, split.items, split.users)
    budget_s -= time.perf_counter() - t0  # the fit is part of the budget
    base = system.config.rerank
    users_v = sorted(split.truth)

    def objective(trial: optuna.Trial) -> tuple[float, TrialRecord]:
        params = {key: rng.suggest(trial, key) for key, rng in space.items()}
        system.rerank = with_overrides(base, params)
        recs = system.recommend_all(users_v, k, split.exclude)
        value = split.score(recs, k)
        share = exposure_share(recs, tail, k)
        return value, TrialRecord(trial.number, params, value, 0.0, long_tail=share)

    _, records, seconds = _optimize(
        "rerank", objective, budget_s=budget_s, max_trials=max_trials, seed=seed, first=first,
        progress=progress, constraint=lambda r: min_long_tail - (r.long_tail or 0.0),
    )  # fmt: skip
    ok = [r for r in records if (r.long_tail or 0.0) >= min_long_tail]
    if ok:
        best = max(ok, key=lambda r: r.ndcg or -math.inf)
    else:  # none reached the minimum: the closest, said so in the report
        best = max(records, key=lambda r: (r.long_tail or 0.0, r.ndcg or -math.inf))
    return SearchResult("rerank", best.params, float(best.ndcg or 0.0), records, seconds,
                        long_tail=best.long_tail, met=bool(ok))  # fmt: skip


# --- the pipeline's own search space --------------------------------------------------------
COLLAB_DEFAULTS = {"als": {"regularization": 10.0, "iterations": 15},
                   "bpr": {"regularization": 0.01, "iterations": 100}}  # fmt: skip
"""What ``None`` means for each algorithm (:class:`~recsys.candidates.implicit_adapter.ImplicitModel`)."""


def collaborative_space(cfg: RecommenderConfig) -> Space:
    """The collaborative model's settings (searched on its own top-k: cheap, and what the
    candidates need)."""
    if cfg.collaborative.algorithm == "als":
        return {
            "factors": Range(32, 256, log=True),
            "regularization": Range(0.5, 50.0, log=True),
            "alpha": Range(0.25, 8.0, log=True),
            "iterations": Range(8, 30),
        }
    return {
        "factors": Range(32, 256, log=True),
        "learning_rate": Range(0.003, 0.1, log=True),
        "regularization": Range(0.001, 0.1, log=True),
        "iterations": Range(50, 300, log=True),
    }


def pipeline_space(cfg: RecommenderConfig) -> Space:
    """The ranker's settings and the candidate counts, by the base config's own source order."""
    space: dict[str, Range | Choice] = {
        "ranker.max_iter": Range(100, 500, log=True),
        "ranker.learning_rate": Range(0.02, 0.15, log=True),
        "ranker.max_leaf_nodes": Range(4, 31, log=True),
        "ranker.min_samples_leaf": Range(10, 100, log=True),
    }
    for i, src in enumerate(cfg.candidates.sources):
        if src.kind == "collaborative":
            space[f"candidates.sources.{i}.n"] = Range(100, 300)
        elif src.kind == "trending":
            space[f"candidates.sources.{i}.n"] = Range(0, 100)
    return space


def config_values(cfg: Any, space: Space, prefix: str = "") -> dict[str, Any]:
    """The value of every searched setting in a config (``None`` read as the default)."""
    data = cfg.model_dump()
    out: dict[str, Any] = {}
    for key in space:
        node: Any = data
        for part in (prefix + key).split("."):
            node = node[int(part)] if isinstance(node, list) else node[part]
        out[key] = node
    return out


def pipeline_first(cfg: RecommenderConfig, space: Space) -> dict[str, Any]:
    """The base config's value of every searched pipeline setting."""
    return config_values(cfg, space)


def collaborative_first(cfg: RecommenderConfig, space: Space) -> dict[str, Any]:
    defaults = COLLAB_DEFAULTS[cfg.collaborative.algorithm]
    got = config_values(cfg.collaborative, space)
    return {key: defaults.get(key) if v is None else v for key, v in got.items()}


def rerank_space(cfg: RerankConfig) -> Space:
    """The re-ranking trade-offs: MMR's relevance weight and each FA*IR stage's proportion."""
    space: dict[str, Range | Choice] = {}
    for i, st in enumerate(cfg.stages):
        if isinstance(st, MMR):
            space[f"stages.{i}.trade_off"] = Range(0.7, 1.0)
        elif isinstance(st, FairTopK):
            space[f"stages.{i}.proportion"] = Range(0.1, 0.6)
            space[f"stages.{i}.significance"] = Choice((0.05, 0.1, 0.2))
    return space


def rerank_first(cfg: RerankConfig, space: Space) -> dict[str, Any]:
    """The base re-ranking's value of every searched setting."""
    return config_values(cfg, space)


@dataclass
class TuneResult:
    config: RecommenderConfig
    phases: list[SearchResult]
    """``collaborative``, ``recsys`` (ranker and candidates) and ``rerank``, those that ran."""
    validation_users: int
    budget_s: float
    min_long_tail: float | None = None
    margin: float = 0.0
    seconds: float = 0.0

    @property
    def floor(self) -> float:
        """The long-tail share the re-ranking had to reach on validation."""
        return (self.min_long_tail or 0.0) + self.margin

    def warnings(self) -> list[str]:
        """What the user should know about a search that explored little."""
        out = []
        for ph in self.phases:
            if len(ph.trials) < 5:
                out.append(f"{STEP_NAMES[ph.name]}: only {_trials(len(ph.trials))} in the "
                           "budget, too few to search; give a larger --budget (10m for a shop "
                           "of MovieLens' size)")  # fmt: skip
        rr = self.rerank
        if rr is not None and not rr.met:
            out.append(f"re-ranking: no setting gave the long tail {self.floor:.0%} on "
                       "validation; the closest was kept")  # fmt: skip
        return out

    def phase(self, name: str) -> SearchResult | None:
        return next((p for p in self.phases if p.name == name), None)

    @property
    def model(self) -> SearchResult:
        return self.phase("recsys")  # type: ignore[return-value]

    @property
    def rerank(self) -> SearchResult | None:
        return self.phase("rerank")


def search_model(
    make: Callable[[RecommenderConfig], System],
    base: RecommenderConfig,
    split: Split,
    policy: Policy | None = None,
    *,
    budget_s: float,
    collaborative_share: float = 0.35,
    k: int = 10,
    max_trials: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> tuple[RecommenderConfig, list[SearchResult]]:
    """The model's settings in two steps within ``budget_s``: the collaborative model on its
    own top-k NDCG (``collaborative_share`` of the budget: its trials take a second or two),
    then the ranker and candidate counts of ``make(config)`` with that model fixed."""
    started = time.perf_counter()
    algo = base.collaborative.algorithm
    cspace = collaborative_space(base)
    collab = search("collaborative", ImplicitSystem, cspace, split.minimized(base, policy),
                    budget_s=budget_s * collaborative_share, k=k, max_trials=max_trials,
                    fixed={"algorithm": algo, "random_state": base.collaborative.random_state},
                    first=collaborative_first(base, cspace), seed=seed, progress=progress)  # fmt: skip
    tuned = with_overrides(base, {f"collaborative.{key}": v for key, v in collab.params.items()})
    models = {"base": base, "tuned": tuned}
    # the model best on its own top-k need not make the best candidates and features: both
    # compete in the pipeline, the base first (so the defaults are always trial 0)
    rest = pipeline_space(base)
    space = {"collaborative": Choice(("base", "tuned")), **rest}
    first = {"collaborative": "base", **pipeline_first(base, rest)}

    def build(o: Mapping[str, Any]) -> RecommenderConfig:
        rest = {key: v for key, v in o.items() if key != "collaborative"}
        return with_overrides(models[o["collaborative"]], rest)

    left = budget_s - (time.perf_counter() - started)
    ranker = search("recsys", lambda **o: make(build(o)), space, split,
                    budget_s=max(left, 1e-3), k=k, max_trials=max_trials, first=first,
                    also=[] if tuned == base else [{**first, "collaborative": "tuned"}],
                    seed=seed,
                    progress=progress)  # fmt: skip
    return build(ranker.params), [collab, ranker]


def tune_pipeline(
    train: pd.DataFrame,
    items: pd.DataFrame,
    users: pd.DataFrame,
    base: RecommenderConfig | None = None,
    policy: Policy | None = None,
    *,
    budget_s: float = 600.0,
    min_long_tail: float | None = 0.15,
    margin: float = 0.02,
    rerank_share: float = 0.15,
    k: int = 10,
    max_users: int | None = 5_000,
    max_trials: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> TuneResult:
    """``recsys tune``: the model's settings (:func:`search_model`), then with ``rerank_share``
    of the budget the re-ranking trade-offs under ``min_long_tail`` (``None``: left as is),
    which validation must beat by ``margin``: a long-tail share measured on validation came
    two points lower on a test set in our runs (``benchmarks/defaults_movielens.py``)."""
    started = time.perf_counter()
    base = base or RecommenderConfig()
    split = Split.carve(train, items, users, max_users=max_users, seed=seed)
    tune_rr = min_long_tail is not None and base.rerank.enabled and bool(base.rerank.stages)
    best, phases = search_model(
        lambda cfg: PipelineSystem(cfg, policy), base, split, policy,
        budget_s=(budget_s * (1 - rerank_share) if tune_rr else budget_s)
        - (time.perf_counter() - started), k=k,
        max_trials=max_trials, seed=seed, progress=progress,
    )  # fmt: skip
    if tune_rr:
        left = budget_s - (time.perf_counter() - started)
        rspace = rerank_space(best.rerank)
        if rspace:
            system = PipelineSystem(best, policy, rerank=True)
            floor = float(min_long_tail or 0) + margin
            rr = search_rerank(system, rspace, split, min_long_tail=floor,
                               budget_s=max(left, 1e-3), k=k, max_trials=max_trials,
                               first=rerank_first(best.rerank, rspace), seed=seed,
                               progress=progress)  # fmt: skip
            best = best.model_copy(update={"rerank": with_overrides(best.rerank, rr.params)})
            phases.append(rr)
    seconds = time.perf_counter() - started
    return TuneResult(best, phases, len(split.truth), budget_s, min_long_tail, margin, seconds)


STEP_NAMES = {"collaborative": "collaborative model", "recsys": "ranker and candidates",
              "rerank": "re-ranking"}  # fmt: skip
PHASE_TITLES = {
    "collaborative": "Collaborative model (on its own top-10)",
    "recsys": "Ranker and candidates (the whole pipeline)",
    "rerank": "Re-ranking",
}


def _trials(n: int) -> str:
    return f"{n} trial" if n == 1 else f"{n} trials"


def report(result: TuneResult, *, top: int = 10) -> str:
    """A short Markdown account of the search: what it tried, what it chose, and why."""
    lines = [
        "# recsys tune",
        "",
        f"Budget {result.budget_s:.0f} s, used {result.seconds:.0f} s (each step always runs its "
        f"base settings); validation: each user's newest 20% of the data, "
        f"{result.validation_users:,} users scored by NDCG@10. The first trial of each step is "
        "the base settings.",
    ]
    lines += [f"\n**Note:** {w}." for w in result.warnings()]
    for ph in result.phases:
        lines += ["", f"## {PHASE_TITLES[ph.name]}: {_trials(len(ph.trials))} in "
                  f"{ph.seconds:.0f} s", ""]  # fmt: skip
        base = ph.trials[0] if ph.trials else None
        gain = (ph.ndcg / ph.base_ndcg - 1) if ph.base_ndcg else 0.0
        if ph.name == "rerank":
            lt = result.floor
            was = (f" The base settings gave {base.ndcg:.4f} at {(base.long_tail or 0):.1%}."
                   if base is not None and base.ndcg is not None else "")  # fmt: skip
            lines.append(
                f"Chosen: validation NDCG@10 {ph.ndcg:.4f}, long-tail exposure "
                f"{(ph.long_tail or 0):.1%} "
                + (f"(the best of the settings giving the long tail at least {lt:.0%}: the "
                   f"minimum {(result.min_long_tail or 0):.0%} plus a margin of "
                   f"{result.margin:.0%})." if ph.met else f"(no setting reached {lt:.0%}: "
                   "this is the one closest to it; give a larger budget or a lower minimum).")
                + was
            )  # fmt: skip
        elif ph.name == "collaborative":
            kept = result.model.params.get("collaborative", "base") if result.model else "base"
            lines.append(
                f"The bare model's own top-10: base {ph.base_ndcg or 0:.4f}, best {ph.ndcg:.4f} "
                f"({gain:+.1%}). Both then compete inside the pipeline, which kept the "
                f"**{kept}** model."
            )
        else:
            lines.append(f"Base settings: validation NDCG@10 {ph.base_ndcg or 0:.4f}; best: "
                         f"{ph.ndcg:.4f} ({gain:+.1%}).")  # fmt: skip
        lines += ["", _table(ph.trials, top, feasible=result.floor
                              if ph.name == "rerank" else None)]  # fmt: skip
    lines += ["", "## Chosen settings", "", "```toml", result.config.to_toml().strip(), "```"]
    return "\n".join(lines) + "\n"


def _table(trials: Sequence[TrialRecord], top: int, feasible: float | None = None) -> str:
    """The ``top`` best trials (with a minimum long tail: those reaching it first)."""

    def rank(t: TrialRecord) -> tuple[bool, float]:
        ok = feasible is None or (t.long_tail or 0.0) >= feasible
        return (not ok, -(t.ndcg or -1))

    shown = sorted(trials, key=rank)[:top]
    keys = sorted({key for t in shown for key in t.params})
    has_lt = any(t.long_tail is not None for t in shown)
    head = ["trial", "NDCG@10", *(["long tail"] if has_lt else []), "seconds", *keys]
    rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for t in shown:
        cells = [str(t.number), f"{t.ndcg:.4f}" if t.ndcg is not None else "failed"]
        if has_lt:
            cells.append(f"{(t.long_tail or 0):.1%}")
        cells.append(f"{t.seconds:.1f}")
        cells += [_fmt(t.params.get(key)) for key in keys]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def parse_budget(text: str) -> float:
    """``90s``, ``10m``, ``1.5h`` or a bare number of seconds, as seconds."""
    t = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise ValueError(f"budget {text!r}: expected a duration like 90s, 10m or 1.5h") from None
    if not math.isfinite(value) or not value > 0:
        raise ValueError(f"budget {text!r}: must be a finite duration of more than zero")
    return value
