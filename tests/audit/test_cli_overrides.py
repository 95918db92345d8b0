"""Issue #17 on the command line: ``recommend --overrides FILE --audit`` serves and records the
overridden lists; ``evaluate --overrides FILE`` reports their effect; a bad file is exit 2."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from recsys.audit import SQLiteAuditTrail
from recsys.cli.main import main
from recsys.data import write_dataset
from recsys.data.synthetic import ShopSpec, make_shop
from recsys.evaluation.run import EvaluationConfig
from recsys.rerank.overrides import parse_overrides

BAD = [
    ('[[cap]]\nbrand = "A"\nmax_share = 2\n', "cap.0.max_share", "less than or equal to 1"),
    ('[[pin]]\nitem = "I1"\n', "pin.0.reason", "expected [[block]]"),
    ('[[blok]]\nitem = "I1"\n', "blok", "expected [[block]]"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Any]:
    """A shop written to disk, a model trained on it by the CLI, and its state directory."""
    root = tmp_path_factory.mktemp("cli-overrides")
    ds = make_shop(ShopSpec(n_users=120, n_items=60, seed=11))
    write_dataset(ds, root / "shop")
    ds.users[["user_id"]].head(40).to_csv(root / "users.csv", index=False)
    args = ["train", "--data", str(root / "shop"), "--out", str(root / "model"),
            "--now", "2026-12-01", "--state-dir", str(root / "state")]  # fmt: skip
    assert main(args) == 0
    return {"model": root / "model", "state": root / "state", "users": root / "users.csv",
            "shop": root / "shop", "items": ds.items.set_index("item_id"),
            "popular": ds.interactions["item_id"].value_counts().index[:10].tolist()}  # fmt: skip


def _recommend(t: dict[str, Any], out: Path, *extra: str) -> pd.DataFrame:
    args = ["recommend", "--model", str(t["model"]), "--users", str(t["users"]), "--k", "5",
            "--out", str(out), "--state-dir", str(t["state"]), *extra]  # fmt: skip
    assert main(args) == 0
    return pd.read_csv(out)


def test_recommend_with_overrides_and_audit(trained, tmp_path) -> None:
    before = _recommend(trained, tmp_path / "before.csv")
    blocked = Counter(before["item_id"]).most_common(1)[0][0]
    items = trained["items"]
    pick = next(i for i in items.index[items["in_stock"]] if i not in set(before["item_id"]))
    f = tmp_path / "overrides.toml"
    f.write_text(f'[[block]]\nitem = "{blocked}"\n'
                 f'[[pin]]\nitem = "{pick}"\nposition = 1\nreason = "our buyer\'s pick"\n')  # fmt: skip
    trail = SQLiteAuditTrail(trained["state"] / "state.sqlite")
    already = len(trail.lists())
    after = _recommend(trained, tmp_path / "after.csv", "--overrides", str(f), "--audit")
    assert blocked not in set(after["item_id"])
    picks = after[after["item_id"] == pick]
    assert len(picks) > 0 and (picks["rank"] == 1).all()
    assert picks["reason"].str.startswith("Staff pick: our buyer's pick").all()
    lists = trail.lists(limit=40)  # newest first
    assert len(trail.lists()) == already + 40 == already + after["user_id"].nunique()
    served = after.groupby("user_id", sort=False)["item_id"].apply(list)
    version = parse_overrides(f.read_text(), str).version
    for rec in lists:
        assert rec["pseudonym"] not in set(served.index), "pseudonyms only"
        assert rec["applied"]["overrides"]["version"] == version
    recorded = sorted(tuple(i["item_id"] for i in rec["items"]) for rec in lists)
    assert recorded == sorted(tuple(v) for v in served)
    # without --audit nothing more is recorded
    _recommend(trained, tmp_path / "again.csv", "--overrides", str(f))
    assert len(trail.lists()) == already + 40


@pytest.mark.parametrize("text, key, expected", BAD)
def test_a_bad_overrides_file_is_exit_2(trained, tmp_path, capsys, text, key, expected) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    rec = ["recommend", "--model", str(trained["model"]), "--user", "U0000001",
           "--state-dir", str(trained["state"]), "--overrides", str(f)]  # fmt: skip
    ev = ["evaluate", "--data", str(tmp_path / "no-such-data"), "--out", str(tmp_path / "r"),
          "--overrides", str(f)]  # fmt: skip
    for args in (rec, ev):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"recsys: error: {f}:") and key in err and expected in err, err
        assert "\n" not in err
    assert main([*rec[:-1], str(tmp_path / "missing.toml")]) == 2
    assert "cannot read the overrides file" in capsys.readouterr().err


def test_evaluate_reports_the_override_effect(trained, tmp_path, capsys) -> None:
    cfg = EvaluationConfig.model_validate(
        {"tune": False, "bootstrap": 20, "deletion_sample": 5, "examples": 0,
         "systems": ["popular", "recsys"]}
    )  # fmt: skip
    (tmp_path / "eval.toml").write_text(cfg.to_toml())
    f = tmp_path / "overrides.toml"
    f.write_text("".join(f'[[block]]\nitem = "{i}"\n' for i in trained["popular"]))
    args = ["evaluate", "--data", str(trained["shop"]), "--config", str(tmp_path / "eval.toml"),
            "--out", str(tmp_path / "report"), "--overrides", str(f)]  # fmt: skip
    assert main(args) == 0
    assert "The overrides file changed" in capsys.readouterr().out
    m = json.loads((tmp_path / "report" / "metrics.json").read_text())
    effect = m["overrides"]
    assert effect["system"] == "recsys" and len(effect["version"]) == 16
    assert 0 < effect["lists_changed"] <= effect["lists"] == m["protocol"]["users_evaluated"]
    assert effect["items_removed"] >= effect["lists_changed"]
    md = (tmp_path / "report" / "report.md").read_text()
    assert f"## Overrides (version {effect['version']})" in md
    html = (tmp_path / "report" / "report.html").read_text()
    assert 'id="overrides"' in html and "The overrides file changed" in html


def test_recommend_honours_recorded_feedback(trained, tmp_path) -> None:
    before = _recommend(trained, tmp_path / "before.csv")
    user = str(before["user_id"].iloc[0])
    item = str(before[before["user_id"] == before["user_id"].iloc[0]]["item_id"].iloc[0])
    assert main(["feedback", "not-interested", "--user", user, "--item", item,
                 "--state-dir", str(trained["state"])]) == 0  # fmt: skip
    after = _recommend(trained, tmp_path / "after.csv")
    mine = after[after["user_id"].astype(str) == user]
    assert len(mine) and item not in set(mine["item_id"])
