"""The ``recsys`` command line: the only place that reads config files and writes reports."""

import os

# implicit and numpy run single-threaded BLAS: faster here, and results do not depend on threads
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
