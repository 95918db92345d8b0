"""A seeded, deterministic synthetic shop: the embedded default data for demos and tests.

What it models, and why:
- a two-level category tree with brands, log-normal prices and large and small sellers;
- power-law item popularity and users with a few favourite categories (latent tastes);
- sessions that go view -> cart -> purchase, with seasonality over the year;
- consumables that are bought again on a category-specific cycle;
- users who did not consent to personalization or to e-mail;
- a planted exposure bias: the shop's past ranking showed small sellers' items less often than
  their appeal warrants, so the fairness stage has something real to correct.

Users are generated in fixed-size chunks from per-chunk seeds and written as they are made, so
memory stays bounded at 1,000,000 users x 100,000 items and the output depends only on the
arguments, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys.data.schema import CATEGORY_PATH_SEP

START = pd.Timestamp("2025-11-01", tz="UTC")
END = pd.Timestamp("2026-11-01", tz="UTC")
CHUNK_USERS = 20_000
SMALL_SELLER_EXPOSURE = 0.35
"""Planted bias: a small seller's item is shown this fraction as often as its appeal warrants."""

# leaf category -> (product nouns, consumable repurchase cycle in days or 0, season peak month or 0)
CATALOG: dict[str, dict[str, tuple[tuple[str, ...], int, int]]] = {
    "Grocery": {
        "Coffee": (("Espresso Beans", "Ground Coffee", "Cold Brew Pack", "Decaf Beans"), 30, 0),
        "Tea": (("Green Tea", "Earl Grey", "Chai Blend", "Herbal Infusion"), 35, 1),
        "Snacks": (("Dark Chocolate", "Trail Mix", "Granola Bars", "Rice Crackers"), 14, 0),
    },
    "Home": {
        "Kitchen": (("Chef Knife", "Frying Pan", "Cutting Board", "Pour-Over Kettle"), 0, 0),
        "Decor": (("Scented Candle", "Throw Pillow", "Wall Print", "Table Lamp"), 0, 12),
        "Cleaning": (("Dish Soap", "Laundry Pods", "Surface Spray", "Sponges"), 40, 0),
    },
    "Beauty": {
        "Skincare": (("Face Cream", "Cleanser", "Sunscreen", "Serum"), 45, 6),
        "Haircare": (("Shampoo", "Conditioner", "Hair Oil", "Styling Gel"), 40, 0),
    },
    "Electronics": {
        "Audio": (("Headphones", "Bluetooth Speaker", "Earbuds", "Soundbar"), 0, 11),
        "Accessories": (("USB-C Cable", "Phone Case", "Power Bank", "Charger"), 0, 0),
    },
    "Books": {
        "Fiction": (("Mystery Novel", "Fantasy Saga", "Short Stories", "Thriller"), 0, 12),
        "Cooking": (("Baking Book", "Vegan Recipes", "Pasta Cookbook", "Spice Guide"), 0, 0),
    },
    "Sports": {
        "Running": (("Running Shoes", "Running Socks", "Water Bottle", "Sports Watch"), 0, 5),
        "Yoga": (("Yoga Mat", "Yoga Block", "Resistance Band", "Foam Roller"), 0, 1),
    },
    "Pets": {
        "Dog": (("Dog Food", "Chew Toy", "Dog Leash", "Dog Treats"), 28, 0),
        "Cat": (("Cat Food", "Cat Litter", "Scratching Post", "Cat Treats"), 28, 0),
    },
}
_SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ra",
    "ven",
    "tor",
    "sa",
    "li",
    "no",
    "ber",
    "ta",
    "quin",
    "do",
    "re",
)
_ADJECTIVES = ("Classic", "Premium", "Organic", "Everyday", "Pro", "Eco", "Deluxe", "Essential")


@dataclass(frozen=True)
class ShopSpec:
    """Size and seed of a synthetic shop."""

    n_users: int = 2_000
    n_items: int = 600
    seed: int = 42
    mean_sessions: float = 6.0


def _leaves() -> list[tuple[str, str, tuple[str, ...], int, int]]:
    return [
        (top, leaf, nouns, cycle, peak)
        for top, subs in CATALOG.items()
        for leaf, (nouns, cycle, peak) in subs.items()
    ]


def _brand_name(rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 4))
    return "".join(rng.choice(_SYLLABLES, size=n)).capitalize()


class _Catalog:
    """Items and the arrays the session simulator samples from."""

    def __init__(self, spec: ShopSpec) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0]))
        leaves = _leaves()
        n_leaf = len(leaves)
        self.leaf_names = [f"{top}{CATEGORY_PATH_SEP}{leaf}" for top, leaf, *_ in leaves]
        self.cycle = np.array([c for *_, c, _p in leaves], dtype=float)
        self.peak = np.array([p for *_, p in leaves], dtype=int)
        n = spec.n_items
        # categories: a few big, many smaller
        leaf_share = rng.dirichlet(np.full(n_leaf, 2.0))
        self.item_leaf = rng.choice(n_leaf, size=n, p=leaf_share)
        # brands per top category
        tops = list(CATALOG)
        top_of_leaf = np.array([tops.index(t) for t, *_ in leaves])
        brands = {t: sorted({_brand_name(rng) for _ in range(8)}) for t in tops}
        brand_idx = rng.integers(0, 1 << 30, size=n)
        self.brand = np.array(
            [brands[tops[top_of_leaf[j]]][b % len(brands[tops[top_of_leaf[j]]])]
             for j, b in zip(self.item_leaf, brand_idx, strict=True)],
            dtype=object,
        )  # fmt: skip
        nouns = [nn for _t, _lf, nn, _c, _p in leaves]
        adj = rng.integers(0, len(_ADJECTIVES), size=n)
        noun = rng.integers(0, 4, size=n)
        self.title = np.array(
            [f"{self.brand[i]} {_ADJECTIVES[adj[i]]} {nouns[self.item_leaf[i]][noun[i]]}"
             for i in range(n)],
            dtype=object,
        )  # fmt: skip
        base_price = np.exp(rng.normal(2.5, 0.6, size=n_leaf))
        self.price = np.round(base_price[self.item_leaf] * np.exp(rng.normal(0, 0.35, size=n)), 2)
        # sellers: 10% large sellers hold ~60% of items
        n_sellers = max(4, n // 25)
        n_large = max(1, n_sellers // 10)
        large = rng.random(n) < 0.6
        seller = np.where(
            large, rng.integers(0, n_large, size=n), rng.integers(n_large, n_sellers, size=n)
        )
        self.seller = np.array([f"S{s:05d}" for s in seller], dtype=object)
        self.small_seller = ~large
        self.in_stock = rng.random(n) > 0.06
        span = (END - START).total_seconds()
        created = START.timestamp() + rng.uniform(-2.0, 0.95, size=n) * span
        self.created = created.astype(np.int64)
        # appeal: power law; exposure: appeal damped for small sellers (the planted bias)
        self.appeal = rng.pareto(1.2, size=n) + 0.05
        self.exposure = self.appeal * np.where(self.small_seller, SMALL_SELLER_EXPOSURE, 1.0)
        self.exposure *= np.where(self.in_stock, 1.0, 0.2)
        self.items_of_leaf = [np.flatnonzero(self.item_leaf == j) for j in range(n_leaf)]
        self.leaf_cdf = []
        for idx in self.items_of_leaf:
            w = self.exposure[idx] if len(idx) else np.ones(0)
            self.leaf_cdf.append(np.cumsum(w) / w.sum() if len(idx) else w)
        self.global_cdf = np.cumsum(self.exposure) / self.exposure.sum()
        self.ids = np.array([f"I{i:06d}" for i in range(n)], dtype=object)

    def items_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "item_id": self.ids,
                "title": self.title,
                "category": np.array(self.leaf_names, dtype=object)[self.item_leaf],
                "brand": self.brand,
                "price": self.price,
                "seller_id": self.seller,
                "in_stock": self.in_stock,
                "created_at": pd.to_datetime(self.created, unit="s", utc=True).as_unit("s"),
            }
        )

    def sample_in_leaf(self, rng: np.random.Generator, leaf: np.ndarray) -> np.ndarray:
        out = np.empty(len(leaf), dtype=np.int64)
        for j in np.unique(leaf):
            sel = np.flatnonzero(leaf == j)
            cdf = self.leaf_cdf[j]
            if len(cdf) == 0:
                out[sel] = np.searchsorted(self.global_cdf, rng.random(len(sel)), side="right")
            else:
                pos = np.searchsorted(cdf, rng.random(len(sel)), side="right")
                out[sel] = self.items_of_leaf[j][np.minimum(pos, len(cdf) - 1)]
        return np.minimum(out, len(self.ids) - 1)


def _day_weights(cat: _Catalog) -> tuple[np.ndarray, np.ndarray]:
    """Per-day session weight (weekly and December peaks) and month of each day."""
    days = pd.date_range(START, END - pd.Timedelta(days=1), freq="D")
    w = 1.0 + 0.15 * (days.day_of_week >= 5) + 0.6 * (days.month == 12) + 0.2 * (days.month == 11)
    return np.asarray(w, dtype=float), np.asarray(days.month, dtype=int)


def _users_chunk(
    spec: ShopSpec, cat: _Catalog, chunk: int, lo: int, hi: int
) -> tuple[pd.DataFrame, ...]:
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 1, chunk]))
    n = hi - lo
    n_leaf = len(cat.leaf_names)
    uid = np.array([f"U{i:07d}" for i in range(lo, hi)], dtype=object)
    taste = rng.gamma(0.25, size=(n, n_leaf)) + 1e-9
    taste /= taste.sum(axis=1, keepdims=True)
    activity = rng.lognormal(0.0, 0.8, size=n)
    sessions = 1 + rng.poisson(spec.mean_sessions * activity / np.exp(0.32))
    consent_p = rng.random(n) > 0.08
    consent_e = rng.random(n) > 0.3
    span_s = int((END - START).total_seconds())
    signup = START.timestamp() + rng.uniform(-1.5, 0.0, size=n) * span_s
    users = pd.DataFrame(
        {
            "user_id": uid,
            "consent_personalization": consent_p,
            "consent_email": consent_e,
            "signup_at": pd.to_datetime(signup.astype(np.int64), unit="s", utc=True).as_unit("s"),
        }
    )
    audit = pd.DataFrame(
        {
            "user_id": uid,
            "gender": rng.choice(np.array(["female", "male", "diverse"], dtype=object), n, p=[0.52, 0.46, 0.02]),
            "age_band": rng.choice(np.array(["18-24", "25-34", "35-44", "45-54", "55+"], dtype=object), n),
            "region": rng.choice(np.array(["north", "south", "east", "west"], dtype=object), n),
        }
    )  # fmt: skip

    # sessions
    day_w, day_month = _day_weights(cat)
    s_user = np.repeat(np.arange(n), sessions)
    n_s = len(s_user)
    day = rng.choice(len(day_w), size=n_s, p=day_w / day_w.sum())
    s_start = START.timestamp() + day * 86400.0 + rng.uniform(6, 23, size=n_s) * 3600.0
    month = day_month[day]
    # category of a session: the user's taste, boosted for categories in season
    seasonal = np.where(cat.peak[None, :] == month[:, None], 2.5, 1.0)
    w = taste[s_user] * seasonal
    cdf = np.cumsum(w, axis=1)
    cdf /= cdf[:, -1:]
    s_leaf = np.minimum((cdf < rng.random(n_s)[:, None]).sum(axis=1), n_leaf - 1)
    # views per session
    n_views = 1 + rng.geometric(0.35, size=n_s)
    v_sess = np.repeat(np.arange(n_s), n_views)
    n_v = len(v_sess)
    v_leaf = s_leaf[v_sess]
    browse_elsewhere = rng.random(n_v) < 0.12
    item = cat.sample_in_leaf(rng, v_leaf)
    if browse_elsewhere.any():
        pos = np.searchsorted(cat.global_cdf, rng.random(int(browse_elsewhere.sum())), side="right")
        item[browse_elsewhere] = np.minimum(pos, len(cat.ids) - 1)
    offset = np.cumsum(rng.uniform(20, 240, size=n_v))
    first = np.r_[0, np.cumsum(n_views)[:-1]]
    offset -= np.repeat(offset[first] - rng.uniform(0, 30, size=n_s), n_views)
    v_time = s_start[v_sess] + offset
    # an item cannot be seen before it was listed
    listed = cat.created[item] < v_time
    v_sess, v_time, item = v_sess[listed], v_time[listed], item[listed]
    n_v = len(v_sess)
    # cart and purchase: appeal (not exposure) drives conversion, and the user's taste
    fit = taste[s_user[v_sess], cat.item_leaf[item]] * n_leaf
    p_cart = np.clip(0.03 + 0.03 * np.log1p(cat.appeal[item]) + 0.03 * np.minimum(fit, 3), 0, 0.5)
    p_cart *= cat.in_stock[item]
    carted = rng.random(n_v) < p_cart
    bought = carted & (rng.random(n_v) < 0.6)
    qty = np.where(carted, rng.integers(1, 4, size=n_v), 0)

    users_v = s_user[v_sess]
    frames = [
        (users_v, item, v_time, np.zeros(n_v, dtype=np.int8), np.full(n_v, np.nan)),
        (users_v[carted], item[carted], v_time[carted] + 30, np.ones(int(carted.sum()), np.int8),
         qty[carted].astype(float)),
        (users_v[bought], item[bought], v_time[bought] + 300, np.full(int(bought.sum()), 2, np.int8),
         qty[bought].astype(float)),
    ]  # fmt: skip
    # repeat purchases of consumables on the category's cycle
    r_user, r_item, r_time = users_v[bought], item[bought], v_time[bought] + 300
    end_s = END.timestamp() - 1
    for _ in range(6):
        cyc = cat.cycle[cat.item_leaf[r_item]]
        keep = (cyc > 0) & (rng.random(len(r_item)) < 0.55)
        r_user, r_item = r_user[keep], r_item[keep]
        r_time = (
            r_time[keep]
            + np.maximum(cyc[keep] * rng.normal(1.0, 0.2, size=int(keep.sum())), 3) * 86400
        )
        inside = r_time < end_s
        r_user, r_item, r_time = r_user[inside], r_item[inside], r_time[inside]
        if not len(r_user):
            break
        k = len(r_user)
        frames.append(
            (
                r_user,
                r_item,
                r_time,
                np.full(k, 2, np.int8),
                rng.integers(1, 3, size=k).astype(float),
            )
        )
    u = np.concatenate([f[0] for f in frames])
    it = np.concatenate([f[1] for f in frames])
    ts = np.minimum(np.concatenate([f[2] for f in frames]), end_s).astype(np.int64)
    ev = np.concatenate([f[3] for f in frames])
    val = np.concatenate([f[4] for f in frames])
    order = np.lexsort((ev, ts, u))
    events = np.array(["view", "cart", "purchase"], dtype=object)
    inter = pd.DataFrame(
        {
            "user_id": uid[u[order]],
            "item_id": cat.ids[it[order]],
            "timestamp": pd.to_datetime(ts[order], unit="s", utc=True).as_unit("s"),
            "event": events[ev[order]],
            "value": val[order],
        }
    ).drop_duplicates(ignore_index=True)
    return inter, users, audit


def generate(spec: ShopSpec) -> Iterator[tuple[str, pd.DataFrame]]:
    """Yield ``(table, frame)`` pieces: the items first, then users chunk by chunk."""
    cat = _Catalog(spec)
    yield "items", cat.items_frame()
    for chunk, lo in enumerate(range(0, spec.n_users, CHUNK_USERS)):
        hi = min(lo + CHUNK_USERS, spec.n_users)
        inter, users, audit = _users_chunk(spec, cat, chunk, lo, hi)
        yield "interactions", inter
        yield "users", users
        yield "audit", audit


def make_shop(spec: ShopSpec | None = None):  # -> Dataset (import cycle avoided)
    """The whole synthetic shop in memory, validated: the default data of demos and tests."""
    from recsys.data.loaders import load_dataset

    spec = spec or ShopSpec()
    parts: dict[str, list[pd.DataFrame]] = {}
    for name, df in generate(spec):
        parts.setdefault(name, []).append(df)
    tables = {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}
    return load_dataset(
        tables["interactions"],
        tables["items"],
        tables["users"],
        tables["audit"],
        now=END.to_pydatetime(),
    )


def write_shop(spec: ShopSpec, out: str | Path, *, fmt: str = "parquet") -> dict[str, int]:
    """Stream the shop to ``out`` chunk by chunk; returns rows written per table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    writers: dict[str, pq.ParquetWriter] = {}
    counts: dict[str, int] = {}
    try:
        for name, df in generate(spec):
            path = out / f"{name}.{fmt}"
            if fmt == "parquet":
                table = pa.Table.from_pandas(df, preserve_index=False)
                if name not in writers:
                    writers[name] = pq.ParquetWriter(path, table.schema)
                writers[name].write_table(table)
            else:
                df = df.copy()
                for c in df.columns:
                    if isinstance(df[c].dtype, pd.DatetimeTZDtype):
                        df[c] = df[c].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
                df.to_csv(
                    path,
                    mode="a" if name in counts else "w",
                    header=name not in counts,
                    index=False,
                )
            counts[name] = counts.get(name, 0) + len(df)
    finally:
        for w in writers.values():
            w.close()
    return counts
