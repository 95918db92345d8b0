"""Tables built on first use, built ahead of time instead (a model is warmed before it serves)."""

from __future__ import annotations

from functools import cached_property


def build_cached(obj: object) -> None:
    """Compute every ``functools.cached_property`` of ``obj`` that is not computed yet: the
    tables its class builds on first use, so the first request does not pay for them."""
    for klass in type(obj).__mro__:
        for name, attr in vars(klass).items():
            if isinstance(attr, cached_property) and name not in vars(obj):
                getattr(obj, name)
