from __future__ import annotations

from pathlib import Path

import pandas as pd

from recsys.cli.main import main


def test_synth_then_validate(tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "data",
                "synth",
                "--users",
                "100",
                "--items",
                "40",
                "--seed",
                "2",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert {p.name for p in tmp_path.iterdir()} == {
        "interactions.parquet", "items.parquet", "users.parquet", "audit.parquet"
    }  # fmt: skip
    capsys.readouterr()
    assert main(["data", "validate", str(tmp_path)]) == 0
    assert "total rejected: 0" in capsys.readouterr().out


def test_validate_movielens(ml100k_path, capsys) -> None:
    assert main(["data", "validate", str(ml100k_path), "--format", "movielens"]) == 0
    out = capsys.readouterr().out
    assert "100,000 interactions, 943 users, 1,682 items, 0 rejected" in out


def test_validate_reports_bad_rows_and_writes_quarantine(tmp_path: Path, capsys) -> None:
    (tmp_path / "i.csv").write_text(
        "user_id,item_id,timestamp,event\nu1,A,2025-01-01,view\nu1,A,soon,view\n"
    )
    (tmp_path / "items.csv").write_text("item_id,title,category\nA,Mug,Home\n")
    q = tmp_path / "q.csv"
    args = [
        "data",
        "validate",
        "--interactions",
        str(tmp_path / "i.csv"),
        "--items",
        str(tmp_path / "items.csv"),
    ]
    # one of two interactions rejected is more than the default 5%: exit 2, report still written
    assert main([*args, "--quarantine", str(q)]) == 2
    out = capsys.readouterr()
    assert "bad_timestamp" in out.out
    assert "interactions: 1 of 2 rows rejected (50.0%" in out.err
    assert pd.read_csv(q)["row"].tolist() == [3]
    assert main([*args, "--max-rejected", "0.5"]) == 0
    capsys.readouterr()
    assert main([*args, "--strict"]) == 2
    err = capsys.readouterr().err
    assert "i.csv, row 3, column 'timestamp'" in err


def test_demo_writes_recommendations(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--users", "200", "--items", "80", "--out", str(tmp_path)]) == 0
    recs = pd.read_csv(tmp_path / "recommendations.csv")
    assert {"user_id", "item_id", "rank", "score", "reason"} <= set(recs.columns)
    assert recs["reason"].str.len().gt(0).all()
