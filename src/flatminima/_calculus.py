"""Calculus rules for the maximal variation (SPEC section 6): the exact identities as
operations on values and profiles.

A *profile* here is any callable ``r -> V(x, r)`` (for instance
``lambda r: max_variation(g, u, r).value``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize_scalar


def scaled_variation(variation: float, scale: float) -> float:
    """``V[lambda f](x, r) = lambda V[f](x, r)`` for ``lambda >= 0``.

    >>> scaled_variation(0.5, 3.0)
    1.5
    """
    if scale < 0:
        raise ValueError(f"scale = {scale} must be >= 0 (V[-f] is not determined by V[f]).")
    return scale * variation


def composed_variation(phi: Callable[[float], float], fx: float, variation: float) -> float:
    """Monotone composition: ``V[phi o f](x, r) = phi(f(x) + V[f](x, r)) - phi(f(x))`` for
    ``phi`` nondecreasing and continuous; ``fx = f(x)``.

    >>> composed_variation(lambda t: t ** 3, 1.0, 1.0)
    7.0
    """
    return float(phi(fx + variation) - phi(fx))


def max_of_variations(fx: float, vf: float, gx: float, vg: float) -> float:
    """Pointwise max: ``V[max(f, g)](x, r) = max(f(x) + V[f], g(x) + V[g]) - max(f(x), g(x))``.

    >>> max_of_variations(0.0, 1.0, 0.5, 0.2)
    0.5
    """
    return max(fx + vf, gx + vg) - max(fx, gx)


def separable_sum_variation(
    profile_g: Callable[[float], float],
    profile_h: Callable[[float], float],
    r: float,
    *,
    grid: int = 65,
) -> tuple[float, float]:
    """Separable sum with the Euclidean norm, ``f(u, v) = g(u) + h(v)``:

    ``V[f]((u, v), r) = max_{s in [0, r]} V[g](u, s) + V[h](v, sqrt(r^2 - s^2))``.

    The one-dimensional maximization is done on a uniform grid of ``grid`` points in the
    angle ``s = r cos(theta)``, then refined by a bounded scalar search around the best
    grid point. Returns ``(value, s_best)``; the value is attained (a lower bound that is
    exact when the profiles are).

    >>> value, s = separable_sum_variation(lambda s: s ** 2, lambda t: 2 * t ** 2, 1.0)
    >>> round(value, 12), round(s, 6)
    (2.0, 0.0)
    """
    if r < 0:
        raise ValueError(f"r = {r} is negative; pass a radius >= 0.")
    if r == 0:
        return float(profile_g(0.0) + profile_h(0.0)), 0.0
    phi = lambda theta: float(profile_g(r * np.cos(theta)) + profile_h(r * np.sin(theta)))
    thetas = np.linspace(0.0, np.pi / 2, grid)
    values = np.array([phi(t) for t in thetas])
    i = int(np.argmax(values))
    lo, hi = thetas[max(i - 1, 0)], thetas[min(i + 1, grid - 1)]
    res = minimize_scalar(lambda t: -phi(t), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-12})
    best_theta, best = (res.x, -res.fun) if -res.fun > values[i] else (thetas[i], values[i])
    return float(best), float(r * np.cos(best_theta))
