"""What each CLI command does; parsing lives in :mod:`recsys.cli.main`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from recsys.cli.accountability import attach_from_args
from recsys.cli.data_args import (
    load_from_args,
    pseudonymizer_from_args,
    state_from_args,
)
from recsys.data import Dataset, load_dir
from recsys.data.synthetic import ShopSpec, make_shop, write_shop
from recsys.errors import ConfigError, DataValidationError, ModelFitError
from recsys.privacy.minimize import MinimizationReport


def data_synth(args: argparse.Namespace) -> int:
    spec = ShopSpec(n_users=args.users, n_items=args.items, seed=args.seed)
    counts = write_shop(spec, args.out, fmt="csv" if args.csv else "parquet")
    for name, n in counts.items():
        print(f"{name:<13} {n:>12,} rows")
    print(f"written to {args.out}")
    return 0


def data_validate(args: argparse.Namespace) -> int:
    """Print each data set's report; exit 2 when a required table lost too many rows."""
    import sys

    datasets: list[Dataset] = []
    for path in args.paths:
        datasets.append(
            load_dir(
                path, format=args.format, strict=args.strict, assume_consent=args.assume_consent
            )
        )
    if args.data or args.interactions or args.items or args.mapping:
        datasets.append(load_from_args(args))
    if not datasets:
        print(
            "recsys data validate: give a data directory, --interactions/--items files or a "
            "--mapping that names the files",
            file=sys.stderr,
        )
        return 2
    quarantined = []
    failures: list[str] = []
    for ds in datasets:
        if args.json:
            print(json.dumps(ds.report.to_dict(), indent=2))
        else:
            print(ds.report.to_text())
            print(f"=> {ds.summary()}")
        quarantined.append(ds.report.quarantined())
        failures += ds.report.over_threshold(args.max_rejected)
    if args.quarantine:
        pd.concat(quarantined).to_csv(args.quarantine, index=False)
        print(f"rejected rows written to {args.quarantine}")
    for f in failures:
        print(f"recsys: error: {f} (see --max-rejected)", file=sys.stderr)
    return 2 if failures else 0


def read_toml_model(cls, path: str | None):
    if not path:
        return None
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    return cls.from_toml(text, source=path)


def train(args: argparse.Namespace) -> int:
    from recsys.config import RecommenderConfig
    from recsys.privacy.policy import Policy
    from recsys.recommender import Recommender

    config = read_toml_model(RecommenderConfig, args.config)
    policy = read_toml_model(Policy, args.policy)
    ds = load_from_args(args)
    print(f"data: {ds.summary()}")
    if ds.report.n_rejected:
        print(ds.report.to_text())
    rec = Recommender(
        config, policy=policy, pseudonymizer=pseudonymizer_from_args(args, create=True),
        consent=consent_from_args(args),
    )  # fmt: skip
    now = pd.Timestamp(args.now, tz="UTC") if args.now else None
    try:
        model = rec.fit(ds, now=now).model_
    except ModelFitError as exc:
        raise ModelFitError(f"{exc}{now_hint(ds, args.now)}") from exc
    if model.minimization:
        print(MinimizationReport(**model.minimization).to_text())
    t = model.training
    print(
        f"ranker: {len(model.feature_names)} features, trained on {t['examples']:,} examples "
        f"({t['positives']:,} positive)"
    )
    rec.save(args.out)
    print(f"model written to {args.out} in {t['seconds']:.1f}s of training")
    return 0


def now_hint(ds: Dataset, given: str | None, *, flag_only: bool = False) -> str:
    """For data older than the retention window, the ``--now`` that would keep it."""
    if given or ds.interactions.empty:
        return ""
    newest = pd.Timestamp(ds.interactions["timestamp"].max())
    if newest > pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=30):
        return ""
    day = (newest + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    if flag_only:
        return f" --now {day}"
    return f" (the data's newest event is on {newest:%Y-%m-%d}: --now {day})"


def _read_user_ids(path: str) -> list[str]:
    from recsys.data.loaders import read_table

    df = read_table(path)
    col = "user_id" if "user_id" in df.columns else df.columns[0]
    ids = df[col].astype(str).str.strip()
    if (ids == "").any():
        row = int(df.loc[ids == "", "_row"].iloc[0])
        raise DataValidationError("empty user id", file=path, row=row, column=col)
    return list(dict.fromkeys(ids))


def recommend(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    rec = attach_from_args(_load(args), args)  # --overrides, --audit
    users = [args.user] if args.user else _read_user_ids(args.users)
    rows: list[dict] = []
    results = []
    step = 1024
    with tqdm(total=len(users), disable=len(users) < 1000, desc="recommending", unit="user") as bar:
        for start in range(0, len(users), step):
            chunk = rec.recommend_many(
                users[start : start + step], args.k, exclude=args.exclude,
                personalized=not args.no_profiling, rerank=False if args.no_rerank else None,
            )  # fmt: skip
            for recs in chunk:
                results.append(recs)
                rows.extend(recs.to_rows())
            bar.update(len(chunk))
    out = pd.DataFrame(rows)
    if args.out:
        _write_table(out, Path(args.out))
        print(f"{len(out):,} recommendations for {len(users):,} users written to {args.out}")
    elif args.json:
        print(json.dumps([r.to_dicts() for r in results], indent=2))
    else:
        for recs in results:
            print(f"user {recs.user_id}" + ("" if recs.personalized else " (not personalized)"))
            for r in recs:
                print(
                    f"  {r.rank:>2}. {r.title} ({r.item_id})  score {r.score:.3f}\n      {r.reason.text}"
                )
    return 0


def consent_from_args(args: argparse.Namespace):
    """The shop's consent and erasure records: the SQLite database in the state directory."""
    from recsys.privacy.consent import SQLiteConsentStore

    return SQLiteConsentStore(state_from_args(args).database)


def _load(args: argparse.Namespace):
    """The model of ``--model``, with the key and consent store the other commands use (the key
    also authenticates the model's manifest)."""
    from recsys.recommender import Recommender

    ps = pseudonymizer_from_args(args)
    return Recommender.load(args.model, pseudonymizer=ps, consent=consent_from_args(args))


def _write_table(df: pd.DataFrame, path: Path) -> None:
    from recsys import atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        atomic.write_atomic(path, lambda p: df.to_parquet(p, index=False))
    else:
        atomic.write_atomic(path, lambda p: df.to_csv(p, index=False))


def demo(args: argparse.Namespace) -> int:
    from recsys.cli.demo_rules import show_rules
    from recsys.data.synthetic import END
    from recsys.recommender import Recommender

    spec = ShopSpec(n_users=args.users, n_items=args.items, seed=args.seed)
    ds = make_shop(spec)
    print(f"synthetic shop (seed {spec.seed}): {ds.summary()}")
    state = state_from_args(args)
    rec = Recommender(
        pseudonymizer=pseudonymizer_from_args(args, create=True), consent=consent_from_args(args)
    ).fit(ds, now=END)
    model = rec.model_
    rep = model.minimization or {}
    print(
        f"minimized for '{model.purpose}': kept {rep.get('rows_kept', 0):,} of "
        f"{rep.get('rows_received', 0):,} interactions ({rep.get('users_without_consent', 0)} "
        "users without consent); user ids pseudonymized"
    )
    t = model.training
    print(
        f"trained in {t['seconds']:.1f}s: {len(model.feature_names)} features, "
        f"{t['examples']:,} ranker examples ({t['positives']:,} positive)"
    )
    out_dir = Path(args.out)
    rec.save(out_dir / "model")
    consenting = ds.users[ds.users["consent_personalization"]]["user_id"]
    active = ds.interactions["user_id"].value_counts()
    show = [u for u in consenting if active.get(u, 0) >= 10][: args.show]
    show += ds.users.loc[~ds.users["consent_personalization"], "user_id"].head(1).tolist()
    rows = []
    for recs in rec.recommend_many(ds.users["user_id"].tolist(), args.k):
        user = recs.user_id
        rows.extend(recs.to_rows())
        if user in show:
            label = "" if recs.personalized else " (no consent to personalization)"
            print(f"\ncustomer {user}{label}")
            for r in recs:
                print(f"  {r.rank}. {r.title} ({r.item_id})\n     {r.reason.text}")
    show_rules(rec, ds.items, show[0])  # one promoted and one new item (issue #15)
    out = pd.DataFrame(rows)
    path = out_dir / "recommendations.csv"
    _write_table(out, path)
    print(
        f"\n{len(out):,} recommendations for {out['user_id'].nunique():,} customers written to {path}"
    )
    print(
        f"model saved to {out_dir / 'model'} (pseudonymous ids only; key and consent in {state.root})"
    )
    return 0


UNKNOWN_USER_EXIT = 3
"""Exit code of ``recsys forget`` when nothing about the id was found (2: an error)."""


def _data_given(args: argparse.Namespace) -> bool:
    return any((args.data, args.mapping, args.interactions, args.items, args.users_file,
                args.audit))  # fmt: skip


def _source_files(args: argparse.Namespace):
    """The stored files the data arguments name (a mapping's several files per table too)."""
    from recsys.cli.data_args import read_mapping
    from recsys.privacy.erasure import source_files

    explicit = {"interactions": args.interactions, "items": args.items,
                "users": args.users_file, "audit": args.audit}  # fmt: skip
    return source_files(args.data, read_mapping(args.mapping), explicit)


def forget(args: argparse.Namespace) -> int:
    """Erase a user; exit 0 when erased, 3 when the id is unknown, 2 on an error (the
    tombstone, recorded first, stays in place)."""
    import sys

    from recsys.privacy.erasure import forget as erase

    if not args.model and not _data_given(args):
        print(
            "recsys forget: give --model DIR and/or the data (--data DIR, --mapping FILE or "
            "--interactions/--items/--users files)",
            file=sys.stderr,
        )
        return 2
    files = _source_files(args) if _data_given(args) else []
    report = erase(
        args.user_id, pseudonymizer_from_args(args), consent_from_args(args),
        model_dir=args.model, files=files,
    )  # fmt: skip
    print(report.to_text())
    if not report.known:
        print(
            f"recsys: unknown user {args.user_id.strip()!r} (exit code {UNKNOWN_USER_EXIT})",
            file=sys.stderr,
        )
        return UNKNOWN_USER_EXIT
    return 0


def export(args: argparse.Namespace) -> int:
    from recsys.privacy.erasure import export_user

    model = data = None
    ps = None
    if args.model:
        model = _load(args)
        ps = model.pseudonymizer
    if _data_given(args):
        data = load_from_args(args)
    print(json.dumps(export_user(args.user_id, ps, model=model, data=data), indent=2, default=str))
    return 0


def policy_show(args: argparse.Namespace) -> int:
    from recsys.privacy.policy import Policy

    policy = read_toml_model(Policy, args.file) if args.file else Policy.default()
    print(policy.to_toml(), end="")
    return 0


def policy_check(args: argparse.Namespace) -> int:
    from recsys.privacy.policy import Policy

    policy = read_toml_model(Policy, args.file)
    problems = policy.consent_problems()
    if problems:
        raise ConfigError(f"{args.file}: refused: " + "; ".join(problems))
    for name, p in policy.purposes.items():
        fields = sum(len(v) for v in p.fields.values())
        print(
            f"{name:<16} consent={p.consent or '-':<24} retention={p.retention_days or '-'} days"
            f"  history cap={p.history_cap or '-'}  fields={fields}"
        )
    print(f"{args.file}: valid")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from recsys.evaluation.metrics import read_recommendations
    from recsys.evaluation.run import EvaluationConfig, run_evaluation, write_report
    from recsys.privacy.policy import Policy

    cfg = read_toml_model(EvaluationConfig, args.config) or EvaluationConfig()
    if args.overrides:  # a bad file stops the command before the data is read
        from recsys.rerank.overrides import load_overrides

        load_overrides(args.overrides, str)
    if args.seed is not None:
        cfg.seed = args.seed
    policy = read_toml_model(Policy, args.policy)
    baseline = read_recommendations(args.baseline_recs) if args.baseline_recs else None
    ds = load_from_args(args)
    print(f"data: {ds.summary()}")
    steps = 2 * len(cfg.systems) + (baseline is not None)
    with tqdm(total=steps, desc="evaluating", unit="step") as bar:

        def progress(message: str) -> None:
            bar.set_postfix_str(message)
            bar.update(1)

        metrics, timings, _ = run_evaluation(
            ds, cfg, policy=policy, progress=progress, baseline_recs=baseline,
            overrides=args.overrides,
        )  # fmt: skip
    minimization = None
    out = Path(args.out)
    if args.minimization:
        minimization = _minimization(ds, cfg, out, args.workers, args.minimization_seeds)
    for path in write_report(out, metrics, timings, cfg, minimization):
        print(f"wrote {path}")
    if "overrides" in metrics:
        from recsys.evaluation.overrides import effect_markdown

        print(effect_markdown(metrics["overrides"]).splitlines()[-1])
    k = cfg.k
    p = metrics["protocol"]
    print(f"rules for every system: exclude {p['exclude']!r}, relevant {p['relevant']!r}")
    tests = metrics["comparison"]["tests"]
    for name, m in metrics["systems"].items():
        t = tests.get(name)
        vs = f"  vs reference {t['difference']:+.4f} ({t['verdict']})" if t else "  (reference)"
        print(f"{name:<24} NDCG@{k} {m[f'ndcg@{k}']:.4f}  coverage {m['coverage']:.3f}  "
              f"long-tail exposure {m['exposure_share']['long_tail']:.1%}{vs}")  # fmt: skip
    return 0


def _minimization(ds, cfg, out: Path, workers: int, n_seeds: int) -> dict:
    from recsys.evaluation.baselines import PipelineFactory
    from recsys.evaluation.minimization import (
        default_settings,
        minimization_curve,
        plot_curve,
        summary_markdown,
    )

    res = minimization_curve(
        ds, PipelineFactory(cfg.pipeline), default_settings(ds.interactions),
        seeds=tuple(range(n_seeds)), workers=workers,
        progress=lambda m: print("  minimization:", m, flush=True),
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    plot_curve(res, str(out / "minimization.png"))
    (out / "minimization.json").write_text(
        json.dumps(
            {"table": res["table"].to_dict("records"), "best": res["best"]}, indent=2, default=str
        )
        + "\n"
    )
    return {"markdown": summary_markdown(res, "recsys pipeline"), "plot": "minimization.png"}
