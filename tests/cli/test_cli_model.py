"""The plain CLI form, exactly as a shop would type it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from recsys.cli.main import main
from recsys.data.synthetic import ShopSpec, make_shop


@pytest.fixture(scope="module")
def shop_files(tmp_path_factory) -> Path:
    """CSV files as a shop exports them: mixed ISO/Unix timestamps, multi-valued categories."""
    d = tmp_path_factory.mktemp("shop")
    ds = make_shop(ShopSpec(n_users=300, n_items=120, seed=9))
    inter = ds.interactions.copy()
    ts = inter["timestamp"]
    inter["timestamp"] = ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    inter.loc[inter.index % 2 == 0, "timestamp"] = (
        ts[inter.index % 2 == 0].astype("int64")
    ).astype(str)
    inter.to_csv(d / "train.csv", index=False)
    items = ds.items.copy()
    items.loc[items.index % 5 == 0, "category"] += "|Gifts"
    items.to_csv(d / "items.csv", index=False)
    ds.users.to_csv(d / "users.csv", index=False)
    return d


def train_args(d: Path, out: str) -> list[str]:
    """The plain form, exactly as the README writes it."""
    return ["train", "--interactions", str(d / "train.csv"), "--items", str(d / "items.csv"),
            "--users", str(d / "users.csv"), "--out", out, "--now", "2026-11-01"]  # fmt: skip


def recommend_all_args(d: Path, out: str) -> list[str]:
    return ["recommend", "--model", "model/", "--users", str(d / "users.csv"), "--out", out]


def test_train_then_recommend_every_user(
    shop_files: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "state"  # a shop's state directory, outside every model directory
    monkeypatch.setenv("RECSYS_STATE_DIR", str(state))
    d = shop_files
    assert main(train_args(d, "model/")) == 0
    out = capsys.readouterr().out
    assert "created a pseudonymization key" in out and "model written to model/" in out
    assert not any("key" in p.name for p in Path("model").iterdir())
    assert (state / "pseudonym.key").exists() and (state / "state.sqlite").exists()
    assert main([*recommend_all_args(d, "recs.csv"), "--k", "10"]) == 0
    recs = pd.read_csv("recs.csv", dtype={"user_id": str, "item_id": str})
    assert {"user_id", "item_id", "rank", "score", "reason"} <= set(recs.columns)
    users = pd.read_csv(d / "users.csv", dtype=str)["user_id"]
    assert set(recs["user_id"]) == set(users)  # every user, with the ids as given
    assert recs["reason"].str.len().gt(0).all()
    assert recs.groupby("user_id").size().max() == 10
    assert main(recommend_all_args(d, "recs.parquet")) == 0
    assert len(pd.read_parquet("recs.parquet")) == len(recs)


def test_recommend_one_user_prints_reasons(
    shop_files: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    d = shop_files
    assert main(train_args(d, "m")) == 0
    user = pd.read_csv(d / "train.csv", dtype=str)["user_id"].value_counts().index[0]
    capsys.readouterr()
    assert main(["recommend", "--model", "m", "--user", user, "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"user {user}") and out.count("score") == 3
    assert (
        main(["recommend", "--model", "m", "--user", user, "--k", "10", "--no-rerank", "--json"])
        == 0
    )
    (lst,) = json.loads(capsys.readouterr().out)
    assert {r["explanation"]["stage"] for r in lst} == {"ranker"}


def test_historical_data_without_now_is_a_clear_error(
    ml100k_path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", str(ml100k_path), "--out", "m"]) == 2
    err = capsys.readouterr().err
    assert "pass an earlier `now`" in err
    assert "the data's newest event is on 1998-04-22: --now 1998-04-23" in err


def test_bad_config_is_a_clear_error(shop_files: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    Path("cfg.toml").write_text("[ranker]\nmax_iter = 10\nlearning_rat = 0.1\n")
    d = shop_files
    code = main(["train", "--interactions", str(d / "train.csv"), "--items", str(d / "items.csv"),
                 "--out", "m", "--config", "cfg.toml"])  # fmt: skip
    assert code == 2
    assert "cfg.toml: ranker.learning_rat" in capsys.readouterr().err


def test_training_again_publishes_a_new_version(
    shop_files: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    d = shop_files
    assert main(train_args(d, "m")) == 0
    assert main(train_args(d, "m")) == 0
    assert sorted(p.name for p in Path("m").iterdir()) == [".lock", "CURRENT", "versions"]
    assert [p.name for p in Path("m/versions").iterdir()] == ["000002"]
    assert Path("m/CURRENT").read_text().startswith("000002 ")


@pytest.mark.parametrize("model", ["missing", "not-a-model"])
def test_a_bad_model_directory_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch, capsys, model: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", "k" * 32)
    Path("not-a-model").mkdir()
    Path("not-a-model/notes.txt").write_text("hello")
    assert main(["recommend", "--model", model, "--user", "U1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"recsys: error: {model}: ") and err.count("\n") == 1
