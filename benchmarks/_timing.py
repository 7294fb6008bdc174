"""Timing shared by the benchmarks."""

from __future__ import annotations

import math
import time


def timed(fn, repeat=1):
    """Best wall time of ``repeat`` calls after one warm-up call (which compiles), and the
    last result."""
    out = fn()
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out
