"""Every kind of bad input gets a clear error (strict) or a counted quarantine (default)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from recsys.data import load_dataset
from recsys.errors import DataValidationError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ITEMS = "item_id,title,category,price\nA,Espresso Beans,Grocery > Coffee|Gifts,9.5\nB,Green Tea,Grocery > Tea,4\n"
USERS = "user_id,consent_personalization,consent_email\nu1,true,false\nu2,yes,no\n"
GOOD = [
    "u1,A,2025-10-03T10:00:00Z,purchase,1",
    "u2,B,1759485600,view,",
]


def write(
    tmp: Path, interactions: list[str], items: str = ITEMS, users: str = USERS
) -> tuple[Path, ...]:
    (tmp / "i.csv").write_text(
        "user_id,item_id,timestamp,event,value\n" + "\n".join(interactions) + "\n"
    )
    (tmp / "items.csv").write_text(items)
    (tmp / "users.csv").write_text(users)
    return tmp / "i.csv", tmp / "items.csv", tmp / "users.csv"


def load(tmp: Path, rows: list[str], **kw):
    return load_dataset(*write(tmp, rows), now=NOW, **kw)


def test_good_rows_are_typed(tmp_path: Path) -> None:
    ds = load(tmp_path, GOOD)
    assert ds.report.n_rejected == 0
    assert len(ds.interactions) == 2
    assert str(ds.interactions["timestamp"].dtype) == "datetime64[s, UTC]"
    # ISO-8601 and Unix seconds both parse to the same instant representation
    assert ds.interactions["timestamp"].iloc[1] == pd.Timestamp("2025-10-03T10:00:00Z")
    assert ds.items.set_index("item_id").loc["A", "category"] == "Grocery > Coffee|Gifts"
    assert ds.users.set_index("user_id")["consent_email"].tolist() == [False, False]


BAD = [
    ("u1,A,yesterday,purchase,1", "bad_timestamp", "timestamp"),
    ("u1,A,2099-01-01T00:00:00Z,purchase,1", "future_timestamp", "timestamp"),
    (",A,2025-10-03T10:00:00Z,purchase,1", "empty_id", "user_id"),
    ("u1,,2025-10-03T10:00:00Z,purchase,1", "empty_id", "item_id"),
    ("u1,ZZZ,2025-10-03T10:00:00Z,purchase,1", "unknown_item", "item_id"),
    ("u9,A,2025-10-03T10:00:00Z,purchase,1", "unknown_user", "user_id"),
    ("u1,A,2025-10-03T10:00:00Z,purchase,-2", "negative_value", "value"),
    ("u1,A,2025-10-03T10:00:00Z,purchase,two", "bad_number", "value"),
    ("u1,A,2025-10-03T10:00:00Z,bought,1", "unknown_event", "event"),
    (GOOD[0], "duplicate_row", "user_id"),
]


@pytest.mark.parametrize(("row", "reason", "column"), BAD, ids=[b[1] for b in BAD])
def test_bad_row_is_quarantined_and_counted(
    tmp_path: Path, row: str, reason: str, column: str
) -> None:
    ds = load(tmp_path, [*GOOD, row])
    rep = ds.report.tables["interactions"]
    assert rep.received == 3
    assert rep.accepted == 2
    assert dict(rep.rejected) == {reason: 1}
    q = ds.report.quarantined()
    assert q[["row", "column", "reason"]].values.tolist() == [[4, column, reason]]
    assert len(ds.interactions) == 2


@pytest.mark.parametrize(("row", "reason", "column"), BAD, ids=[b[1] for b in BAD])
def test_strict_mode_names_file_row_and_column(
    tmp_path: Path, row: str, reason: str, column: str
) -> None:
    with pytest.raises(DataValidationError) as err:
        load(tmp_path, [*GOOD, row], strict=True)
    e = err.value
    assert e.file is not None and e.file.endswith("i.csv")
    assert e.row == 4  # line 4 of the file: header, two good rows, then this one
    assert e.column == column
    assert "expected" in str(e)


def test_missing_column_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "i.csv").write_text("user_id,item_id,event\nu1,A,view\n")
    (tmp_path / "items.csv").write_text(ITEMS)
    with pytest.raises(DataValidationError, match=r"i\.csv, column 'timestamp'.*missing required"):
        load_dataset(tmp_path / "i.csv", tmp_path / "items.csv", now=NOW)


def test_bad_items_and_users_are_counted(tmp_path: Path) -> None:
    items = ITEMS + "C,,Grocery,1\nD,Mug,Home,-3\nA,Again,Grocery,1\n"
    users = USERS + "u3,maybe,no\n"
    ds = load_dataset(*write(tmp_path, GOOD, items=items, users=users), now=NOW)
    assert dict(ds.report.tables["items"].rejected) == {"empty_value": 1, "duplicate_key": 1}
    # a negative price is a bad optional cell: the price is emptied and counted, the item kept
    assert dict(ds.report.tables["items"].corrected) == {"bad_optional_value": 1}
    assert dict(ds.report.tables["users"].rejected) == {"bad_bool": 1}
    assert ds.report.n_rejected == 3
    assert set(ds.items["item_id"]) == {"A", "B", "D"}
    assert pd.isna(ds.items.set_index("item_id").loc["D", "price"])


def test_every_rejected_row_is_counted_once(tmp_path: Path) -> None:
    rows = [*GOOD] + [b[0] for b in BAD]
    ds = load(tmp_path, rows)
    rep = ds.report.tables["interactions"]
    assert rep.accepted + rep.n_rejected == rep.received == len(rows)
    assert len(ds.report.quarantined()) == ds.report.n_rejected


def test_column_mapping(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text("customer,sku,when,kind\nu1,A,2025-10-03,purchase\n")
    (tmp_path / "items.csv").write_text(ITEMS)
    ds = load_dataset(
        tmp_path / "orders.csv",
        tmp_path / "items.csv",
        mapping={
            "interactions": {
                "customer": "user_id",
                "sku": "item_id",
                "when": "timestamp",
                "kind": "event",
            }
        },
        now=NOW,
    )
    assert ds.interactions[["user_id", "item_id"]].values.tolist() == [["u1", "A"]]
    # no users table: the conservative default is no consent, and the report says so
    assert not ds.users["consent_personalization"].any()
    assert any("no users table" in n for n in ds.report.notes)


def test_parquet_input(tmp_path: Path) -> None:
    paths = write(tmp_path, GOOD)
    for p in paths:
        pd.read_csv(p).to_parquet(p.with_suffix(".parquet"))
    ds = load_dataset(*(p.with_suffix(".parquet") for p in paths), now=NOW)
    assert ds.report.n_rejected == 0
    assert sorted(ds.interactions["user_id"]) == ["u1", "u2"]
