"""Array views of minimized data that every stage shares: vocabularies, histories, the catalog."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.schema import CATEGORY_SEP, EVENTS
from recsys.features.stats import unique_ints

EVENT_CODE = {e: i for i, e in enumerate(EVENTS)}
EVENT_WEIGHT = np.array([1.0, 2.0, 4.0, 1.0])  # view, cart, purchase, rating: confidence in ALS
DAY = 86_400
SHORT = 256
"""Up to this many ids, :meth:`Vocabulary.index` looks each up in a dict (a request's ids)."""


class Vocabulary:
    """Maps external ids to dense indices and back."""

    def __init__(self, ids: np.ndarray | list[str]) -> None:
        self.ids = np.asarray(ids, dtype=object)
        self._index = pd.Index(self.ids)
        if not self._index.is_unique:
            raise ValueError("vocabulary ids must be unique")

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, ids: np.ndarray | list[str] | pd.Series) -> np.ndarray:
        """Indices of ``ids``; -1 where unknown."""
        if not len(ids):  # most requests exclude nothing: no index look-up for that
            return np.empty(0, dtype=np.intp)
        if len(ids) <= SHORT and not isinstance(ids, pd.Series):
            # a request's few ids (exclusions, a list's items): dict look-ups, no index call
            pos = self.positions
            return np.fromiter((pos.get(k, -1) for k in ids), dtype=np.intp, count=len(ids))
        if isinstance(ids, pd.Series) and len(ids) > 10_000:
            # an event column repeats few ids many times: look each distinct one up once
            codes, uniques = pd.factorize(ids, use_na_sentinel=False)
            found = self._index.get_indexer(np.asarray(uniques, dtype=object))
            return found[codes]
        return self._index.get_indexer(np.asarray(ids, dtype=object))

    def get(self, id_: str) -> int:
        """Index of one id; -1 if unknown (a dict lookup: this is on the request path)."""
        return self.positions.get(id_, -1)

    @cached_property
    def positions(self) -> dict[object, int]:
        """Id to index, for a request's few look-ups (built once; a warmed model has it)."""
        return {k: i for i, k in enumerate(self.ids.tolist())}


@dataclass(frozen=True)
class History:
    """Every user's events in time order, in CSR layout (``indptr`` over users)."""

    users: Vocabulary
    items: Vocabulary
    indptr: np.ndarray
    item: np.ndarray
    ts: np.ndarray
    """Unix seconds."""
    event: np.ndarray
    value: np.ndarray

    @classmethod
    def from_frame(cls, inter: pd.DataFrame, users: Vocabulary, items: Vocabulary) -> History:
        u = users.index(inter["user_id"])
        i = items.index(inter["item_id"])
        keep = (u >= 0) & (i >= 0)
        ts = inter["timestamp"].to_numpy(dtype="datetime64[s]").astype(np.int64)[keep]
        ev = inter["event"].map(EVENT_CODE).to_numpy(dtype=np.int8)[keep]
        val = (
            inter["value"].to_numpy(dtype=float)[keep]
            if "value" in inter
            else np.full(keep.sum(), np.nan)
        )
        u, i = u[keep], i[keep]
        order = np.lexsort((i, ts, u))
        indptr = np.zeros(len(users) + 1, dtype=np.int64)
        np.cumsum(np.bincount(u, minlength=len(users)), out=indptr[1:])
        return cls(users, items, indptr, i[order], ts[order], ev[order], val[order])

    def span(self, u: int) -> slice:
        return slice(int(self.indptr[u]), int(self.indptr[u + 1]))

    def user_of_event(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.users)), np.diff(self.indptr))

    def matrix(self) -> sp.csr_matrix:
        """User x item confidence: event weights summed (duplicates add up)."""
        w = EVENT_WEIGHT[self.event]
        m = sp.csr_matrix(
            (w.astype(np.float32), (self.user_of_event(), self.item)),
            shape=(len(self.users), len(self.items)),
        )
        m.sum_duplicates()
        return m

    @cached_property
    def events_present(self) -> frozenset[str]:
        return frozenset(EVENTS[c] for c in np.unique(self.event))


CATALOG_COLUMNS = frozenset(
    {"item_id", "title", "category", "brand", "price", "seller_id", "in_stock", "created_at"}
)


def attribute_array(s: pd.Series) -> np.ndarray:
    """An extra item column as float (numbers), bool (true/false) or text."""
    if pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=float)
    text = s.astype(object).where(s.notna(), "").astype(str).str.strip()
    num = pd.to_numeric(text.where(text != "", None), errors="coerce")
    if len(text) and (text != "").any() and not (num.isna() & (text != "")).any():
        return num.to_numpy(dtype=float)
    return text.to_numpy(dtype=object)


@dataclass(frozen=True)
class Catalog:
    """Item attributes as arrays indexed like the item vocabulary."""

    items: Vocabulary
    title: np.ndarray
    categories: tuple[str, ...]
    item_categories: sp.csr_matrix
    """Item x category 0/1 matrix (multi-valued categories)."""
    brand: np.ndarray | None
    price: np.ndarray | None
    seller: np.ndarray | None
    created: np.ndarray | None
    """Unix seconds, NaN where unknown."""
    in_stock: np.ndarray
    attributes: dict[str, np.ndarray] = field(default_factory=dict)
    """Every other item column the shop supplied and the policy allowed (numbers as float,
    true/false as bool, the rest as text): what filter expressions may also name."""

    @classmethod
    def from_frame(cls, items: pd.DataFrame) -> Catalog:
        vocab = Vocabulary(items["item_id"].to_numpy(dtype=object))
        lists = items["category"].astype(str).str.split(CATEGORY_SEP, regex=False)
        cats = sorted({c for cs in lists for c in cs if c})
        cidx = {c: k for k, c in enumerate(cats)}
        rows = np.repeat(np.arange(len(items)), lists.map(len).to_numpy())
        cols = np.array([cidx[c] for cs in lists for c in cs], dtype=np.int64)
        ic = sp.csr_matrix(
            (np.ones(len(cols), np.float32), (rows, cols)), shape=(len(items), len(cats))
        )
        ic.data[:] = 1.0
        created = None
        if "created_at" in items:
            c = items["created_at"]
            created = np.where(c.isna(), np.nan, c.to_numpy(dtype="datetime64[s]").astype(np.int64))
        brand = items["brand"].to_numpy(dtype=object) if "brand" in items else None
        if brand is not None and not (brand != "").any():
            brand = None
        price = items["price"].to_numpy(dtype=float) if "price" in items else None
        if price is not None and np.isnan(price).all():
            price = None
        stock = (
            items["in_stock"].to_numpy(dtype=bool)
            if "in_stock" in items
            else np.ones(len(items), bool)
        )
        seller = items["seller_id"].to_numpy(dtype=object) if "seller_id" in items else None
        if seller is not None and not (seller != "").any():
            seller = None
        title = items["title"].to_numpy(dtype=object)
        attrs = {
            c: attribute_array(items[c])
            for c in items.columns
            if c not in CATALOG_COLUMNS and not str(c).startswith("_")
        }
        return cls(vocab, title, tuple(cats), ic, brand, price, seller, created, stock, attrs)

    def to_frame(self) -> pd.DataFrame:
        """The catalogue as an items table (canonical columns, then the extra attributes)."""
        cats = [CATEGORY_SEP.join(self.categories_of(i)) for i in range(len(self.items))]
        df = pd.DataFrame({"item_id": self.items.ids, "title": self.title, "category": cats})
        for name, col in (("brand", self.brand), ("price", self.price), ("seller_id", self.seller)):
            if col is not None:
                df[name] = col
        df["in_stock"] = self.in_stock
        if self.created is not None:
            df["created_at"] = pd.to_datetime(self.created, unit="s", utc=True).as_unit("s")
        for name, col in self.attributes.items():
            df[name] = col
        return df

    @cached_property
    def category_codes(self) -> np.ndarray:
        """Items x (most categories of one item): category indices, padded with -1."""
        ic = self.item_categories
        per = np.diff(ic.indptr)
        out = np.full((len(per), max(int(per.max(initial=0)), 1)), -1, dtype=np.int64)
        rows = np.repeat(np.arange(len(per)), per)
        out[rows, np.arange(len(rows)) - np.repeat(ic.indptr[:-1], per)] = ic.indices
        return out

    @cached_property
    def product(self) -> np.ndarray:
        """Per item, its product: items that share a title are one product to a customer."""
        codes, _ = pd.factorize(pd.Series(self.title, dtype=object).str.strip().str.casefold())
        return codes.astype(np.int64)

    @cached_property
    def _product_items(self) -> sp.csr_matrix:
        n = len(self.product)
        return sp.csr_matrix(
            (np.ones(n, np.int8), (self.product, np.arange(n))),
            shape=(self.n_products, n),
        )

    @cached_property
    def id_rank(self) -> np.ndarray:
        """Per item, the rank of its id in text order: sorting by it sorts by ``ids.astype(str)``
        (ids are unique), without comparing strings on the request path."""
        order = np.argsort(self.items.ids.astype(str), kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return rank

    @cached_property
    def has_twin(self) -> np.ndarray:
        """Per item: does another item share its title?"""
        return np.bincount(self.product)[self.product] > 1

    @cached_property
    def any_twins(self) -> bool:
        """Do any two items share a title? (Asked on every request.)"""
        return bool(self.has_twin.any())

    @cached_property
    def n_products(self) -> int:
        """Distinct titles: ``product`` runs from 0 to this less one."""
        return int(self.product.max(initial=-1)) + 1

    def same_product(self, items: np.ndarray) -> np.ndarray:
        """Every item that is the same product as one of ``items`` (``items`` included)."""
        items = np.asarray(items, dtype=np.int64)
        return self.same_product_pairs(np.zeros(len(items), dtype=np.int64), items)[1]

    def same_product_pairs(
        self, owner: np.ndarray, items: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`same_product` for many owners' items at once: ``(owner, item)`` pairs, the
        given ones and, for each owner, every item that is the same product as one of theirs."""
        owner = np.asarray(owner, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        twin = self.has_twin[items]
        if not twin.any():
            return owner, items
        m = self._product_items
        n_products = m.shape[0]
        key = unique_ints(owner[twin] * n_products + self.product[items[twin]])
        who, product = key // n_products, key % n_products
        start = m.indptr[product].astype(np.int64)
        lens = m.indptr[product + 1].astype(np.int64) - start
        # each (owner, product)'s items, laid end to end: their positions in the CSR rows
        pos = np.repeat(start - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))
        more = m.indices[pos].astype(np.int64)
        return np.concatenate([owner, np.repeat(who, lens)]), np.concatenate([items, more])

    def exclude_products(self, mask: np.ndarray, owner: np.ndarray, items: np.ndarray) -> None:
        """``mask[owner[n], j] = False`` for every item ``j`` that is the same product as
        ``items[n]`` (itself included), in place: what :meth:`same_product_pairs` names, in one
        compiled pass over the owners' items (a request's seen items)."""
        from recsys.features import kernels  # numba loads on first use, not at import

        m = self._product_items
        kernels.clear_products(mask, owner, items, self.has_twin, self.product, m.indptr, m.indices)

    def category_counts(self, items: np.ndarray) -> np.ndarray:
        """How many of ``items`` are in each category (an item counts once per category)."""
        codes = self.category_codes[items].ravel()
        return np.bincount(codes[codes >= 0], minlength=len(self.categories)).astype(float)

    def categories_of(self, i: int) -> list[str]:
        row = self.item_categories.indices[
            self.item_categories.indptr[i] : self.item_categories.indptr[i + 1]
        ]
        return [self.categories[c] for c in row]
