"""The drift monitor: a new run's metrics against a stored baseline and configured thresholds.

A run is the ``metrics.json`` that ``recsys evaluate`` writes (one system's metrics are read,
``--system``), or a flat JSON object ``{"metric": number}`` (e.g. computed from the audit trail).
Metric names are dotted paths: ``exposure_share.small_sellers``, ``coverage``,
``user_groups.gender.gap``, ``reason_coverage``, ``rule_violations``, ``feedback.not_interested_rate``.
Thresholds are TOML, one table per metric::

    [metrics."exposure_share.small_sellers"]
    max_relative_drop = 0.25     # fail when it falls by more than 25% of the baseline
    [metrics.coverage]
    max_drop = 0.05              # absolute fall
    [metrics."user_groups.gender.gap"]
    max_rise = 0.02              # absolute rise (also max_relative_rise)
    [metrics.rule_violations]
    max = 0                      # bounds on the run's own value (also min)

Each run is appended to a history (``history.jsonl`` in a directory), so the report can plot
every monitored metric over runs.
"""

from __future__ import annotations

import json
import math
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recsys.errors import ConfigError

RULES = ("max_drop", "max_rise", "max_relative_drop", "max_relative_rise", "min", "max")


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_drop: float | None = Field(None, ge=0)
    max_rise: float | None = Field(None, ge=0)
    max_relative_drop: float | None = Field(None, ge=0)
    max_relative_rise: float | None = Field(None, ge=0)
    min: float | None = None
    max: float | None = None


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metrics: dict[str, Rule]


def read_thresholds(path: str | Path) -> Thresholds:
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the thresholds: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    try:
        t = Thresholds.model_validate(raw)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(
            f'{p}: invalid thresholds: {msgs} (expected [metrics."NAME"] tables with '
            f"{', '.join(RULES)})"
        ) from exc
    for name, rule in t.metrics.items():
        if not any(v is not None for v in rule.model_dump().values()):
            raise ConfigError(f'{p}: [metrics."{name}"] sets no rule; expected one of {RULES}')
    return t


def _flatten(d: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(d, int | float):  # bools too
        out[prefix[:-1]] = float(d)
    return out


def read_run(path: str | Path, system: str | None = None) -> dict[str, float]:
    """Every numeric metric of a run file, by dotted name (see the module docstring)."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the run: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a JSON object of metrics")
    if "systems" in raw:  # an evaluation's metrics.json
        systems = raw["systems"]
        name = system or next((s for s in systems if s.startswith("recsys")), None)
        if name not in systems:
            raise ConfigError(
                f"{p}: no system {name!r} in this evaluation; systems: {sorted(systems)} "
                "(choose one with --system)"
            )
        raw = systems[name]
    return _flatten(raw)


@dataclass(frozen=True)
class Check:
    metric: str
    baseline: float
    run: float
    rule: str
    limit: float
    crossed: bool

    @property
    def change(self) -> float:
        return self.run - self.baseline


def compare(
    baseline: dict[str, float], run: dict[str, float], t: Thresholds, where: str = ""
) -> list[Check]:
    """One check per rule; a metric missing from either run is an error naming it."""
    out = []
    for name, rule in t.metrics.items():
        for side, values in (("baseline", baseline), ("run", run)):
            if name not in values:
                near = sorted(k for k in values if name.split(".")[0] in k)[:8]
                raise ConfigError(
                    f"{where}metric {name!r} is not in the {side} (numeric metrics there "
                    f"include: {near or sorted(values)[:8]})"
                )
        b, r = baseline[name], run[name]
        for kind, limit in rule.model_dump().items():
            if limit is None:
                continue
            if kind == "max_drop":
                bad = b - r > limit
            elif kind == "max_rise":
                bad = r - b > limit
            elif kind == "max_relative_drop":
                bad = b > 0 and (b - r) / b > limit
            elif kind == "max_relative_rise":
                bad = (r - b) / b > limit if b > 0 else r > 0
            elif kind == "min":
                bad = r < limit
            else:
                bad = r > limit
            out.append(Check(name, b, r, kind, float(limit), bool(bad or math.isnan(r))))
    return out


def append_history(directory: Path, label: str, run: dict[str, float]) -> list[dict[str, Any]]:
    """Add the run to ``history.jsonl`` and return every run so far (oldest first)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "history.jsonl"
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"at": time.time(), "label": label, "metrics": run}) + "\n")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_history(history: list[dict[str, Any]], metrics: list[str], out: Path) -> Path:
    """One small panel per monitored metric, its value over runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(metrics), 1)
    fig, axes = plt.subplots(n, 1, figsize=(7, 2.2 * n), squeeze=False)
    for ax, name in zip(axes[:, 0], metrics, strict=False):
        ys = [h["metrics"].get(name, float("nan")) for h in history]
        ax.plot(range(1, len(ys) + 1), ys, marker="o")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("run")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def report_markdown(checks: list[Check], baseline_name: str, run_name: str, plot: str) -> str:
    crossed = [c for c in checks if c.crossed]
    head = (
        f"**{len(crossed)} threshold(s) crossed**: someone should look at this run."
        if crossed
        else "All monitored metrics are within their thresholds."
    )
    lines = [
        "# Drift monitor", "", head, "", f"Baseline: `{baseline_name}`; run: `{run_name}`.", "",
        "| metric | baseline | run | change | rule | limit | status |",
        "| --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]  # fmt: skip
    for c in checks:
        status = "**crossed**" if c.crossed else "ok"
        lines.append(f"| {c.metric} | {c.baseline:.4f} | {c.run:.4f} | {c.change:+.4f} | "
                     f"{c.rule} | {c.limit:g} | {status} |")  # fmt: skip
    lines += ["", f"![each monitored metric over runs]({plot})", ""]
    return "\n".join(lines)
