"""The README's quick start, with the numbers it documents checked.

Run against an installed flatminima (``make wheel`` runs it in a fresh virtual
environment with only the built wheel installed); exits non-zero on a mismatch.
"""

from __future__ import annotations

import math
from importlib.metadata import version

import numpy as np

import flatminima as fm


def f(y):
    """The paper's Figure 1 function ``x2^2 + x1^2 x2^4``."""
    return y[1] ** 2 + y[0] ** 2 * y[1] ** 4


def main() -> None:
    r = 0.1
    res = fm.max_variation(f, [1.0, 0.0], r)
    expansion = r**2 + 1.0**2 * r**4  # V((a, 0), r) = r^2 + a^2 r^4 + O(r^8), a = 1
    assert abs(res.value - expansion) < 1e-7, res
    assert res.upper is None or res.upper >= res.value, res
    assert float(np.linalg.norm(res.argmax - np.array([1.0, 0.0]))) <= r * (1 + 1e-12), res

    dist = fm.level_distance(f, [1.0, 0.0], res.value)
    assert abs(dist.value - r) < 1e-6, dist  # the Galois connection: D(x, V(x, r)) = r

    verdict = fm.compare(f, [0.0, 0.0], [1.0, 0.0]).verdict
    assert verdict == "flatter", verdict

    quadratic = fm.Quadratic(np.diag([2.0, -1.0]), b=[1.0, 0.0])
    exact = fm.max_variation(quadratic, [0.0, 0.0], 0.5)
    assert exact.upper is not None and math.isclose(exact.value, 0.75, rel_tol=1e-12), exact
    assert exact.value <= exact.upper <= exact.value + 1e-10, exact

    print(f"quick start: V = {res.value:.10f} (r^2 + a^2 r^4 = {expansion:.4f}), "
          f"D = {dist.value:.9f}, (0, 0) {verdict} than (1, 0); flatminima "
          f"{version('flatminima')} from {fm.__file__}")


if __name__ == "__main__":
    main()
