"""The evaluation run end to end on a small shop: deterministic metrics and a readable report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.cli.main import main
from recsys.data import write_dataset
from recsys.data.synthetic import ShopSpec, make_shop
from recsys.evaluation.audit import bootstrap_mean, group_accuracy
from recsys.evaluation.baselines import EASE, ItemKNN, MostPopular, relevant
from recsys.evaluation.run import EvaluationConfig, run_evaluation, write_report


@pytest.fixture(scope="module")
def shop():
    return make_shop(ShopSpec(n_users=250, n_items=90, seed=21))


def small_config() -> EvaluationConfig:
    return EvaluationConfig.model_validate(
        {"tune": False, "bootstrap": 50, "deletion_sample": 10,
         "systems": ["popular", "ease", "als", "recsys (no re-ranking)", "recsys"]}
    )  # fmt: skip


def test_run_is_deterministic_and_complete(shop, tmp_path: Path) -> None:
    cfg = small_config()
    a, timings, _ = run_evaluation(shop, cfg)
    b, _, _ = run_evaluation(shop, cfg)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    m = a["systems"]["recsys"]
    for key in ("ndcg@10", "recall@10", "precision@10", "map@10", "mrr@10", "hit_rate@10", "coverage",
                "intra_list_diversity", "novelty", "miscalibration_kl", "exposure_gini"):  # fmt: skip
        assert isinstance(m[key], float)
    assert {"long_tail", "small_sellers"} <= set(m["exposure_share"])
    assert {"activity", "gender", "age_band"} <= set(m["user_groups"])
    e = m["explanations"]
    assert e["reason_coverage"] == 1.0 and e["evidence_validity"] == 1.0
    assert e["additivity_max_error"] < 1e-6
    assert "explanations" not in a["systems"]["als"]
    assert set(timings) >= {"als", "recsys"}
    paths = write_report(tmp_path, a, timings, cfg)
    assert (tmp_path / "metrics.json").read_text() == json.dumps(a, indent=2, sort_keys=True) + "\n"
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    assert "| recsys |" in (tmp_path / "report.md").read_text()
    assert EvaluationConfig.from_toml((tmp_path / "config.toml").read_text()) == cfg


def test_cli_evaluate(shop, tmp_path: Path, capsys) -> None:
    write_dataset(shop, tmp_path / "data")
    (tmp_path / "eval.toml").write_text(small_config().to_toml())
    args = ["evaluate", "--data", str(tmp_path / "data"), "--config", str(tmp_path / "eval.toml"),
            "--seed", "3", "--out", str(tmp_path / "report")]  # fmt: skip
    assert main(args) == 0
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["systems"]["recsys"]
    assert "recsys" in capsys.readouterr().out


def test_item_knn_and_ease_rank_cooccurring_items_first() -> None:
    t = pd.Timestamp("2026-01-01", tz="UTC")
    rows = [
        ("u1", "a"),
        ("u1", "b"),
        ("u2", "a"),
        ("u2", "b"),
        ("u3", "a"),
        ("u3", "c"),
        ("u4", "a"),
    ]
    train = pd.DataFrame(rows, columns=["user_id", "item_id"]).assign(
        timestamp=t, event="purchase", value=1.0
    )
    items = pd.DataFrame({"item_id": list("abcd"), "title": list("ABCD"), "category": ["x"] * 4})
    users = pd.DataFrame({"user_id": ["u1", "u2", "u3", "u4"]})
    for system in (ItemKNN(neighbors=3), EASE(l2=1.0)):
        recs = system.fit(train, items, users).recommend_all(["u4"], 2)
        assert recs["u4"][0] == "b"  # bought with a twice, with c once
        assert "a" not in recs["u4"]  # seen items are excluded
    assert MostPopular().fit(train, items, users).recommend_all(["u4"], 1)["u4"] == ["b"]


def test_relevance_definition() -> None:
    t = pd.Timestamp("2026-01-01", tz="UTC")
    test = pd.DataFrame(
        {"user_id": ["u", "u", "u"], "item_id": ["a", "b", "c"], "timestamp": t,
         "event": ["rating", "rating", "rating"], "value": [5.0, 3.0, 4.0]}
    )  # fmt: skip
    assert relevant(test) == {"u": {"a", "c"}}


def test_bootstrap_and_group_gap_by_hand() -> None:
    lo, hi = bootstrap_mean(np.array([1.0, 1.0, 1.0]), n=100)
    assert lo == hi == 1.0
    res = group_accuracy(
        {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0},
        pd.Series({"a": "x", "b": "x", "c": "y", "d": "y"}),
        n_boot=100,
    )
    assert res["gap"] == 1.0 and res["gap_ci95"] == [1.0, 1.0]
    assert res["best"] == "x" and res["worst"] == "y"
    assert res["groups"]["x"]["users"] == 2


def test_cli_minimization_curve(shop, tmp_path: Path) -> None:
    write_dataset(shop, tmp_path / "data")
    cfg = small_config().model_copy(update={"systems": ["popular"]})
    (tmp_path / "eval.toml").write_text(cfg.to_toml())
    args = ["evaluate", "--data", str(tmp_path / "data"), "--config", str(tmp_path / "eval.toml"),
            "--out", str(tmp_path / "r"), "--minimization", "--minimization-seeds", "1", "--workers", "1"]  # fmt: skip
    assert main(args) == 0
    result = json.loads((tmp_path / "r" / "minimization.json").read_text())
    assert len(result["table"]) >= 5
    # the smallest setting within tolerance of the full data, when one is (on a shop this
    # small none may be): never one outside it
    best, tolerance = result["best"], 0.02  # the curve's default tolerance
    within = [r for r in result["table"] if r["strategy"] != "full"
              and r["ndcg_vs_full"] >= 1 - tolerance]  # fmt: skip
    assert (best is None) == (not within)
    assert best is None or best["cells"] == min(r["cells"] for r in within)
    assert (tmp_path / "r" / "minimization.png").stat().st_size > 0
    assert "Data minimization" in (tmp_path / "r" / "report.md").read_text()
