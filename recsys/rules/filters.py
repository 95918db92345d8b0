"""Filter expressions over item fields and the customer's history: parsed, never ``eval``-ed.

Grammar (keywords are lower case; strings in single or double quotes)::

    expr       := or
    or         := and ("or" and)*
    and        := unary ("and" unary)*
    unary      := "not" unary | atom
    atom       := "(" expr ")" | call | field [op value | ["not"] "in" list]
    op         := "==" | "!=" | "<" | "<=" | ">" | ">="
    value      := number | string | "true" | "false"
    list       := "[" [value ("," value)*] "]"
    call       := ("purchased_within" | "viewed_within" | "carted_within"
                   | "interacted_within" | "listed_within") "(" duration ")"
    duration   := number ("d" | "h" | "w")         e.g. 30d, 12h, 2w

A bare field (``in_stock``) is true where the field is true. ``category`` matches a whole path
(``"Grocery > Coffee"``), a leading part of it (``"Grocery"``) or its last level (``"Coffee"``).
A comparison with a missing value (no price) is false. History calls look back from the request
time: ``purchased_within(30d)`` is true for items the customer bought in the 30 days before it.
Parsing needs no catalogue; :meth:`Filter.bind` checks field names and value types against one,
and :meth:`BoundFilter.mask` evaluates a block of users at once (items x users, numpy).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from recsys.errors import ConfigError
from recsys.features.history import DAY, EVENT_CODE

if TYPE_CHECKING:
    from recsys.features.context import FeatureContext, UserState
    from recsys.features.history import Catalog

LEVEL_SEP = " > "
HISTORY_CALLS = {
    "purchased_within": ("purchase",),
    "viewed_within": ("view",),
    "carted_within": ("cart",),
    "interacted_within": ("view", "cart", "purchase", "rating"),
}
CALLS = (*HISTORY_CALLS, "listed_within")
UNITS = {"d": DAY, "h": 3_600, "w": 7 * DAY}
KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})
OPS = ("==", "!=", "<=", ">=", "<", ">")


class FilterError(ConfigError, ValueError):
    """A malformed or unbindable filter expression: names the bad token and its column."""

    def __init__(self, text: str, pos: int, message: str) -> None:
        self.text, self.column, self.reason = text, pos + 1, message
        super().__init__(f"filter {text!r} at column {pos + 1}: {message}")


# --- tokens ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Token:
    kind: str  # name, number, duration, string, op, punct, end
    text: str
    pos: int
    value: Any = None


_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<duration>\d+(?:\.\d+)?[dhw](?![A-Za-z0-9_]))
      | (?P<number>-?\d+(?:\.\d+)?(?![A-Za-z_]))
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>==|!=|<=|>=|<|>)
      | (?P<punct>[()\[\],])""",
    re.VERBOSE,
)


def tokenize(text: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            what = "an unterminated string" if ch in "\"'" else f"unexpected character {ch!r}"
            raise FilterError(text, pos, what)
        kind = m.lastgroup or ""
        tok = m.group()
        if kind == "duration":
            out.append(Token(kind, tok, pos, float(tok[:-1]) * UNITS[tok[-1]]))
        elif kind == "number":
            out.append(Token(kind, tok, pos, float(tok)))
        elif kind == "string":
            body = re.sub(r"\\(.)", r"\1", tok[1:-1])
            out.append(Token(kind, tok, pos, body))
        elif kind != "ws":
            out.append(Token(kind, tok, pos))
        pos = m.end()
    out.append(Token("end", "", len(text)))
    return out


# --- syntax tree -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    name: str
    pos: int


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str
    value: Any
    value_pos: int


@dataclass(frozen=True)
class In:
    field: Field
    values: tuple[Any, ...]
    value_pos: tuple[int, ...]
    negate: bool


@dataclass(frozen=True)
class Call:
    name: str
    seconds: float
    pos: int


@dataclass(frozen=True)
class Not:
    arg: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    args: tuple[Node, ...]


Node = Field | Compare | In | Call | Not | BoolOp


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def fail(self, expected: str, tok: Token | None = None) -> FilterError:
        tok = tok or self.tok
        got = "the end" if tok.kind == "end" else repr(tok.text)
        return FilterError(self.text, tok.pos, f"expected {expected}, got {got}")

    def is_kw(self, word: str) -> bool:
        return self.tok.kind == "name" and self.tok.text == word

    def take(self) -> Token:
        t = self.tok
        self.i += 1
        return t

    def expect(self, text: str, what: str | None = None) -> Token:
        if self.tok.text != text or self.tok.kind in ("string", "end"):
            raise self.fail(what or repr(text))
        return self.take()

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise FilterError(self.text, 0, "empty expression")
        node = self.or_()
        if self.tok.kind != "end":
            raise self.fail("'and', 'or' or the end of the expression")
        return node

    def or_(self) -> Node:
        args = [self.and_()]
        while self.is_kw("or"):
            self.take()
            args.append(self.and_())
        return args[0] if len(args) == 1 else BoolOp("or", tuple(args))

    def and_(self) -> Node:
        args = [self.unary()]
        while self.is_kw("and"):
            self.take()
            args.append(self.unary())
        return args[0] if len(args) == 1 else BoolOp("and", tuple(args))

    def unary(self) -> Node:
        if self.is_kw("not"):
            self.take()
            return Not(self.unary())
        return self.atom()

    def atom(self) -> Node:
        t = self.tok
        if t.kind == "punct" and t.text == "(":
            self.take()
            node = self.or_()
            self.expect(")", "')'")
            return node
        if t.kind != "name" or t.text in KEYWORDS:
            raise self.fail("a field name, a history call or '('")
        self.take()
        if t.text in CALLS:
            return self.call(t)
        if self.tok.kind == "punct" and self.tok.text == "(":
            raise FilterError(
                self.text, t.pos, f"unknown function {t.text!r}; known: {', '.join(CALLS)}"
            )
        field = Field(t.text, t.pos)
        if self.tok.kind == "op":
            op = self.take().text
            value, pos = self.value(op)
            return Compare(field, op, value, pos)
        negate = False
        if self.is_kw("not"):
            self.take()
            if not self.is_kw("in"):
                raise self.fail("'in' after 'not'")
            negate = True
        if self.is_kw("in"):
            self.take()
            values, positions = self.list_()
            return In(field, values, positions, negate)
        return field

    def call(self, name: Token) -> Call:
        self.expect("(", "'(' after " + name.text)
        d = self.tok
        if d.kind != "duration":
            raise self.fail("a duration such as 30d, 12h or 2w")
        self.take()
        self.expect(")", "')'")
        return Call(name.text, float(d.value), name.pos)

    def value(self, after: str) -> tuple[Any, int]:
        t = self.tok
        if t.kind in ("number", "string"):
            self.take()
            return t.value, t.pos
        if t.kind == "name" and t.text in ("true", "false"):
            self.take()
            return t.text == "true", t.pos
        if after in ("<", "<=", ">", ">="):
            raise self.fail("a number")
        raise self.fail(f"a number, a quoted string, true or false after {after!r}")

    def list_(self) -> tuple[tuple[Any, ...], tuple[int, ...]]:
        self.expect("[", '\'[\' (a list such as ["Coffee", "Tea"])')
        values, positions = [], []
        if not (self.tok.kind == "punct" and self.tok.text == "]"):
            while True:
                v, p = self.value("[" if not values else ",")
                values.append(v)
                positions.append(p)
                if self.tok.kind == "punct" and self.tok.text == ",":
                    self.take()
                    continue
                break
        self.expect("]", "',' or ']'")
        return tuple(values), tuple(positions)


# --- filters -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filter:
    """A parsed expression (syntax checked; fields are checked by :meth:`bind`)."""

    text: str
    tree: Node

    @property
    def uses_history(self) -> bool:
        return _uses_history(self.tree)

    def bind(self, catalog: Catalog) -> BoundFilter:
        """Check every field and value against ``catalog``'s columns."""
        fields = item_fields(catalog)
        _check(self.text, self.tree, fields)
        return BoundFilter(self, catalog)


@lru_cache(maxsize=1024)
def parse(text: str) -> Filter:
    """Parse a filter expression; a :class:`FilterError` names the bad token and its column."""
    if not isinstance(text, str):
        raise TypeError(f"a filter expression is a string, got {type(text).__name__}")
    return Filter(text, _Parser(text).parse())


def _uses_history(n: Node) -> bool:
    if isinstance(n, Call):
        return n.name in HISTORY_CALLS or n.name == "listed_within"
    if isinstance(n, Not):
        return _uses_history(n.arg)
    if isinstance(n, BoolOp):
        return any(_uses_history(a) for a in n.args)
    return False


def item_fields(catalog: Catalog) -> dict[str, str]:
    """Filterable item fields of ``catalog`` and their kind (``bool``, ``number``, ``text``,
    ``category``): the fixed columns it has and every extra attribute the policy let through."""
    out = {"item_id": "text", "title": "text", "category": "category", "in_stock": "bool"}
    for name, col in (("brand", catalog.brand), ("price", catalog.price)):
        if col is not None:
            out[name] = "number" if name == "price" else "text"
    if catalog.seller is not None:
        out["seller_id"] = "text"
    for name, col in catalog.attributes.items():
        out[name] = kind_of(col)
    return out


def kind_of(col: np.ndarray) -> str:
    if col.dtype == bool:
        return "bool"
    return "number" if np.issubdtype(col.dtype, np.number) else "text"


def _check(text: str, n: Node, fields: dict[str, str]) -> None:
    if isinstance(n, Not):
        _check(text, n.arg, fields)
    elif isinstance(n, BoolOp):
        for a in n.args:
            _check(text, a, fields)
    elif isinstance(n, Call):
        return  # a catalogue without listing dates has no item listed within any window
    else:
        f = n if isinstance(n, Field) else n.field
        kind = fields.get(f.name)
        if kind is None:
            raise FilterError(
                text, f.pos, f"unknown field {f.name!r}; fields: {', '.join(sorted(fields))}"
            )
        if isinstance(n, Field):
            if kind != "bool":
                raise FilterError(
                    text, f.pos, f"field {f.name!r} is not true/false: compare it (==, in ...)"
                )
        elif isinstance(n, Compare):
            _check_value(text, f.name, kind, n.value, n.value_pos)
            if kind in ("text", "category", "bool") and n.op not in ("==", "!="):
                raise FilterError(
                    text, f.pos, f"field {f.name!r} is {kind}: use ==, != or in, not {n.op}"
                )
        else:
            for v, p in zip(n.values, n.value_pos, strict=True):
                _check_value(text, f.name, kind, v, p)


def _check_value(text: str, name: str, kind: str, v: Any, pos: int) -> None:
    if kind == "number" and (isinstance(v, bool) or not isinstance(v, float)):
        raise FilterError(text, pos, "expected a number")
    if kind in ("text", "category") and not isinstance(v, str):
        raise FilterError(text, pos, f"expected a quoted string (field {name!r} is text)")
    if kind == "bool" and not isinstance(v, bool):
        raise FilterError(text, pos, "expected true or false")


@dataclass(frozen=True, eq=False)
class BoundFilter:
    """A filter checked against one catalogue; evaluates to items masks."""

    filter: Filter
    catalog: Catalog

    def mask(
        self, ctx: FeatureContext, states: Sequence[UserState | None], as_of: Sequence[int]
    ) -> np.ndarray:
        """Users x items: where the expression holds. A ``None`` state has no history (a list
        that is not personalized reads none)."""
        out = _eval(self.filter.tree, _Env(ctx, self.catalog, list(states), list(as_of)))
        return np.broadcast_to(out, (len(states), len(self.catalog.items)))


@dataclass
class _Env:
    ctx: FeatureContext
    cat: Catalog
    states: list[UserState | None]
    as_of: list[int]


def _eval(n: Node, env: _Env) -> np.ndarray:
    """A boolean array: items (no history involved) or users x items."""
    if isinstance(n, BoolOp):
        parts = [_eval(a, env) for a in n.args]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if n.op == "and" else (out | p)
        return out
    if isinstance(n, Not):
        return ~_eval(n.arg, env)
    if isinstance(n, Call):
        return _call(n, env)
    if isinstance(n, Field):
        return np.asarray(_column(env.cat, n.name), dtype=bool)
    if isinstance(n, In):
        hit = np.zeros(len(env.cat.items), dtype=bool)
        for v in n.values:
            hit |= _equals(env.cat, n.field.name, v)
        return ~hit if n.negate else hit
    if n.op == "==":
        return _equals(env.cat, n.field.name, n.value)
    if n.op == "!=":
        return ~_equals(env.cat, n.field.name, n.value)
    col = np.asarray(_column(env.cat, n.field.name), dtype=float)
    with np.errstate(invalid="ignore"):
        return {"<": col < n.value, "<=": col <= n.value, ">": col > n.value, ">=": col >= n.value}[
            n.op
        ]


def _column(cat: Catalog, name: str) -> np.ndarray:
    fixed = {
        "item_id": cat.items.ids,
        "title": cat.title,
        "in_stock": cat.in_stock,
        "brand": cat.brand,
        "price": cat.price,
        "seller_id": cat.seller,
    }
    col = fixed.get(name)
    return col if col is not None else cat.attributes[name]


def _equals(cat: Catalog, name: str, v: Any) -> np.ndarray:
    if name == "category":
        hit = np.array([category_matches(c, str(v)) for c in cat.categories], dtype=bool)
        if not len(hit):
            return np.zeros(len(cat.items), dtype=bool)
        return np.asarray(cat.item_categories[:, hit].sum(axis=1)).ravel() > 0
    col = _column(cat, name)
    if isinstance(v, float) and not isinstance(v, bool):
        return np.asarray(col, dtype=float) == v
    if isinstance(v, bool):
        return np.asarray(col, dtype=bool) == v
    return np.asarray(col, dtype=object).astype(str) == v


def category_matches(path: str, value: str) -> bool:
    """Does a filter's category ``value`` name ``path`` (whole, a leading part, its last level)?"""
    p, v = path.strip().casefold(), value.strip().casefold()
    return p == v or p.startswith(v + LEVEL_SEP.casefold()) or p.split(LEVEL_SEP)[-1] == v


def _call(n: Call, env: _Env) -> np.ndarray:
    n_items = len(env.cat.items)
    out = np.zeros((len(env.states), n_items), dtype=bool)
    as_of = np.asarray(env.as_of, dtype=np.int64)
    if n.name == "listed_within":
        created = env.cat.created
        if created is None:
            return out
        with np.errstate(invalid="ignore"):
            age = as_of[:, None] - created[None, :]
            return (age >= 0) & (age <= n.seconds)
    codes = {EVENT_CODE[e] for e in HISTORY_CALLS[n.name]}
    h = env.ctx.history
    for p, st in enumerate(env.states):
        if st is None:
            continue
        since = as_of[p] - n.seconds
        if codes == {EVENT_CODE["purchase"]}:
            items = [i for i, ts in st.last_purchase.items() if since <= ts <= as_of[p]]
            out[p, items] = True
            continue
        if st.u < 0:
            continue
        s = h.span(st.u)
        keep = np.isin(h.event[s], list(codes)) & (h.ts[s] >= since) & (h.ts[s] <= as_of[p])
        out[p, h.item[s][keep]] = True
    return out
