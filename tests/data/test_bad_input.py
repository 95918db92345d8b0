"""The bad-input corpus (issue #10 item 5): every case is counted or refused, never silent or a
crash. Counted: a quarantine entry with file, row (the line an editor shows), column and reason.
Refused: exit code 2 and a message naming the file, row, column and what was expected."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from recsys.cli.main import main
from recsys.data import load_dataset
from recsys.data import loaders as loaders_mod
from recsys.data.loaders import load_mapped
from recsys.data.mapping import DataMapping
from recsys.errors import ConfigError, DataValidationError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HEADER = "user_id,item_id,timestamp,event,value"
ITEMS = "item_id,title,category,price,in_stock\nA,Espresso,Coffee,9.5,yes\nB,Tea,Tea,4,no\n"
USERS = "user_id,consent_personalization,consent_email\nu1,yes,yes\nu2,yes,no\n"
GOOD = ["u1,A,2025-10-03T10:00:00Z,purchase,1", "u2,B,1759485600,view,"]
SECONDS = 1759485600  # 2025-10-03T10:00:00Z


def write(tmp: Path, rows: list[str], *, items: str = ITEMS, users: str = USERS) -> list[Path]:
    (tmp / "i.csv").write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    (tmp / "items.csv").write_text(items)
    (tmp / "users.csv").write_text(users)
    return [tmp / "i.csv", tmp / "items.csv", tmp / "users.csv"]


def cli(*paths: Path, extra: tuple[str, ...] = ()) -> list[str]:
    names = ("--interactions", "--items", "--users")
    args = ["data", "validate"]
    for name, p in zip(names, paths, strict=False):
        args += [name, str(p)]
    return [*args, *extra]


# --- counted: one bad interactions row among good ones ----------------------------------------
COUNTED = [
    # (id, row, reason, column)
    ("milliseconds", f"u1,A,{SECONDS * 1000},view,", "timestamp_unit", "timestamp"),
    ("microseconds", f"u1,A,{SECONDS * 1_000_000},view,", "timestamp_unit", "timestamp"),
    ("nanoseconds", f"u1,A,{SECONDS * 1_000_000_000},view,", "timestamp_unit", "timestamp"),
    ("inf", "u1,A,inf,view,", "timestamp_out_of_range", "timestamp"),
    ("1e308", "u1,A,1e308,view,", "timestamp_out_of_range", "timestamp"),
    ("negative_epoch", "u1,A,-86400,view,", "early_timestamp", "timestamp"),
    ("before_1970_iso", "u1,A,1960-05-01T00:00:00Z,view,", "early_timestamp", "timestamp"),
    ("year_1", "u1,A,0001-01-01,view,", "early_timestamp", "timestamp"),
    ("rating_0", "u1,A,2025-10-03T11:00:00Z,rating,0", "rating_out_of_range", "value"),
    ("rating_11", "u1,A,2025-10-03T11:00:00Z,rating,11", "rating_out_of_range", "value"),
    ("value_inf", "u1,A,2025-10-03T11:00:00Z,purchase,inf", "bad_number", "value"),
]


@pytest.mark.parametrize(
    ("row", "reason", "column"), [c[1:] for c in COUNTED], ids=[c[0] for c in COUNTED]
)
def test_bad_row_is_counted_with_file_row_and_column(
    tmp_path: Path, row: str, reason: str, column: str
) -> None:
    ds = load_dataset(*write(tmp_path, [*GOOD, row]), now=NOW)
    t = ds.report.tables["interactions"]
    assert (t.received, t.accepted, dict(t.rejected)) == (3, 2, {reason: 1})
    q = ds.report.quarantined()
    assert q[["row", "column", "reason", "action"]].values.tolist() == [
        [4, column, reason, "rejected"]
    ]
    assert q["file"].iloc[0].endswith("i.csv") and q["expected"].iloc[0]


@pytest.mark.parametrize(
    ("row", "reason", "column"), [c[1:] for c in COUNTED], ids=[c[0] for c in COUNTED]
)
def test_bad_row_in_strict_mode_is_refused_clearly(
    tmp_path: Path, row: str, reason: str, column: str, capsys
) -> None:
    paths = write(tmp_path, [*GOOD, row])
    assert main(cli(*paths, extra=("--strict",))) == 2
    err = capsys.readouterr().err
    assert f"i.csv, row 4, column '{column}'" in err and "expected" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("unit", "factor", "word"),
    [
        ("ms", 1_000, "milliseconds"),
        ("us", 1_000_000, "microseconds"),
        ("ns", 10**9, "nanoseconds"),
    ],
)
def test_epoch_units_get_a_hint_and_can_be_declared(
    tmp_path: Path, unit: str, factor: int, word: str, capsys
) -> None:
    rows = [f"u1,A,{(SECONDS + i) * factor},view," for i in range(5)]
    paths = write(tmp_path, rows)
    ds = load_dataset(*paths, now=NOW)
    assert dict(ds.report.tables["interactions"].rejected) == {"timestamp_unit": 5}
    assert any(
        f"look like {word}" in n and f'timestamp_unit = "{unit}"' in n for n in ds.report.notes
    )
    # the whole table is lost: validate refuses with exit code 2 and says why
    assert main(cli(*paths)) == 2
    out = capsys.readouterr()
    assert f"look like {word} since the epoch; divide by {factor:,}" in out.out
    assert "interactions: 5 of 5 rows rejected" in out.err
    # declared in the mapping, the same file loads
    ds = load_dataset(
        *paths, mapping=DataMapping.from_dict({"interactions": {"timestamp_unit": unit}}), now=NOW
    )
    assert ds.report.n_rejected == 0
    assert ds.interactions["timestamp"].iloc[0] == pd.Timestamp(SECONDS, unit="s", tz="UTC")


def test_parquet_nanoseconds_and_inf_do_not_crash(tmp_path: Path) -> None:
    inter = pd.DataFrame(
        {"user_id": ["u1", "u1", "u2"], "item_id": ["A", "B", "A"],
         "timestamp": [SECONDS * 10**9, SECONDS, -1],
         "event": ["view"] * 3, "value": [1.0, float("inf"), 1.0]}
    )  # fmt: skip
    inter.to_parquet(tmp_path / "i.parquet")
    pd.read_csv(pd.io.common.StringIO(ITEMS)).to_parquet(tmp_path / "items.parquet")
    ds = load_dataset(tmp_path / "i.parquet", tmp_path / "items.parquet", now=NOW)
    assert dict(ds.report.tables["interactions"].rejected) == {
        "timestamp_unit": 1, "bad_number": 1, "early_timestamp": 1,
    }  # fmt: skip


def test_declared_rating_scale(tmp_path: Path) -> None:
    rows = ["u1,A,2025-10-03T11:00:00Z,rating,0", "u2,B,2025-10-03T11:00:00Z,rating,11"]
    paths = write(tmp_path, rows)
    m = DataMapping.from_dict({"interactions": {"rating_scale": [0, 10]}})
    ds = load_dataset(*paths, mapping=m, now=NOW)
    assert ds.interactions["value"].tolist() == [0.0]
    assert dict(ds.report.tables["interactions"].rejected) == {"rating_out_of_range": 1}


# --- optional cells, consent, cascades --------------------------------------------------------
def test_bad_optional_cells_empty_the_field_and_keep_the_item(tmp_path: Path) -> None:
    items = ITEMS + "C,Mug,Home,abc,maybe\n"
    rows = [*GOOD, "u1,C,2025-10-04T10:00:00Z,view,"]
    ds = load_dataset(*write(tmp_path, rows, items=items), now=NOW)
    item = ds.items.set_index("item_id").loc["C"]
    assert pd.isna(item["price"]) and not item["in_stock"]
    t = ds.report.tables["items"]
    assert t.n_rejected == 0 and dict(t.corrected) == {"bad_optional_value": 2}
    assert "C" in set(ds.interactions["item_id"])  # no cascade
    q = ds.report.quarantined()
    assert q[["row", "column", "value", "action"]].values.tolist() == [
        [4, "price", "abc", "nulled"], [4, "in_stock", "maybe", "nulled"],
    ]  # fmt: skip


def test_duplicate_users_keep_the_more_restrictive_consent(tmp_path: Path) -> None:
    users = USERS + "u1,no,yes\nu2,yes,no\nu2,yes,no\n"
    ds = load_dataset(*write(tmp_path, GOOD, users=users), now=NOW)
    u = ds.users.set_index("user_id")
    assert not u.loc["u1", "consent_personalization"] and u.loc["u1", "consent_email"]
    assert u.loc["u2", "consent_personalization"] and not u.loc["u2", "consent_email"]
    t = ds.report.tables["users"]
    assert dict(t.corrected) == {"consent_conflict": 1}  # u1 only: u2's rows agree
    assert dict(t.rejected) == {"duplicate_key": 3}


def test_rejected_items_cascade_is_reported_and_fails_validate(tmp_path: Path, capsys) -> None:
    items = ITEMS + "".join(f"X{i},,Home,1,yes\n" for i in range(3))  # no title: rejected
    rows = [*GOOD] + [f"u1,X{i % 3},2025-10-0{1 + i % 5}T10:00:00Z,view," for i in range(6)]
    paths = write(tmp_path, rows, items=items)
    ds = load_dataset(*paths, now=NOW)
    assert dict(ds.report.tables["interactions"].rejected) == {"rejected_item": 6}
    assert ds.report.cascade_text() == "6 interactions refer to 3 of the 3 rejected items"
    assert ds.report.over_threshold(0.05)[0].startswith("interactions: 6 of 8 rows rejected")
    assert main(cli(*paths)) == 2
    err = capsys.readouterr().err
    assert "6 interactions refer to 3 of the 3 rejected items" in err
    assert "items: 3 of 5 rows rejected" in err
    assert main(cli(*paths, extra=("--max-rejected", "0.8"))) == 0


# --- files ----------------------------------------------------------------------------------
def test_quoted_newlines_keep_editor_line_numbers(tmp_path: Path) -> None:
    items = (
        'item_id,title,category\nA,"Espresso\nbeans, dark",Coffee\nB,"Tea\n\nGreen",Tea\nC,,Home\n'
    )
    paths = write(tmp_path, GOOD, items=items)
    ds = load_dataset(*paths, now=NOW)
    q = ds.report.quarantined()
    assert q[["row", "column", "reason"]].values.tolist() == [[7, "title", "empty_value"]]
    with pytest.raises(DataValidationError, match=r"items\.csv, row 7, column 'title'"):
        load_dataset(*paths, now=NOW, strict=True)


def test_blank_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    paths = write(tmp_path, GOOD)
    paths[0].write_text(HEADER + "\n" + GOOD[0] + "\n\n" + "u1,ZZ,2025-10-03,view,\n")
    ds = load_dataset(*paths, now=NOW)
    assert ds.report.quarantined()["row"].tolist() == [4]
    assert any("1 blank line(s) skipped" in n for n in ds.report.notes)


def test_non_utf8_file_names_byte_line_and_hint(tmp_path: Path, capsys) -> None:
    paths = write(tmp_path, GOOD)
    paths[1].write_bytes(b"item_id,title,category\nA,Caf\xe9 Cr\xe8me,Coffee\nB,Tea,Tea\n")
    with pytest.raises(DataValidationError) as err:
        load_dataset(*paths, now=NOW)
    text = str(err.value)
    assert "items.csv, row 2" in text and "byte 28" in text and "Latin-1/cp1252" in text
    assert main(cli(*paths)) == 2
    assert "not valid utf-8" in capsys.readouterr().err
    mapping = tmp_path / "m.toml"
    mapping.write_text('[items]\nencoding = "cp1252"\n')
    assert main(cli(*paths, extra=("--mapping", str(mapping)))) == 0
    m = DataMapping.from_file(mapping)
    assert load_dataset(*paths, mapping=m, now=NOW).items["title"].iloc[0] == "Café Crème"


def test_mostly_garbage_file_stops_after_the_sample(tmp_path: Path, monkeypatch) -> None:
    rng = random.Random(0)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 ;:-"
    lines = [
        ",".join("".join(rng.choice(alphabet) for _ in range(8)) for _ in range(5))
        for _ in range(30_000)
    ]
    paths = write(tmp_path, lines)
    calls: list[int | None] = []
    real = loaders_mod.read_table

    def spy(path, mapping=None, **kw):
        if Path(path).name == "i.csv":
            calls.append(kw.get("nrows"))
        return real(path, mapping, **kw)

    monkeypatch.setattr(loaders_mod, "read_table", spy)
    with pytest.raises(DataValidationError) as err:
        load_dataset(*paths, now=NOW)
    assert "of the first 10,000 rows cannot be used" in str(err.value)
    assert "i.csv, row 2, column" in str(err.value)
    assert calls == [loaders_mod.SAMPLE_ROWS]  # the rest of the file was never parsed


def test_random_text_file_is_refused(tmp_path: Path, capsys) -> None:
    rng = random.Random(1)
    paths = write(tmp_path, GOOD)
    paths[0].write_text("".join(rng.choice("xyz \n\t;") for _ in range(200_000)))
    assert main(cli(*paths)) == 2
    err = capsys.readouterr().err
    assert "i.csv" in err and "Traceback" not in err


# --- mappings -------------------------------------------------------------------------------
def test_mapping_to_an_unknown_column_names_file_table_and_valid_names(
    tmp_path: Path, capsys
) -> None:
    m = tmp_path / "map.toml"
    m.write_text('[interactions]\ncustomer = "userid"\n')
    with pytest.raises(ConfigError) as err:
        DataMapping.from_file(m)
    text = str(err.value)
    assert str(m) in text and "[interactions]" in text and "'userid'" in text
    assert "user_id, item_id, timestamp, event, value" in text
    paths = write(tmp_path, GOOD)
    assert main(cli(*paths, extra=("--mapping", str(m)))) == 2
    assert "unknown column 'userid'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[interactions]]\nfile = "o.csv"\ntimezone = "Mars/Base"\n', "unknown time zone"),
        ('[[interactions]]\nfile = "o.csv"\ntimestamp_unit = "minutes"\n', "timestamp_unit"),
        (
            '[items]\nfile = "p.csv"\nrating_scale = [1, 5]\n',
            r"rating_scale applies to \[interactions\]",
        ),
        ('[orders]\nfile = "o.csv"\n', "unknown table"),
        ('[[interactions]]\nfile = "o.csv"\nfiel = "x"\n', "fiel"),
        ('[items]\nencoding = "klingon"\n', "unknown encoding"),
        ('[interactions]\nconstants = { kind = "view" }\n', "unknown column 'kind'"),
        ('[interactions]\nevents = { buy = "bought" }\n', "unknown event"),
    ],
)
def test_mapping_errors_name_the_mapping_file(tmp_path: Path, toml: str, message: str) -> None:
    m = tmp_path / "map.toml"
    m.write_text(toml)
    with pytest.raises(ConfigError, match=message) as err:
        DataMapping.from_file(m)
    assert str(m) in str(err.value)


EXAMPLE = """
[[interactions]]
file = "export/orders.csv"
columns = { customer = "user_id", sku = "item_id", ordered_at = "timestamp", qty = "value" }
constants = { event = "purchase" }
timestamp_unit = "ms"
timezone = "Europe/Berlin"

[[interactions]]
file = "export/pageviews.csv"
columns = { visitor = "user_id", product = "item_id", seen = "timestamp", kind = "event" }
events = { pageview = "view", basket = "cart" }
timestamp_unit = "iso"
timezone = "Europe/Berlin"

[items]
file = "export/products.csv"
columns = { sku = "item_id", name = "title", path = "category", price_eur = "price" }
category_separator = "/"
in_stock_from_quantity = "stock_qty"

[users]
file = "export/customers.csv"
columns = { customer = "user_id", opt_in = "consent_personalization", newsletter = "consent_email" }
true_values = ["J"]
false_values = ["N"]
"""


def write_export(tmp: Path) -> Path:
    d = tmp / "export"
    d.mkdir()
    (d / "orders.csv").write_text(
        f"customer,sku,ordered_at,qty\nc1,G1,{SECONDS * 1000},2\nc2,M9,{(SECONDS + 60) * 1000},1\n"
    )
    (d / "pageviews.csv").write_text(
        "visitor,product,seen,kind\n"
        "c1,G1,2025-10-03T12:00:00,pageview\n"  # Berlin summer time: 10:00 UTC
        "c2,G1,2025-10-03T12:05:00+00:00,basket\n"
        "c2,M9,2025-10-03T13:00:00,Pageview\n"
    )
    (d / "products.csv").write_text(
        "sku,name,path,price_eur,stock_qty\n"
        "G1,Burr Grinder,Kitchen/Coffee/Grinders,89.90,3\n"
        "M9,Mug,Kitchen/Cups|Gifts,7,0\n"
    )
    (d / "customers.csv").write_text("customer,opt_in,newsletter\nc1,J,N\nc2,N,N\n")
    m = tmp / "shop-mapping.toml"
    m.write_text(EXAMPLE)
    return m


def test_orders_and_page_views_from_one_mapping(tmp_path: Path, capsys, monkeypatch) -> None:
    m = write_export(tmp_path)
    ds = load_mapped(m, now=NOW)
    assert ds.report.n_rejected == 0, ds.report.to_text()
    inter = ds.interactions
    assert sorted(inter["event"]) == ["cart", "purchase", "purchase", "view", "view"]
    c1 = inter[inter["user_id"] == "c1"].set_index("event")["timestamp"]
    assert c1["purchase"] == c1["view"] == pd.Timestamp("2025-10-03T10:00:00Z")
    items = ds.items.set_index("item_id")
    assert items.loc["G1", "category"] == "Kitchen > Coffee > Grinders"
    assert items.loc["M9", "category"] == "Kitchen > Cups|Gifts"
    assert items["in_stock"].tolist() == [True, False]
    users = ds.users.set_index("user_id")
    assert users["consent_personalization"].tolist() == [True, False]
    assert not users["consent_email"].any()
    assert "orders.csv" in ds.report.tables["interactions"].file
    assert "pageviews.csv" in ds.report.tables["interactions"].file
    # --mapping alone is enough on the command line, from any directory
    monkeypatch.chdir(tmp_path / "export")
    assert main(["data", "validate", "--mapping", str(m)]) == 0
    assert "5 interactions, 2 users, 2 items, 0 rejected" in capsys.readouterr().out


def test_bad_rows_in_a_second_source_name_their_own_file(tmp_path: Path) -> None:
    m = write_export(tmp_path)
    with (tmp_path / "export" / "pageviews.csv").open("a") as f:
        f.write("c1,G1,2025-13-45T00:00:00,pageview\n")
    ds = load_mapped(m, now=NOW)
    q = ds.report.quarantined()
    assert q[["row", "column", "reason"]].values.tolist() == [[5, "timestamp", "bad_timestamp"]]
    assert q["file"].iloc[0].endswith("pageviews.csv")


def test_missing_source_column_names_the_mapping(tmp_path: Path) -> None:
    m = write_export(tmp_path)
    (tmp_path / "export" / "orders.csv").write_text("client,sku,ordered_at,qty\nc1,G1,1,1\n")
    with pytest.raises(DataValidationError, match=r"orders\.csv, column 'customer'.*shop-mapping"):
        load_mapped(m, now=NOW)


def test_legacy_mapping_form_still_works(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text("customer,sku,when,kind\nu1,A,2025-10-03,purchase\n")
    (tmp_path / "items.csv").write_text(ITEMS)
    m = tmp_path / "m.toml"
    m.write_text(
        '[interactions]\ncustomer = "user_id"\nsku = "item_id"\nwhen = "timestamp"\nkind = "event"\n'
    )
    ds = load_dataset(
        tmp_path / "orders.csv", tmp_path / "items.csv", mapping=DataMapping.from_file(m), now=NOW
    )
    assert ds.interactions[["user_id", "item_id"]].values.tolist() == [["u1", "A"]]


def test_ragged_line_names_its_line(tmp_path: Path) -> None:
    paths = write(tmp_path, [*GOOD, "u1,A,2025-10-03,view,1,surplus"])
    with pytest.raises(
        DataValidationError, match=r"i\.csv, row 4: the line has 6 fields, the header 5"
    ):
        load_dataset(*paths, now=NOW)


def test_binary_file_is_called_binary(tmp_path: Path) -> None:
    paths = write(tmp_path, GOOD)
    paths[0].write_bytes(random.Random(2).randbytes(100_000))
    with pytest.raises(DataValidationError, match="binary file"):
        load_dataset(*paths, now=NOW)
