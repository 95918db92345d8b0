"""``recsys audit``, ``recsys feedback`` and ``recsys monitor``: accountability commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from recsys.cli.data_args import add_key_arg, pseudonymizer_from_args, state_from_args

MONITOR_EXIT = {"ok": 0, "crossed": 1, "bad_input": 2}


def _trail(args: argparse.Namespace):
    from recsys.audit.trail import SQLiteAuditTrail

    return SQLiteAuditTrail(state_from_args(args).database)


def _feedback(args: argparse.Namespace):
    from recsys.audit.feedback import FeedbackStore

    return FeedbackStore(state_from_args(args).database)


def _model(args: argparse.Namespace):
    if not getattr(args, "model", None):
        return None
    from recsys.model.artifacts import load_model

    return load_model(Path(args.model), pseudonymizer=pseudonymizer_from_args(args))


def add_overrides_arg(p: argparse.ArgumentParser, *, audit: bool = False) -> None:
    """``--overrides FILE`` (and, with ``audit``, ``--audit``) for a command that serves lists."""
    p.add_argument(
        "--overrides", metavar="TOML",
        help="overrides file: blocked items and categories, brand caps, staff picks",
    )  # fmt: skip
    if audit:
        p.add_argument(
            "--audit", action="store_true",
            help="record every list served in the state directory's audit trail",
        )  # fmt: skip


def attach_from_args(rec: Any, args: argparse.Namespace) -> Any:
    """Attach the customers' recorded feedback ("not interested", honoured on every list
    served), ``--overrides`` and, with ``--audit``, the state database's audit trail to ``rec``
    (a Recommender). A bad overrides file raises ConfigError naming the file, key and what was
    expected (exit code 2). Returns ``rec``."""
    overrides_file = getattr(args, "overrides", None)
    audit = getattr(args, "audit", False) is True
    from recsys.audit import attach
    from recsys.rerank.overrides import load_overrides

    overrides = load_overrides(overrides_file, rec.key_of) if overrides_file else None
    sink = _trail(args) if audit else None
    return attach(rec, sink=sink, feedback=_feedback(args), overrides=overrides)


def audit_show(args: argparse.Namespace) -> int:
    from recsys.audit.report import why_text

    ps = pseudonymizer_from_args(args)
    lists = _trail(args).lists(ps(str(args.user).strip()), limit=args.limit)
    if args.json:
        print(json.dumps(lists, indent=2))
        return 0
    model = _model(args)
    print(why_text(lists, model.titles if model is not None else None), end="")
    return 0


def audit_export(args: argparse.Namespace) -> int:
    import pandas as pd

    from recsys import atomic

    rows = _trail(args).item_rows()
    if args.user:
        key = pseudonymizer_from_args(args)(str(args.user).strip())
        rows = [r for r in rows if r["pseudonym"] == key]
    df = pd.DataFrame(rows, columns=None if rows else ["list_id", "pseudonym", "item_id"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_atomic(out, lambda p: df.to_parquet(p, index=False))
    print(f"{len(df):,} audited items of {df['list_id'].nunique():,} lists written to {out}")
    return 0


def audit_metrics(args: argparse.Namespace) -> int:
    import pandas as pd

    from recsys.audit.report import trail_metrics

    since = pd.Timestamp(args.since, tz="UTC").timestamp() if args.since else 0.0
    m = trail_metrics(_trail(args), _feedback(args), _model(args), since)
    text = json.dumps(m, indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
        print(f"metrics of {m['lists']:,} served lists written to {args.out}")
    else:
        print(text, end="")
    return 0


def feedback_not_interested(args: argparse.Namespace) -> int:
    from recsys.audit.feedback import not_interested

    not_interested(_feedback(args), pseudonymizer_from_args(args), str(args.user).strip(),
                   item_id=args.item, category=args.category)  # fmt: skip
    what = f"item {args.item}" if args.item else f"category {args.category!r}"
    print(f"recorded: not interested in {what} (applies from the next request on)")
    return 0


def feedback_reason_wrong(args: argparse.Namespace) -> int:
    from recsys.audit.feedback import reason_wrong

    reason_wrong(_feedback(args), pseudonymizer_from_args(args), str(args.user).strip(),
                 args.item, args.problem)  # fmt: skip
    print(f"recorded: the reason shown for {args.item} is wrong ({args.problem})")
    return 0


def monitor(args: argparse.Namespace) -> int:
    """Exit 0 when every metric is within its thresholds, 1 when one is crossed, 2 on bad input."""
    from recsys.audit.monitor import (
        append_history,
        compare,
        plot_history,
        read_run,
        read_thresholds,
        report_markdown,
    )

    thresholds = read_thresholds(args.thresholds)
    baseline = read_run(args.baseline, args.system)
    run = read_run(args.run, args.system)
    checks = compare(baseline, run, thresholds, where=f"{args.thresholds}: ")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    history_dir = Path(args.history) if args.history else state_from_args(args).root / "monitor"
    history = append_history(history_dir, str(args.run), run)
    plot_history(history, list(thresholds.metrics), out / "monitor.png")
    (out / "monitor.md").write_text(report_markdown(checks, args.baseline, args.run, "monitor.png"))
    crossed = [c for c in checks if c.crossed]
    for c in checks:
        flag = "CROSSED" if c.crossed else "ok"
        print(f"{flag:<8} {c.metric}: {c.baseline:.4f} -> {c.run:.4f} ({c.rule} {c.limit:g})")
    print(f"report written to {out / 'monitor.md'}")
    if crossed:
        print(f"recsys monitor: {len(crossed)} threshold(s) crossed", file=sys.stderr)
        return MONITOR_EXIT["crossed"]
    return MONITOR_EXIT["ok"]


def register(sub: Any) -> None:
    """Add ``audit``, ``feedback`` and ``monitor`` to the ``recsys`` command."""
    a = sub.add_parser("audit", help="the audit trail: what was recommended to whom, and why")
    asub = a.add_subparsers(dest="audit_command", required=True)
    show = asub.add_parser("show", help='"why did I see this?" for one customer')
    add_key_arg(show)
    show.add_argument("--user", required=True, metavar="ID")
    show.add_argument("--model", metavar="DIR", help="to name the items by their titles")
    show.add_argument("--limit", type=int, default=5, help="newest lists to show")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=audit_show)
    ex = asub.add_parser("export", help="write the audit trail (one row per item) as Parquet")
    add_key_arg(ex)
    ex.add_argument("--out", required=True, metavar="FILE")
    ex.add_argument("--user", metavar="ID", help="one customer's records only")
    ex.set_defaults(func=audit_export)
    me = asub.add_parser("metrics", help="metrics of the served lists, as a run for the monitor")
    add_key_arg(me)
    me.add_argument("--model", metavar="DIR", help="for exposure per item group and coverage")
    me.add_argument("--since", metavar="DATE")
    me.add_argument("--out", metavar="FILE")
    me.set_defaults(func=audit_metrics)

    f = sub.add_parser("feedback", help="record a customer's feedback")
    fsub = f.add_subparsers(dest="feedback_command", required=True)
    ni = fsub.add_parser("not-interested", help="never recommend this item or category again")
    add_key_arg(ni)
    ni.add_argument("--user", required=True, metavar="ID")
    what = ni.add_mutually_exclusive_group(required=True)
    what.add_argument("--item", metavar="ITEM")
    what.add_argument("--category", metavar="CATEGORY")
    ni.set_defaults(func=feedback_not_interested)
    rw = fsub.add_parser("reason-wrong", help="the reason shown for an item is wrong")
    add_key_arg(rw)
    rw.add_argument("--user", required=True, metavar="ID")
    rw.add_argument("--item", required=True, metavar="ITEM")
    rw.add_argument("--problem", default="not_true",
                    choices=["not_true", "not_relevant", "too_personal", "other"])  # fmt: skip
    rw.set_defaults(func=feedback_reason_wrong)

    m = sub.add_parser(
        "monitor",
        help="compare a run's metrics with a baseline; exit 1 when a threshold is crossed",
        epilog="exit codes: 0 within thresholds, 1 a threshold crossed (alert a person), "
        "2 bad input (a file, key or metric that cannot be read)",
    )
    add_key_arg(m)
    m.add_argument("--baseline", required=True, metavar="FILE", help="metrics.json or flat JSON")
    m.add_argument("--run", required=True, metavar="FILE", help="metrics.json or flat JSON")
    m.add_argument("--thresholds", required=True, metavar="TOML")
    m.add_argument("--system", help="the system of an evaluation's metrics.json (default: recsys*)")
    m.add_argument("--out", default="monitor-report", metavar="DIR")
    m.add_argument("--history", metavar="DIR", help="run history (default: the state directory)")
    m.set_defaults(func=monitor)
