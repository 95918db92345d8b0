"""The evaluation report: a summary a manager can decide from, then the detail behind it.

``report.html`` is rendered from a Jinja2 template (``templates/report.html.j2``, autoescaped);
``report.md`` carries the same summary and tables for a terminal or a pull request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from recsys.evaluation.overrides import effect_markdown

METRIC_HELP: list[tuple[str, str]] = [
    ("NDCG@k", "How high the items the customer went on to choose sit in the list (1 = all at "
               "the top, 0 = none in the list); the main accuracy number."),
    ("95% CI", "The range the NDCG would fall in for 95% of resamples of the customers "
               "(bootstrap): overlap means the difference may be chance."),
    ("Recall@k", "Share of a customer's later choices that the list contains."),
    ("Precision@k", "Share of the k slots filled with an item the customer later chose."),
    ("MAP@k", "Mean average precision: precision at each hit, averaged; rewards early hits."),
    ("MRR@k", "1 / position of the first hit (1 = the first item was chosen)."),
    ("Hit@k", "Share of customers for whom at least one listed item was chosen later."),
    ("coverage", "Share of the catalogue that appears in at least one customer's list."),
    ("ILD", "Intra-list diversity: how different the categories within one list are (0 to 1)."),
    ("novelty", "How little-known the recommended items are (bits; higher = less obvious picks)."),
    ("miscalibration", "How far a list's category mix is from the customer's own mix (0 = same)."),
    ("exposure Gini", "How unequally attention is spread over the catalogue (0 = evenly, 1 = one item)."),
    ("long-tail / small-seller exposure", "Share of position-weighted attention that goes to "
                                          "less popular items / to independent sellers."),
    ("p (Wilcoxon, adjusted)", "Chance of a difference this large between paired customers if the "
                               "systems were equally good, corrected for the number of comparisons; "
                               "below 0.05 counts as a clear difference."),
    ("reason coverage / evidence validity", "Share of recommendations with a reason / share of "
                                            "stated facts that an independent check confirms."),
    ("deletion test", "Remove the history item a reason cites: share of cases where the score "
                      "drops, i.e. the reason really mattered."),
]  # fmt: skip

CAVEATS = [
    "Offline replay: a customer's later purchases stand in for what they would have liked; an item "
    "they never saw cannot be confirmed, so every system's accuracy is a lower bound and a live A/B "
    "test is the final word.",
    "Past data was shaped by the shop's current widget: items it showed got more chances to be bought, "
    "which favours lists that resemble it.",
    "The split is by time, so seasonality between the training and the test period affects all systems "
    "alike but may not match next month.",
    "Differences are tested on NDCG only; the other metrics are descriptive. Several systems are "
    "compared, so p-values are adjusted (Benjamini-Hochberg).",
    "Customers with no relevant item in the test period cannot be scored and are left out; heavy "
    "buyers weigh the same as one-time buyers.",
]


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.1%}" if pct else f"{v:.4f}"
    return str(v)


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _p_is(p: float | None) -> str:
    """'= 0.123' or '< 0.001', to follow a 'p'."""
    text = _p(p)
    return text if text.startswith("<") else f"= {text}"


@dataclass
class Table:
    title: str
    head: list[str]
    rows: list[list[str]]
    text_cols: set[int] = field(default_factory=lambda: {0})
    note: str = ""


def tables(metrics: dict[str, Any]) -> list[Table]:
    """The detail tables, each narrow enough for a 1280 px screen."""
    k = metrics["protocol"]["k"]
    systems = metrics["systems"]
    acc = Table(
        "Accuracy",
        ["system", f"NDCG@{k}", "95% CI", f"Recall@{k}", f"Precision@{k}", f"MAP@{k}",
         f"MRR@{k}", f"Hit@{k}"],
        [],
    )  # fmt: skip
    for name, m in systems.items():
        ci = m[f"ndcg@{k}_ci95"]
        acc.rows.append(
            [name, _fmt(m[f"ndcg@{k}"]), f"{ci[0]:.4f}–{ci[1]:.4f}", _fmt(m[f"recall@{k}"]),
             _fmt(m[f"precision@{k}"]), _fmt(m[f"map@{k}"]), _fmt(m[f"mrr@{k}"]),
             _fmt(m[f"hit_rate@{k}"])]
        )  # fmt: skip
    has_small = any("small_sellers" in m["exposure_share"] for m in systems.values())
    beyond = Table(
        "Beyond accuracy",
        ["system", "coverage", "ILD", "novelty", "miscalibration", "exposure Gini",
         "long-tail exposure"] + (["small-seller exposure"] if has_small else []),
        [],
    )  # fmt: skip
    for name, m in systems.items():
        row = [name, _fmt(m["coverage"]), _fmt(m["intra_list_diversity"]), _fmt(m["novelty"]),
               _fmt(m["miscalibration_kl"]), _fmt(m["exposure_gini"]),
               _fmt(m["exposure_share"]["long_tail"], True)]  # fmt: skip
        if has_small:
            row.append(_fmt(m["exposure_share"].get("small_sellers"), True))
        beyond.rows.append(row)
    groups = Table(
        "Accuracy per customer group",
        ["system", "grouping", "groups (mean NDCG, customers)", "largest gap", "gap 95% CI"],
        [],
        text_cols={0, 1, 2},
        note="Groups come from activity and, when present, the audit table; a gap whose interval "
        "excludes 0 is unlikely to be chance.",
    )
    for name, m in systems.items():
        for col, g in m["user_groups"].items():
            parts = "; ".join(
                f"{grp}: {v['mean']:.3f} (n={v['users']})" for grp, v in g["groups"].items()
            )
            groups.rows.append([name, col, parts, f"{g['gap']:.4f}",
                                f"{g['gap_ci95'][0]:.4f}–{g['gap_ci95'][1]:.4f}"])  # fmt: skip
    expl = Table(
        "Explanations",
        ["system", "reason coverage", "additivity error", "evidence validity", "facts checked",
         "deletion test lowers score", "deletion cases", "cells used"],
        [],
    )  # fmt: skip
    for name, m in systems.items():
        e = m.get("explanations")
        if e:
            expl.rows.append([name, _fmt(e["reason_coverage"], True), f"{e['additivity_max_error']:.1e}",
                              _fmt(e["evidence_validity"], True), str(e["facts_checked"]),
                              _fmt(e["deletion_test_lowered"], True), str(e["deletion_cases"]),
                              f"{m['footprint_cells']:,}"])  # fmt: skip
    used = Table(
        "Reason templates",
        ["system", "template", "spoke", "refused by a rule"],
        [],
        text_cols={0, 1},
        note="A template speaks only where its rule holds (e.g. 'often' for one of the customer's "
        "three largest categories with at least two items); a refused fact gives way to the "
        "next reason. Checked facts that were false or broke a rule: the 'evidence validity' "
        "column above.",
    )
    for name, m in systems.items():
        for fact, c in (m.get("explanations") or {}).get("templates", {}).items():
            used.rows.append([name, fact.replace("_", " "), f"{c['fired']:,}", f"{c['refused']:,}"])
    return [t for t in (acc, beyond, groups, expl, used) if t.rows]


WINS = [
    ("accuracy (NDCG@k)", "ndcg", False),
    ("customers with a hit (Hit@k)", "hit_rate", False),
    ("catalogue coverage", "coverage", False),
    ("long-tail exposure", "long_tail", True),
    ("diversity within a list (ILD)", "intra_list_diversity", False),
    ("novelty", "novelty", False),
]


def _value(m: dict[str, Any], key: str, k: int) -> float:
    if key in ("ndcg", "hit_rate"):
        return m[f"{key}@{k}"]
    if key == "long_tail":
        return m["exposure_share"]["long_tail"]
    return m[key]


def summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """Headlines, the paired-test table, who wins on what, and the protocol in sentences."""
    p = metrics["protocol"]
    k = p["k"]
    systems = metrics["systems"]
    comp = metrics["comparison"]
    ref = comp["reference"]
    tests = comp["tests"]
    rows = [{"system": ref, "ndcg": _fmt(systems[ref][f"ndcg@{k}"]), "difference": "reference",
             "relative": "–", "better_worse": "–", "p": "–", "verdict": "reference",
             "verdict_class": "", "reference": True}]  # fmt: skip
    for name, t in tests.items():
        lo, hi = t["difference_ci95"]
        rows.append({
            "system": name, "ndcg": _fmt(t["mean"]),
            "difference": f"{t['difference']:+.4f} ({lo:+.4f} to {hi:+.4f})",
            "relative": "–" if t["relative"] is None else f"{t['relative']:+.0%}",
            "better_worse": f"{t['better_users']} / {t['worse_users']}",
            "p": _p(t.get("p_adjusted")), "verdict": t.get("verdict", "–"),
            "verdict_class": {"better": "better", "worse": "worse"}.get(t.get("verdict", ""), ""),
            "reference": False,
        })  # fmt: skip
    focus = [n for n in tests if n.startswith("recsys")] or list(tests)
    headlines = []
    for name in focus:
        t = tests[name]
        lo, hi = t["difference_ci95"]
        rel = "" if t["relative"] is None else f", {t['relative']:+.0%}"
        verdict = {
            "better": "a clear improvement",
            "worse": "clearly worse",
        }.get(t.get("verdict", ""), "no clear difference")
        headlines.append(
            f"{name}: NDCG@{k} {t['mean']:.4f} against {t['reference_mean']:.4f} for {ref} "
            f"({t['difference']:+.4f}{rel}; 95% CI {lo:+.4f} to {hi:+.4f}; "
            f"p {_p_is(t.get('p_adjusted'))}): {verdict}."
        )
    if not headlines:
        headlines.append(f"Only {ref} was evaluated: nothing to compare.")
    ours, free = systems.get("recsys (no re-ranking)"), systems.get("unconstrained GBM")
    if ours and free:
        a, b = ours[f"ndcg@{k}"], free[f"ndcg@{k}"]
        headlines.append(
            f"What exact reasons cost: NDCG@{k} {a:.4f} for our additive ranker against {b:.4f} "
            f"for an unconstrained one on the same candidates and features "
            f"({(a / b - 1) if b else 0:+.1%})."
        )
    wins = []
    for goal, key, pct in WINS:
        best = max(systems, key=lambda n, key=key: (_value(systems[n], key, k), n))
        fmt = (lambda v: _fmt(v, True)) if pct else _fmt
        wins.append({"goal": goal.replace("@k", f"@{k}"), "system": best,
                     "value": fmt(_value(systems[best], key, k)),
                     "reference": fmt(_value(systems[ref], key, k))})  # fmt: skip
    split = p["split"]
    split_text = {
        "temporal": f"each customer's newest {split['test_fraction']:.0%} of events are the test "
        "period, the rest trains every system.",
        "global": f"the newest {split['test_fraction']:.0%} of all events (by time) are the test "
        "period, the rest trains every system.",
        "leave_one_out": "each customer's last event is the test, the rest trains every system.",
    }[split["kind"]]
    tuned = metrics.get("tuned") or {}
    tuning_text = (
        "every tunable system was tuned by the same small grid search on a validation split "
        "carved from the training period, under the same rules (the test period is never used)."
        if tuned
        else "no tuning: every system ran with its default settings."
    )
    notes = []
    for name, m in systems.items():
        f = m.get("from_file")
        if f:
            notes.append(
                f"{name}: read from the shop's file; {f['users_with_a_list']:,} of "
                f"{f['users_evaluated']:,} scored customers have a list in it (a customer without "
                f"one scores 0); the exclusion rule removed {f['entries_removed_by_exclusion_rule']:,}"
                f" of its {f['entries_in_top_k']:,} top-{k} entries."
            )
    violations = sum(m.get("excluded_recommended", 0) for m in systems.values())
    return {"headlines": headlines, "tests": rows, "wins": wins, "split_text": split_text,
            "tuning_text": tuning_text, "file_notes": notes,
            "violations": f"{violations} (checked in every system's lists)"}  # fmt: skip


@dataclass
class Image:
    file: str
    caption: str
    width: int
    height: int


def plots(out: Path, metrics: dict[str, Any]) -> list[Image]:
    """Readable plots: a legend instead of labels on points, one colour and marker per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10})
    k = metrics["protocol"]["k"]
    systems = metrics["systems"]
    names = list(systems)
    markers = "osD^vPX*<>"
    colors = plt.get_cmap("tab10").colors
    dpi = 100
    made: list[Image] = []

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), dpi=dpi)
    for ax, (key, label) in zip(axes, [("long_tail", "long-tail share of exposure"),
                                       ("ild", "intra-list diversity")], strict=True):  # fmt: skip
        for j, n in enumerate(names):
            m = systems[n]
            x = (
                m["exposure_share"]["long_tail"]
                if key == "long_tail"
                else m["intra_list_diversity"]
            )
            ax.scatter(x, m[f"ndcg@{k}"], s=70, marker=markers[j % len(markers)],
                       color=colors[j % len(colors)], label=n, edgecolor="black", linewidth=0.5)  # fmt: skip
        ax.set_xlabel(label)
        ax.set_ylabel(f"NDCG@{k}")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(names), 4), frameon=False)
    fig.suptitle("Accuracy against long-tail exposure and diversity (up and right is better)")
    fig.tight_layout(rect=(0, 0.08 + 0.05 * ((len(names) - 1) // 4), 1, 1))
    fig.savefig(out / "tradeoff.png")
    plt.close(fig)
    made.append(Image("tradeoff.png", "Each point is a system: accuracy against long-tail exposure "
                      "(left) and diversity within a list (right).", 1100, 440))  # fmt: skip

    groups = sorted({g for m in systems.values() for g in m["exposure_share"]})
    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=dpi)
    width = 0.8 / max(len(groups), 1)
    for j, g in enumerate(groups):
        ax.barh([i + j * width for i in range(len(names))],
                [systems[n]["exposure_share"].get(g, 0.0) for n in names], width,
                label=g.replace("_", " "))  # fmt: skip
    ax.set_yticks([i + width * (len(groups) - 1) / 2 for i in range(len(names))], names)
    ax.invert_yaxis()
    ax.set_xlabel("share of position-weighted exposure")
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "exposure.png")
    plt.close(fig)
    made.append(Image("exposure.png", "Share of attention that goes to less popular items and to "
                      "independent sellers, per system.", 1100, 420))  # fmt: skip

    focus = [n for n in names if n.startswith("recsys")] or names[-1:]
    cols = list(systems[focus[0]]["user_groups"])
    if cols:
        fig, axes = plt.subplots(1, len(cols), figsize=(min(3.7 * len(cols), 11), 3.9), dpi=dpi,
                                 squeeze=False)  # fmt: skip
        for ax, col in zip(axes[0], cols, strict=True):
            for j, n in enumerate(focus):
                g = systems[n]["user_groups"][col]["groups"]
                labels = list(g)
                means = [g[x]["mean"] for x in labels]
                err = [[g[x]["mean"] - g[x]["ci95"][0] for x in labels],
                       [g[x]["ci95"][1] - g[x]["mean"] for x in labels]]  # fmt: skip
                ax.errorbar([i + 0.15 * j for i in range(len(labels))], means, yerr=err, fmt="o",
                            capsize=3, label=n)  # fmt: skip
                ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=9)
            ax.set_title(col)
            ax.set_ylabel(f"NDCG@{k}")
            ax.grid(axis="y", alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "groups.png")
        w, h = fig.get_size_inches() * dpi
        plt.close(fig)
        made.append(Image("groups.png", "NDCG per customer group with 95% intervals, for the "
                          "recsys pipeline.", int(w), int(h)))  # fmt: skip
    return made


def _markdown(metrics: dict[str, Any], s: dict[str, Any], tabs: list[Table],
              images: list[Image], minimization: dict[str, Any] | None) -> str:  # fmt: skip
    p = metrics["protocol"]
    md = ["# recsys evaluation report", "", "## Summary", ""]
    md += [f"- {h}" for h in s["headlines"]]
    md += ["", f"Same rules for every system: {p['exclude_text']}; a success is "
           f"{p['relevant_text']}. Reference: {metrics['comparison']['reference']} "
           f"({metrics['comparison']['why']}).", ""]  # fmt: skip
    head = ["system", "NDCG", "difference (95% CI)", "relative", "better / worse", "p", "verdict"]
    md += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    keys = ("system", "ndcg", "difference", "relative", "better_worse", "p", "verdict")
    md += ["| " + " | ".join(r[c] for c in keys) + " |" for r in s["tests"]]
    md.append("")
    for t in tabs:
        md += [f"## {t.title}", "", "| " + " | ".join(t.head) + " |", "|" + " --- |" * len(t.head)]
        md += ["| " + " | ".join(r) + " |" for r in t.rows]
        md.append("")
    if minimization:
        md += ["## Data minimization", "", minimization["markdown"], ""]
    if metrics.get("overrides"):
        md += [effect_markdown(metrics["overrides"])]
    md += ["## Caveats", ""] + [f"- {c}" for c in CAVEATS] + [""]
    md += [
        f"Data fingerprint (SHA-256 of the canonical tables): `{metrics['data_fingerprint']}`. "
        "The exact configuration is in `config.toml`; timings in `timings.json`.",
        "",
        "## Plots",
        "",
    ]
    md += [f"![{i.caption}]({i.file})" for i in images]
    return "\n".join(md) + "\n"


def _thousands(n: int) -> str:
    return f"{n:,}"


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("recsys.evaluation", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["thousands"] = _thousands
    return env


def _overrides_html(effect: dict[str, Any] | None) -> dict[str, str]:
    """The overrides section's heading and sentence (empty without an overrides file)."""
    if not effect:
        return {}
    heading, _, text = effect_markdown(effect).partition("\n\n")
    return {"heading": heading.removeprefix("## "), "text": text.strip()}


def render_report(
    out: Path, metrics: dict[str, Any], minimization: dict[str, Any] | None = None
) -> list[Path]:
    """Writes report.html, report.md and the plots; returns their paths."""
    images = plots(out, metrics)
    if minimization:
        images.append(
            Image(minimization["plot"], "Accuracy against the share of data kept.", 900, 500)
        )
    s = summary(metrics)
    tabs = tables(metrics)
    pipelines = [n for n in metrics["systems"] if n.startswith("recsys")]
    html = environment().get_template("report.html.j2").render(
        protocol=metrics["protocol"], k=metrics["protocol"]["k"], summary=s,
        comparison=metrics["comparison"], metric_help=METRIC_HELP, tables=tabs,
        examples=metrics.get("examples", []),
        examples_system="recsys" if "recsys" in pipelines else (pipelines[0] if pipelines else ""),
        minimization=minimization["markdown"] if minimization else "", images=images,
        overrides=_overrides_html(metrics.get("overrides")),
        caveats=CAVEATS, fingerprint=metrics["data_fingerprint"],
    )  # fmt: skip
    (out / "report.html").write_text(html)
    (out / "report.md").write_text(_markdown(metrics, s, tabs, images, minimization))
    return [out / "report.md", out / "report.html", *(out / i.file for i in images)]
