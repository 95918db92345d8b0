from __future__ import annotations

from recsys.data import load_dir, load_movielens


def test_movielens_loads_exactly(ml100k_path) -> None:
    ds = load_movielens(ml100k_path)
    assert (len(ds.interactions), ds.n_users, ds.n_items, ds.report.n_rejected) == (
        100_000,
        943,
        1_682,
        0,
    )
    assert set(ds.interactions["event"]) == {"rating"}
    assert ds.interactions["value"].between(1, 5).all()
    toy_story = ds.items.set_index("item_id").loc["1"]
    assert toy_story["title"] == "Toy Story (1995)"
    assert toy_story["category"] == "Animation|Children's|Comedy"
    # demographics live only in the audit table
    assert {"gender", "age_band", "occupation", "region"} <= set(ds.audit.columns)
    for table in (ds.interactions, ds.items, ds.users):
        assert not {"gender", "age", "age_band", "occupation", "zip_code", "region"} & set(
            table.columns
        )


def test_load_dir_detects_movielens(ml100k_path) -> None:
    assert len(load_dir(ml100k_path).interactions) == 100_000
