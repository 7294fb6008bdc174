"""The two flatness measures: the maximal variation and its dual, the distance to the
neighbouring level set (SPEC sections 1 and 2)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._hessian import DENSE_HESSIAN_MAX_N, reuse_eigenvectors
from ._norms import make_norm
from ._objective import as_objective, check_scalar, check_seed
from ._results import DistanceResult, VariationResult, in_structure
from ._warn import warn
from ._x64 import float64
from .solvers import (
    Certified,
    ExactQuadratic,
    ProjectedAscent,
    SampledQuadratic,
    is_proven_quadratic,
    is_quadratic,
)


def _pick_solver(obj, x, radius, norm, solver):
    """The exact solver (with a proven upper bound) only for a declared :class:`Quadratic`
    or an f whose jaxpr is a polynomial of degree <= 2 and small enough for a dense
    Hessian; the quadratic model checked by ascent when only the sampled test says
    quadratic; projected ascent otherwise."""
    if isinstance(solver, str) and solver == "certified":
        return Certified()
    if solver is not None:
        if not hasattr(solver, "solve"):
            raise TypeError("solver must provide solve(obj, x, radius, norm, seed); "
                            "use flatminima.solvers.ExactQuadratic() or ProjectedAscent().")
        return solver
    if norm.kind != "l2":
        return ProjectedAscent()
    if obj.quadratic is not None:
        return ExactQuadratic()
    if obj.n > DENSE_HESSIAN_MAX_N:  # no dense Hessian: ascent, without an upper bound
        return ProjectedAscent()
    if is_proven_quadratic(obj, x):
        return ExactQuadratic()
    if is_quadratic(obj, x, radius):
        return SampledQuadratic()
    return ProjectedAscent()


def _gradient_at(obj, x):
    """``grad f(x)``, with a warning naming the cause when autodiff gives NaN or inf."""
    g = jax.grad(obj.fun)(x)
    if not bool(jnp.all(jnp.isfinite(g))):
        warn(
            "the gradient of f at x is NaN or infinite (autodiff through an operation not "
            "differentiable there, such as jnp.linalg.norm or jnp.sqrt at 0): the search "
            "uses only starts that do not depend on it. To restore them, write f without "
            "that operation (e.g. jnp.sum(y**2) for jnp.linalg.norm(y)**2).",
            RuntimeWarning)
    return g


def _check_finite(result, what):
    """Refuse to return a NaN (or, for V, an infinite) number."""
    value = result.value
    bad_value = np.isnan(value) or (what == "max_variation" and not np.isfinite(value))
    upper = getattr(result, "upper", None)
    if bad_value or (upper is not None and np.isnan(upper)):
        raise FloatingPointError(
            f"{what} computed a non-finite result (value {value}, upper {upper}) with "
            f"{result.method}: {result.message} Check that f is finite on the ball, or pass "
            f"another solver.")
    return result


@float64
def max_variation(
    f: Any,
    x: Any,
    r: float,
    *,
    norm: str = "l2",
    solver: Any = None,
    seed: int = 0,
    weights: Any = None,
    lipschitz: float | None = None,
    smoothness: float | None = None,
) -> VariationResult:
    """Maximal variation ``V(x, r) = max {f(y) : ||y - x|| <= r} - f(x)``.

    Args:
        f: JAX-traceable function of an array or pytree returning a scalar, or an object
            with a NumPy ``value_and_grad(x)`` method.
        x: the point (list, NumPy or JAX array, or pytree).
        r: radius of the ball, ``r >= 0``.
        norm: ``"l2"`` (default), ``"linf"`` or ``"weighted_l2"`` (``||u / w||_2``,
            ``w = weights`` or ``|x| + 1e-3`` when ``weights`` is None).
        solver: ``ExactQuadratic()`` or ``ProjectedAscent(...)``; by default exact, with a
            proven ``.upper``, when the ball is l2 and f is proven to be a quadratic (a
            :class:`Quadratic`, or a polynomial of degree <= 2 read from its jaxpr, with
            at most 400 coordinates); when only a sampled test says quadratic, the model's
            maximizer starts projected ascent and ``.upper`` is None.
        seed: seed of the random starts.
        lipschitz: a Lipschitz constant ``L`` of f on the ball (for this norm); gives the
            proven upper bound ``V <= L r``.
        smoothness: a Lipschitz constant ``L'`` of the gradient (dual norm); gives the
            proven upper bound ``V <= ||grad f(x)||_* r + L' r^2 / 2``.

    Returns:
        :class:`VariationResult`: ``.value`` is f at a feasible point minus ``f(x)`` (a
        lower bound), ``.upper`` a proven upper bound or None.

    Raises:
        ValueError: bad input, or ``smoothness=`` when autodiff gives a NaN gradient at x
            (a NaN gradient otherwise only warns: the starts built from it are skipped).
        FloatingPointError: the solver produced a NaN (never returned silently).

    Reference: C. Josz, On the geometry of flat minima, arXiv:2509.11386, 2025.

    >>> import jax.numpy as jnp
    >>> res = max_variation(lambda y: y[1] ** 2 + y[0] ** 2 * y[1] ** 4, [1.0, 0.0], 0.1)
    >>> round(res.value, 6)  # r^2 + a^2 r^4 + O(r^8) with a = 1, r = 0.1
    0.0101
    """
    seed = check_seed(seed)
    obj, xf = as_objective(f, x)
    radius = check_scalar(r, "r")
    nrm = make_norm(norm, xf, weights=weights)
    if radius == 0.0:
        return VariationResult(0.0, in_structure(obj.unravel, xf), 0.0, "trivial", 1, 0.0,
                               nrm.name, message="r = 0: the ball is the point itself.",
                               argmax_flat=np.asarray(xf))
    L = None if lipschitz is None else check_scalar(lipschitz, "lipschitz")
    Lg = None if smoothness is None else check_scalar(smoothness, "smoothness")
    g = _gradient_at(obj, xf)
    if Lg is not None and not bool(jnp.all(jnp.isfinite(g))):
        raise ValueError("smoothness= gives V <= ||grad f(x)||_* r + L' r^2 / 2, but the "
                         "gradient of f at x is NaN or infinite; pass lipschitz= instead, "
                         "or write f so that autodiff gives its gradient at x.")
    chosen = _pick_solver(obj, xf, radius, nrm, solver)
    result = chosen.solve(obj, xf, radius, nrm, seed)
    bounds = []
    if L is not None:
        bounds.append(L * radius)
    if Lg is not None:
        bounds.append(float(nrm.dual(g)) * radius + 0.5 * Lg * radius**2)
    if bounds:
        bound = min(bounds)
        if result.value > bound * (1 + 1e-12) + 1e-300:
            raise ValueError(
                f"the constant given is too small: a point of the ball has f(y) - f(x) = "
                f"{result.value:.6g} > {bound:.6g}; pass a valid Lipschitz/smoothness constant."
            )
        upper = bound if result.upper is None else min(bound, result.upper)
        result = replace(result, upper=upper)
    if result.nonfinite:
        warn(result.message, RuntimeWarning)
    flat_argmax = np.asarray(result.argmax)
    result = replace(result, argmax=in_structure(obj.unravel, flat_argmax), argmax_flat=flat_argmax)
    return _check_finite(result, "max_variation")


@float64
@reuse_eigenvectors()
def level_distance(
    f: Any,
    x: Any,
    delta: float,
    *,
    norm: str = "l2",
    solver: Any = None,
    seed: int = 0,
    weights: Any = None,
    max_radius: float | None = None,
    rtol: float = 1e-9,
) -> DistanceResult:
    """Distance to the neighbouring level set.

    ``D(x, delta) = inf {||y - x|| : f(y) >= f(x) + delta}``.

    Computed through the Galois connection ``V(x, r) >= delta <=> D(x, delta) <= r``
    (SPEC section 2): the radius is bracketed by doubling, then the bracket is narrowed
    (Illinois regula falsi on ``V(x, r) - delta``, bisection as fallback) to ``rtol``.
    ``.value`` is the distance of a point where ``f >= f(x) + delta`` (a proven upper
    bound on ``D``); ``inf`` when ``V(x, max_radius) < delta`` for the solver used.

    Args:
        delta: the rise of the level, ``delta > 0``.
        max_radius: largest radius searched (default ``1e3 (1 + ||x||)``).
        rtol: relative width of the final bracket on the radius.

    >>> res = level_distance(lambda y: y[0] ** 2 + 2 * y[1] ** 2, [0.0, 0.0], 0.02)
    >>> round(res.value, 8)  # sqrt(2 delta / lambda_max) = sqrt(0.04 / 4)
    0.1
    """
    seed = check_seed(seed)
    obj, xf = as_objective(f, x)
    dlt = check_scalar(delta, "delta", positive=True)
    rmax = (1e3 * (1.0 + float(jnp.linalg.norm(xf)))) if max_radius is None else check_scalar(
        max_radius, "max_radius", positive=True)
    nrm = make_norm(norm, xf, weights=weights)
    chosen = solver
    n_evals = 0
    history = []

    def V(radius):
        nonlocal chosen, n_evals
        if chosen is None:
            chosen = _pick_solver(obj, xf, radius, nrm, None)
        res = _check_finite(chosen.solve(obj, xf, radius, nrm, seed), "level_distance")
        n_evals += res.n_evals
        history.append((radius, res.value))
        return res

    # Initial guess from the local model: delta / ||g||_* or sqrt(2 delta / lambda).
    gd = float(nrm.dual(_gradient_at(obj, xf)))
    r_hi = min(dlt / gd if np.isfinite(gd) and gd > 0 else math.sqrt(dlt), rmax)
    res_hi = V(r_hi)
    r_lo, v_lo = 0.0, 0.0
    while res_hi.value < dlt:
        if r_hi >= rmax:
            return _check_finite(DistanceResult(
                math.inf, None, f"galois:{res_hi.method}", n_evals, dlt, (r_hi, math.inf),
                f"f(x) + delta not reached within max_radius = {rmax:g}.", tuple(history)),
                "level_distance")
        r_lo, v_lo = r_hi, res_hi.value
        r_hi = min(2.0 * r_hi, rmax)
        res_hi = V(r_hi)
    best = res_hi
    v_hi = res_hi.value
    side = 0
    for _ in range(200):
        if r_hi - r_lo <= rtol * r_hi:
            break
        t = (dlt - v_lo) / (v_hi - v_lo) if v_hi > v_lo else 0.5
        r_mid = r_lo + min(max(t, 0.01), 0.99) * (r_hi - r_lo)
        res = V(r_mid)
        if res.value >= dlt:
            r_hi, v_hi, best = r_mid, res.value, res
            if side == 1:
                v_lo = dlt - 0.5 * (dlt - v_lo)  # Illinois modification
            side = 1
        else:
            r_lo, v_lo = r_mid, res.value
            if side == -1:
                v_hi = dlt + 0.5 * (v_hi - dlt)
            side = -1
    point = np.asarray(best.argmax)
    dist = float(nrm(jnp.asarray(point) - xf))
    return _check_finite(DistanceResult(
        dist, in_structure(obj.unravel, point), f"galois:{best.method}", n_evals, dlt,
        (r_lo, r_hi), "level reached; value is the distance of a point on or above it.",
        tuple(history), point_flat=point), "level_distance")
