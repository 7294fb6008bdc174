"""The gallery: test functions with what is known exactly about them.

Each :class:`Example` carries the function, points with their known order and
coefficient of flatness (``V(x, r) = c r^alpha + o(r^alpha)``), and pairs of points with
their known germ-preorder verdict, all derived by hand in the docstrings below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np


def figure1(y):
    """The paper's Figure 1 function ``f(x1, x2) = x2^2 + x1^2 x2^4``.

    Minimizers: the line ``x2 = 0``. Hessian at ``(a, 0)``: ``diag(0, 2)`` for every a.
    ``V((a, 0), r) = r^2 + a^2 r^4 + O(r^8)``: ``(0, 0)`` is the unique flat minimum.

    >>> float(figure1([2.0, 1.0]))
    5.0
    """
    y = jnp.asarray(y)
    return y[1] ** 2 + y[0] ** 2 * y[1] ** 4


def quadratic_bowl(y):
    """``y1^2 + 3 y2^2``: at 0, ``V = 3 r^2`` (order 2, coefficient 3)."""
    return y[0] ** 2 + 3.0 * y[1] ** 2


def separable_sum(y):
    """``g(u) + h(v)`` with ``g(u) = u^4`` and ``h(v) = v^2``. At 0 the separable-sum
    rule gives ``max_s s^4 + (r^2 - s^2) = r^2`` for ``r < 1/sqrt(2)``: order 2, c = 1."""
    return y[0] ** 4 + y[1] ** 2


def pointwise_max(y):
    """``max(y1^2, 2 y2^2)``; the max rule at 0 gives ``max(r^2, 2 r^2) = 2 r^2``."""
    return jnp.maximum(y[0] ** 2, 2.0 * y[1] ** 2)


def abs_plus_square(y):
    """Nonsmooth: ``|y1| + y2^2``. At 0 and ``r < 1/2``, ``V = r`` (order 1): on the sphere
    ``|y1| + r^2 - y1^2`` increases in ``|y1| <= r``."""
    return jnp.abs(y[0]) + y[1] ** 2


def piecewise_linear_valley(y):
    """``max(|y1| - 1, 0) + |y2|``: minimizers the segment ``[-1, 1] x {0}``. Inside it,
    at ``(a, 0)`` with ``|a| + r <= 1``, ``V = r`` (order 1). At the endpoint ``(1, 0)``
    ``V = sqrt(2) r`` (the gradient (1, 1) of ``y1 - 1 + |y2|``): sharper than ``(0, 0)``."""
    return jnp.maximum(jnp.abs(y[0]) - 1.0, 0.0) + jnp.abs(y[1])


def product_square(y):
    """Degenerate: ``y1^2 y2^2``. At 0, ``V = max y1^2 y2^2 = r^4 / 4`` (order 4). At
    ``(a, 0)``, ``a != 0``, ``V = a^2 r^2 + O(r^3)`` (order 2): the origin is flatter."""
    return y[0] ** 2 * y[1] ** 2


def quartic(y):
    """``y^4`` in one variable: ``V(0, r) = r^4`` (order 4, coefficient 1)."""
    return y[0] ** 4


def double_well(y):
    """``min((y - 1)^2, 4 (y + 1)^2)`` with ``y`` one variable: minima at 1 (Hessian 2,
    ``V = r^2``) and -1 (Hessian 8, ``V = 4 r^2``, for ``r < 2/3``). The Hessian measures
    agree with the flatness preorder: 1 is flatter."""
    return jnp.minimum((y[0] - 1.0) ** 2, 4.0 * (y[0] + 1.0) ** 2)


_MF_M = np.outer([1.0, 2.0, 0.0, 2.0], [1.0, 1.0])  # rank 1, sigma_1 = 3 sqrt(2), m=4, n=2


def factorization_rank1(v):
    """``1/2 ||x y' - M||^2`` with ``x`` in R^4, ``y`` in R^2 (``v = (x, y)``), ``M`` rank 1.
    Global minimizers ``(c u sqrt(s), v sqrt(s) / c)``: balanced at ``c = 1`` (Hessian top
    eigenvalue ``2 s``), trace-flat at ``c = (m/n)^(1/4) = 2^(1/4)`` (smaller trace
    ``n||x||^2 + m||y||^2``, larger top eigenvalue ``s (c^2 + c^-2)``): SPEC section 9."""
    v = jnp.asarray(v)
    return 0.5 * jnp.sum((jnp.outer(v[:4], v[4:]) - _MF_M) ** 2)


def _mf_point(c):
    u, s, vt = np.linalg.svd(_MF_M)
    return tuple(float(t) for t in np.concatenate([c * u[:, 0] * np.sqrt(s[0]),
                                                   vt[0] * np.sqrt(s[0]) / c]))


@dataclass(frozen=True)
class Example:
    """A gallery function with known facts.

    ``orders``: ``(point, alpha, c)``; ``pairs``: ``(x, y, verdict of x relative to y)``;
    ``smooth``: whether Hessian measures apply at the listed points.
    """

    name: str
    f: Callable
    orders: list = field(default_factory=list)
    pairs: list = field(default_factory=list)
    smooth: bool = True
    note: str = ""


GALLERY = [
    Example("figure1", figure1,
            orders=[((1.0, 0.0), 2.0, 1.0), ((0.0, 0.0), 2.0, 1.0)],
            pairs=[((0.0, 0.0), (1.0, 0.0), "flatter"), ((2.0, 0.0), (1.0, 0.0), "sharper"),
                   ((1.0, 0.0), (-1.0, 0.0), "equivalent")],
            note="Hessian measures tie; flatness separates via a^2 r^4"),
    Example("quadratic_bowl", quadratic_bowl, orders=[((0.0, 0.0), 2.0, 3.0)]),
    Example("separable_sum", separable_sum, orders=[((0.0, 0.0), 2.0, 1.0)]),
    Example("pointwise_max", pointwise_max, orders=[((0.0, 0.0), 2.0, 2.0)], smooth=False),
    Example("abs_plus_square", abs_plus_square, orders=[((0.0, 0.0), 1.0, 1.0)], smooth=False),
    Example("piecewise_linear_valley", piecewise_linear_valley,
            orders=[((0.0, 0.0), 1.0, 1.0), ((1.0, 0.0), 1.0, float(np.sqrt(2.0)))],
            pairs=[((0.0, 0.0), (1.0, 0.0), "flatter"), ((0.0, 0.0), (0.5, 0.0), "equivalent")],
            smooth=False),
    Example("product_square", product_square,
            orders=[((0.0, 0.0), 4.0, 0.25), ((1.0, 0.0), 2.0, 1.0)],
            pairs=[((0.0, 0.0), (1.0, 0.0), "flatter")],
            note="order 4 at the origin: Hessian 0 there"),
    Example("quartic", quartic, orders=[((0.0,), 4.0, 1.0)]),
    Example("double_well", double_well, orders=[((1.0,), 2.0, 1.0), ((-1.0,), 2.0, 4.0)],
            pairs=[((1.0,), (-1.0,), "flatter")],
            note="Hessian measures agree with flatness"),
    Example("factorization_rank1", factorization_rank1,
            pairs=[(_mf_point(1.0), _mf_point(2.0 ** 0.25), "flatter")],
            note="balanced vs trace-flat minimizer: the trace prefers the wrong one"),
]


def _factorization(m, n, k, rho, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((m, rho)) @ rng.standard_normal((rho, n))
    f = lambda p: 0.5 * jnp.sum((p["X"] @ p["Y"].T - M) ** 2)
    return f, {"X": np.ones((m, k)), "Y": np.ones((n, k))}


def _rotated_invariant(seed=3):
    """g(z) = (z1^2 + z2^2)^2 + z3^4 composed with an invertible T: the algebra is
    ``T^{-1} (E12 - E21) T``, not visible in the coordinates."""
    rng = np.random.default_rng(seed)
    T = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    g = lambda z: (z[0] ** 2 + z[1] ** 2) ** 2 + z[2] ** 4
    return (lambda y: g(jnp.asarray(T) @ y)), T


#: (name, f, example point, search space, expected dimension of g_f)
SYMMETRY_GALLERY = [
    ("(xy - 1)^2", lambda z: (z[0] * z[1] - 1.0) ** 2, np.ones(2), "dense", 1),
    ("figure1", figure1, np.ones(2), "dense", 0),
    ("quartic composed with T", _rotated_invariant()[0], np.ones(3), "dense", 1),
    ("MF m=4 n=3 k=2 rank 2", *_factorization(4, 3, 2, 2), "dense", 5),
    ("MF m=5 n=4 k=2 rank 1", *_factorization(5, 4, 2, 1), "leaves", 4 + 6 + 3),
]
