"""Issue #17: an override blocks an item on every path; pins say they are staff picks; caps
hold; "not interested" suppresses at the next call; a bad overrides file names what is wrong."""

from __future__ import annotations

from collections import Counter

import pytest

from recsys.audit import FeedbackStore, attach, not_interested
from recsys.batch.exposure import BatchExposure
from recsys.errors import ConfigError
from recsys.evaluation.baselines import PipelineSystem
from recsys.evaluation.overrides import override_effect
from recsys.rerank.overrides import BrandCap, Overrides, load_overrides, parse_overrides
from recsys.testing.stages import RerankerContract
from recsys.types import Stage


class TestOverridesStage(RerankerContract):
    stage = Overrides(caps=(BrandCap(brand="Raquin", max_share=0.2),))


def _most_shown(lists) -> str:
    return Counter(i for r in lists for i in r.item_ids).most_common(1)[0][0]


def test_an_override_blocks_an_item_on_every_path(shop_rec, customers, tmp_path) -> None:
    rec, _ = shop_rec
    before = rec.recommend_many(customers, 5)
    item = _most_shown(before)
    f = tmp_path / "overrides.toml"
    f.write_text(f'[[block]]\nitem = "{item}"\nnote = "recalled"\n')
    ov = load_overrides(f, rec.key_of)
    attach(rec, overrides=ov)
    try:
        shown_to = [r.user_id for r in before if item in r.item_ids]
        assert shown_to, "the blocked item was shown before"
        for u in shown_to[:5]:  # page views, with and without re-ranking
            assert item not in rec.recommend(u, 5).item_ids
            assert item not in rec.recommend(u, 5, rerank=False).item_ids
            assert item not in rec.recommend(u, 5, personalized=False).item_ids
        assert all(item not in r.item_ids for r in rec.recommend_many(customers, 5))
        batch = BatchExposure(rec).run(customers, k=5)  # the e-mail batch's own re-ranker
        assert all(item not in r.item_ids for r in batch.values())
    finally:
        attach(rec)
    assert item in rec.recommend(shown_to[0], 5).item_ids, "detached: the item is back"


def test_an_override_blocks_on_the_evaluation_path(small_shop, customers) -> None:
    from recsys.config import RecommenderConfig

    system = PipelineSystem(RecommenderConfig(), rerank=True)
    system.fit(small_shop.interactions, small_shop.items, small_shop.users)
    users = [u for u in customers if u not in system.unprofiled_users]
    before = system.recommend_lists(users, 5)
    item = _most_shown(before)
    ov = parse_overrides(f'[[block]]\nitem = "{item}"\n', system.model_.key_of)
    attach(system.model_, overrides=ov)
    after = system.recommend_lists(users, 5)
    assert all(item not in r.item_ids for r in after)
    effect = override_effect(before, after, ov.version)
    # every list that showed the item changed; re-ranking may change a few more (the item
    # was among the candidates their diversity and fairness stages weighed)
    assert effect["lists_changed"] >= sum(item in r.item_ids for r in before) > 0
    assert effect["lists_changed"] <= len(before)
    # lists keep their length: each item left out is replaced by one brought in
    assert [len(r) for r in after] == [len(r) for r in before]
    assert effect["items_added"] == effect["items_removed"] > 0


def test_pins_say_staff_pick_and_caps_hold(shop_rec, customers, small_shop) -> None:
    rec, _ = shop_rec
    before = rec.recommend_many(customers, 6)
    brands = small_shop.items.set_index("item_id")["brand"]
    top_brand = Counter(brands[i] for r in before for i in r.item_ids).most_common(1)[0][0]
    in_stock = small_shop.items[small_shop.items["in_stock"]]["item_id"]
    pick = next(i for i in in_stock if brands[i] != top_brand)
    ov = parse_overrides(
        f'[[pin]]\nitem = "{pick}"\nposition = 2\nreason = "our buyer\'s favourite"\n'
        f'[[cap]]\nbrand = "{top_brand}"\nmax_share = 0.2\n',
        rec.key_of,
    )
    attach(rec, overrides=ov)
    try:
        after = rec.recommend_many(customers, 6)
    finally:
        attach(rec)
    pinned = 0
    for r in after:
        assert len(r) == 6
        assert sum(brands[i] == top_brand for i in r.item_ids) <= 1  # int(0.2 * 6) = 1
        for x in r:
            if x.item_id == pick:
                pinned += 1
                assert x.rank == 2 and x.reason.stage == Stage.EDITORIAL
                assert x.reason.text == "Staff pick: our buyer's favourite"
            else:
                assert not x.reason.text.startswith("Staff pick"), "only pins are staff picks"
    assert pinned >= len(after) // 2
    assert any(sum(brands[i] == top_brand for i in r.item_ids) > 1 for r in before)


def test_a_category_block_for_a_segment_only(shop_rec, customers, small_shop) -> None:
    rec, _ = shop_rec
    before = rec.recommend_many(customers, 6)
    cats = small_shop.items.set_index("item_id")["category"]
    shown = Counter(cats[i].split(" > ")[0] for r in before for i in r.item_ids)
    top = shown.most_common(1)[0][0]
    members = [r.user_id for r in before if any(cats[i].startswith(top) for i in r.item_ids)]
    seg, other = members[:3], members[3:6]
    text = (f'[[block]]\ncategory = "{top}"\nsegment = "test"\n'
            f"[segments.test]\ncustomers = {seg!r}\n").replace("'", '"')  # fmt: skip
    attach(rec, overrides=parse_overrides(text, rec.key_of))
    try:
        for u in seg:
            assert not any(cats[i].startswith(top) for i in rec.recommend(u, 6).item_ids)
        assert any(any(cats[i].startswith(top) for i in rec.recommend(u, 6).item_ids)
                   for u in other)  # fmt: skip
    finally:
        attach(rec)


def test_not_interested_suppresses_at_the_next_call(shop_rec, customers, tmp_path) -> None:
    rec, _ = shop_rec
    fb = FeedbackStore(tmp_path / "state.sqlite")
    attach(rec, feedback=fb)
    try:
        user = next(u for u in customers if rec.recommend(u, 5).personalized)
        first = rec.recommend(user, 5)
        item = first.item_ids[0]
        not_interested(fb, rec.pseudonymizer, user, item_id=item)
        again = rec.recommend(user, 5)
        assert item not in again.item_ids and len(again) == 5
        cat = rec.model_.ctx.catalog
        c = cat.categories_of(cat.items.get(again.item_ids[0]))[0]
        not_interested(fb, rec.pseudonymizer, user, category=c)
        third = rec.recommend(user, 5)
        assert all(c not in cat.categories_of(cat.items.get(i)) for i in third.item_ids)
        other = next(u for u in customers if u != user and item in rec.recommend(u, 10).item_ids)
        assert item in rec.recommend(other, 10).item_ids, "only this customer's feedback"
        assert fb.records(rec.key_of(user))[0]["item_id"] == item
    finally:
        attach(rec)


@pytest.mark.parametrize(
    "text, says",
    [
        ('[[block]]\nitem = "I1"\ncategory = "Books"\n', "[[block]] 1: give exactly one"),
        ('[[block]]\ncategory = "Books"\nsegment = "vip"\n', "unknown segment 'vip'"),
        ('[[cap]]\nbrand = "A"\nmax_share = 2\n', "cap.0.max_share"),
        ('[[pin]]\nitem = "I1"\n', "pin.0.reason"),
        ("[[pin]\n", "not valid TOML"),
        ('[[blok]]\nitem = "I1"\n', "blok"),
    ],
)
def test_a_bad_overrides_file_names_the_problem(tmp_path, text: str, says: str) -> None:
    f = tmp_path / "overrides.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_overrides(f, str)
    assert str(f) in str(err.value) and says in str(err.value)


def test_the_version_is_the_file_hash() -> None:
    a = parse_overrides('[[block]]\nitem = "I1"\n', str)
    b = parse_overrides('[[block]]\nitem = "I2"\n', str)
    assert a.version != b.version and len(a.version) == 16
    assert a.version == parse_overrides('[[block]]\nitem = "I1"\n', str).version
