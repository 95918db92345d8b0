"""The evaluation report: a table of all systems, the audit, explanations, and plots."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.1%}" if pct else f"{v:.4f}"
    return str(v)


def tables(metrics: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    k = metrics["protocol"]["k"]
    systems = metrics["systems"]
    main_head = ["system", f"NDCG@{k}", "95% CI", f"Recall@{k}", f"Precision@{k}", f"MAP@{k}",
                 f"MRR@{k}", f"Hit@{k}", "coverage", "ILD", "novelty", "miscalibration",
                 "exposure Gini", "long-tail exposure"]  # fmt: skip
    has_small = any("small_sellers" in m["exposure_share"] for m in systems.values())
    if has_small:
        main_head.append("small-seller exposure")
    main_rows = []
    for name, m in systems.items():
        ci = m[f"ndcg@{k}_ci95"]
        row = [name, _fmt(m[f"ndcg@{k}"]), f"{ci[0]:.4f}–{ci[1]:.4f}", _fmt(m[f"recall@{k}"]),
               _fmt(m[f"precision@{k}"]), _fmt(m[f"map@{k}"]), _fmt(m[f"mrr@{k}"]), _fmt(m[f"hit_rate@{k}"]),
               _fmt(m["coverage"]), _fmt(m["intra_list_diversity"]), _fmt(m["novelty"]),
               _fmt(m["miscalibration_kl"]), _fmt(m["exposure_gini"]),
               _fmt(m["exposure_share"]["long_tail"], True)]  # fmt: skip
        if has_small:
            row.append(_fmt(m["exposure_share"].get("small_sellers"), True))
        main_rows.append(row)
    group_rows = []
    for name, m in systems.items():
        for col, g in m["user_groups"].items():
            parts = ", ".join(
                f"{grp}: {v['mean']:.3f} (n={v['users']})" for grp, v in g["groups"].items()
            )
            group_rows.append(
                [
                    name,
                    col,
                    parts,
                    f"{g['gap']:.4f}",
                    f"{g['gap_ci95'][0]:.4f}–{g['gap_ci95'][1]:.4f}",
                ]
            )
    expl_rows = []
    for name, m in systems.items():
        e = m.get("explanations")
        if e:
            expl_rows.append([name, _fmt(e["reason_coverage"], True), f"{e['additivity_max_error']:.1e}",
                              _fmt(e["evidence_validity"], True), str(e["facts_checked"]),
                              _fmt(e["deletion_test_lowered"], True), str(e["deletion_cases"]),
                              f"{m['footprint_cells']:,}"])  # fmt: skip
    return [
        ("All systems", main_head, main_rows),
        ("Accuracy per user group (NDCG, with the largest gap and its bootstrap 95% CI)",
         ["system", "grouping", "groups", "gap", "gap 95% CI"], group_rows),
        ("Explanations", ["system", "reason coverage", "additivity error", "evidence validity",
                          "facts checked", "deletion test lowers score", "deletion cases", "cells used"],
         expl_rows),
    ]  # fmt: skip


def plots(out: Path, metrics: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = metrics["protocol"]["k"]
    systems = metrics["systems"]
    names = list(systems)
    made = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (key, label) in zip(axes, [("long_tail", "long-tail share of exposure"),
                                       ("ild", "intra-list diversity")], strict=True):  # fmt: skip
        for n in names:
            m = systems[n]
            x = (
                m["exposure_share"]["long_tail"]
                if key == "long_tail"
                else m["intra_list_diversity"]
            )
            ax.scatter(x, m[f"ndcg@{k}"], s=40)
            ax.annotate(
                n, (x, m[f"ndcg@{k}"]), fontsize=8, xytext=(4, 4), textcoords="offset points"
            )
        ax.set_xlabel(label)
        ax.set_ylabel(f"NDCG@{k}")
    fig.suptitle("Accuracy against fairness and diversity")
    fig.tight_layout()
    fig.savefig(out / "tradeoff.png", dpi=110)
    plt.close(fig)
    made.append("tradeoff.png")

    groups = sorted({g for m in systems.values() for g in m["exposure_share"]})
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / max(len(groups), 1)
    for j, g in enumerate(groups):
        ax.bar([i + j * width for i in range(len(names))],
               [systems[n]["exposure_share"].get(g, 0.0) for n in names], width, label=g)  # fmt: skip
    ax.set_xticks(
        [i + width * (len(groups) - 1) / 2 for i in range(len(names))],
        names,
        rotation=20,
        fontsize=8,
    )
    ax.set_ylabel("share of position-discounted exposure")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "exposure.png", dpi=110)
    plt.close(fig)
    made.append("exposure.png")

    focus = [n for n in names if n.startswith("recsys")] or names[-1:]
    cols = list(systems[focus[0]]["user_groups"])
    fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 3.8), squeeze=False)
    for ax, col in zip(axes[0], cols, strict=True):
        for j, n in enumerate(focus):
            g = systems[n]["user_groups"][col]["groups"]
            labels = list(g)
            means = [g[x]["mean"] for x in labels]
            err = [
                [g[x]["mean"] - g[x]["ci95"][0] for x in labels],
                [g[x]["ci95"][1] - g[x]["mean"] for x in labels],
            ]
            ax.errorbar(
                [i + 0.15 * j for i in range(len(labels))],
                means,
                yerr=err,
                fmt="o",
                capsize=3,
                label=n,
            )
            ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=8)
        ax.set_title(col)
        ax.set_ylabel(f"NDCG@{k}")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "groups.png", dpi=110)
    plt.close(fig)
    made.append("groups.png")
    return made


def render_report(
    out: Path, metrics: dict[str, Any], minimization: dict[str, Any] | None = None
) -> list[Path]:
    images = plots(out, metrics)
    p = metrics["protocol"]
    md = [
        "# recsys evaluation report",
        "",
        f"Split: {p['split']['kind']} (test fraction {p['split']['test_fraction']}); k = {p['k']}; "
        f"relevant: {p['relevant']}; {p['users_evaluated']:,} users evaluated; "
        f"{p['train_interactions']:,} training and {p['test_interactions']:,} test interactions.",
        f"Data fingerprint (SHA-256 of the canonical tables): `{metrics['data_fingerprint']}`. "
        "The exact configuration is in `config.toml`; timings in `timings.json`.",
        "",
    ]
    html_parts = [
        f"<h1>recsys evaluation report</h1><p>{html.escape(md[2])}</p><p>{html.escape(md[3])}</p>"
    ]
    for title, head, rows in tables(metrics):
        if not rows:
            continue
        md += [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        md += ["| " + " | ".join(r) + " |" for r in rows]
        md.append("")
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
        )
        html_parts.append(f"<h2>{html.escape(title)}</h2><table><tr>{cells}</tr>{body}</table>")
    if minimization:
        md += ["## Data minimization", "", minimization["markdown"], ""]
        images.append(minimization["plot"])
        html_parts.append(
            f"<h2>Data minimization</h2><pre>{html.escape(minimization['markdown'])}</pre>"
        )
    md += ["## Plots", ""] + [f"![{i}]({i})" for i in images]
    html_parts += [f'<img src="{i}" alt="{i}">' for i in images]
    (out / "report.md").write_text("\n".join(md) + "\n")
    style = "body{font-family:sans-serif;max-width:1200px;margin:auto}td,th{padding:2px 8px;border-bottom:1px solid #ddd}img{max-width:100%}"
    (out / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>recsys evaluation</title><style>{style}</style></head><body>{''.join(html_parts)}</body></html>\n"
    )
    return [out / "report.md", out / "report.html", *(out / i for i in images)]
