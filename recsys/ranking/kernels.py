"""Compiled (numba) evaluation of the additive ranker's step functions.

numpy evaluated the features one at a time (a ``searchsorted`` and a gather per feature, then a
pass for missing values): for a request's candidates, call overhead outweighed the work. Here
each value is one binary search in its feature's thresholds, the same search ``searchsorted``
makes, so the same contributions. Imported where the ranker first scores (numba's loading cost,
see :mod:`recsys.features.kernels`).
"""

from __future__ import annotations

import numpy as np

from recsys.features.kernels import jit


@jit
def step_values(X, t_all, t_start, v_all, v_start, missing, out):  # pragma: no cover - compiled
    """``out[r, j]``: feature ``j``'s step function at ``X[r, j]``: the value of the interval
    that the first threshold ``>= x`` closes (``searchsorted(side="left")``), ``missing[j]``
    for NaN. Feature ``j``'s thresholds are ``t_all[t_start[j]:t_start[j + 1]]``, its values
    start at ``v_start[j]``."""
    for r in range(X.shape[0]):
        for j in range(X.shape[1]):
            x = X[r, j]
            if np.isnan(x):
                out[r, j] = missing[j]
                continue
            lo = t_start[j]
            hi = t_start[j + 1]
            first = lo
            while lo < hi:
                mid = (lo + hi) >> 1
                if t_all[mid] < x:
                    lo = mid + 1
                else:
                    hi = mid
            out[r, j] = v_all[v_start[j] + lo - first]
