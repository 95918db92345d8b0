"""Issue #17: the monitor fails on a planted drift (the small-seller share halves), passes on an
unchanged run, and bad input is exit 2; "why did I see this?" reads the trail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys.audit import FeedbackStore, SQLiteAuditTrail, attach, reason_wrong
from recsys.audit.report import trail_metrics
from recsys.cli.main import main

THRESHOLDS = """
[metrics."exposure_share.small_sellers"]
max_relative_drop = 0.25
[metrics.coverage]
max_drop = 0.05
[metrics.reason_coverage]
min = 0.9
[metrics."feedback.reason_wrong_per_1000"]
max = 500
"""


@pytest.fixture(scope="module")
def served(shop_rec, customers, tmp_path_factory) -> tuple[dict, Path]:
    """Metrics of lists really served through the audit trail."""
    rec, _ = shop_rec
    db = tmp_path_factory.mktemp("monitor") / "state.sqlite"
    trail, fb = SQLiteAuditTrail(db), FeedbackStore(db)
    attach(rec, sink=trail, feedback=fb)
    try:
        lists = rec.recommend_many(customers, 5)
    finally:
        attach(rec)
    reason_wrong(fb, rec.pseudonymizer, customers[0], lists[0].item_ids[0])
    return trail_metrics(trail, fb, rec.model_), db


def _write(path: Path, metrics: dict) -> str:
    path.write_text(json.dumps(metrics))
    return str(path)


def test_monitor_fails_on_planted_drift_and_passes_unchanged(served, tmp_path, capsys) -> None:
    metrics, _ = served
    assert metrics["exposure_share"]["small_sellers"] > 0
    assert metrics["feedback"]["reason_wrong_per_1000"] > 0
    (tmp_path / "t.toml").write_text(THRESHOLDS)
    base = _write(tmp_path / "baseline.json", metrics)
    same = _write(tmp_path / "same.json", metrics)
    drift = json.loads(json.dumps(metrics))
    drift["exposure_share"]["small_sellers"] /= 2  # the small sellers' share halves
    drifted = _write(tmp_path / "drift.json", drift)
    args = ["monitor", "--baseline", base, "--thresholds", str(tmp_path / "t.toml"),
            "--history", str(tmp_path / "history")]  # fmt: skip
    assert main([*args, "--run", same, "--out", str(tmp_path / "ok")]) == 0
    assert "All monitored metrics are within" in (tmp_path / "ok" / "monitor.md").read_text()
    assert main([*args, "--run", drifted, "--out", str(tmp_path / "bad")]) == 1
    report = (tmp_path / "bad" / "monitor.md").read_text()
    assert "1 threshold(s) crossed" in report
    assert "| exposure_share.small_sellers |" in report and "**crossed**" in report
    assert (tmp_path / "bad" / "monitor.png").stat().st_size > 1000
    assert len((tmp_path / "history" / "history.jsonl").read_text().splitlines()) == 2


def test_monitor_reads_an_evaluations_metrics_json(tmp_path) -> None:
    run = {"systems": {"popular": {"coverage": 0.1}, "recsys (full, re-ranked)": {
        "coverage": 0.4, "exposure_share": {"small_sellers": 0.3},
        "user_groups": {"gender": {"gap": 0.01}}}}}  # fmt: skip
    worse = json.loads(json.dumps(run))
    worse["systems"]["recsys (full, re-ranked)"]["user_groups"]["gender"]["gap"] = 0.08
    (tmp_path / "t.toml").write_text('[metrics."user_groups.gender.gap"]\nmax_rise = 0.02\n')
    args = ["monitor", "--baseline", _write(tmp_path / "a.json", run), "--thresholds",
            str(tmp_path / "t.toml"), "--history", str(tmp_path / "h"), "--out", str(tmp_path)]  # fmt: skip
    assert main([*args, "--run", _write(tmp_path / "b.json", run)]) == 0
    assert main([*args, "--run", _write(tmp_path / "c.json", worse)]) == 1


@pytest.mark.parametrize(
    "thresholds, says",
    [
        ("[metrics.no_such_metric]\nmax = 1\n", "'no_such_metric' is not in the baseline"),
        ("[metrics.coverage]\nmax_dorp = 1\n", "max_dorp"),
        ("[metrics.coverage]\n", "sets no rule"),
        ("[metrics.coverage\n", "not valid TOML"),
    ],
)
def test_bad_monitor_input_is_exit_2(served, tmp_path, capsys, thresholds, says) -> None:
    metrics, _ = served
    (tmp_path / "t.toml").write_text(thresholds)
    base = _write(tmp_path / "b.json", metrics)
    code = main(["monitor", "--baseline", base, "--run", base, "--thresholds",
                 str(tmp_path / "t.toml"), "--out", str(tmp_path), "--history", str(tmp_path)])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert says in err and "t.toml" in err


def test_audit_show_answers_why(shop_rec, customers, tmp_path, monkeypatch, capsys) -> None:
    from recsys.rerank.overrides import parse_overrides

    rec, _ = shop_rec
    state = tmp_path / "state"
    state.mkdir()
    key = state / "pseudonym.key"
    key.write_bytes(b"test-key-0123456789abcdef")
    key.chmod(0o600)
    monkeypatch.setenv("RECSYS_STATE_DIR", str(state))
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY_FILE", str(key))
    user = next(u for u in customers if rec.recommend(u, 3).personalized)
    pick = rec.recommend(customers[-1], 3).item_ids[0]
    ov = parse_overrides(f'[[pin]]\nitem = "{pick}"\nreason = "loved by our team"\n', rec.key_of)
    attach(rec, sink=SQLiteAuditTrail(state / "state.sqlite"), overrides=ov)
    try:
        recs = rec.recommend(user, 3)
    finally:
        attach(rec)
    assert main(["audit", "show", "--user", user]) == 0
    out = capsys.readouterr().out
    assert "you were shown 3 item(s), picked for you" in out
    for r in recs:
        assert r.reason.text in out
    if pick in recs.item_ids:
        assert "Staff pick: loved by our team" in out and "pinned by the shop's staff" in out
    assert user not in out, "the raw id is not in the trail"
    assert main(["audit", "export", "--out", str(tmp_path / "audit.parquet")]) == 0
    import pandas as pd

    df = pd.read_parquet(tmp_path / "audit.parquet")
    assert list(df["item_id"]) == recs.item_ids and user not in set(df["pseudonym"])
