"""Compiled (numba) ordering of an item's reason templates; see :class:`~recsys.explain.reasons.GroupOrder`.

numpy ordered the templates of a request's ten items in some twenty passes over a ten-row
array, each costing more in call overhead than in arithmetic; compiled it is one loop per item,
with the same sums in the same order. Imported where reasons are first written (numba's loading
cost, see :mod:`recsys.features.kernels`).
"""

from __future__ import annotations

import numpy as np

from recsys.features.kernels import jit


@jit
def speaking_order(phi, members, order, counts):  # pragma: no cover - compiled
    """Per row of ``phi`` (items x features): into ``order[r]``, the templates with a positive
    attribution, largest total positive attribution first, ties by the template's first such
    feature; ``counts[r]`` of them. ``members[g]``: template ``g``'s feature indices in order,
    -1 pads. A total is the positive attributions added left to right from 0.0."""
    n_groups = members.shape[0]
    total = np.empty(n_groups)
    first = np.empty(n_groups, dtype=np.int64)
    for r in range(phi.shape[0]):
        c = 0
        for g in range(n_groups):
            t = 0.0
            f = -1
            for m in range(members.shape[1]):
                j = members[g, m]
                if j < 0:
                    break
                if phi[r, j] > 0:
                    t += phi[r, j]
                    if f < 0:
                        f = j
            if f < 0:
                continue
            # insertion: after every template that speaks before this one
            at = c
            while at > 0 and (total[at - 1] < t or (total[at - 1] == t and first[at - 1] > f)):
                total[at] = total[at - 1]
                first[at] = first[at - 1]
                order[r, at] = order[r, at - 1]
                at -= 1
            total[at] = t
            first[at] = f
            order[r, at] = g
            c += 1
        counts[r] = c
