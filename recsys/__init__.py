"""recsys: an explainable, data-minimizing recommendation engine for online shops."""

from __future__ import annotations

__version__ = "0.1.0"
