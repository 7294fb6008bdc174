"""Exact maximal variation of a quadratic over a Euclidean ball: a trust-region
subproblem, maximizing.

With ``d = y - x``, ``g = A x + b``, the problem ``max {g'd + 1/2 d'Ad : ||d|| <= r}``
is the trust-region subproblem ``min {1/2 d'(-A)d - g'd}``. Its global solutions are
characterised (More and Sorensen, SIAM J. Sci. Stat. Comput. 4, 1983) by
``(mu I - A) d = g``, ``mu >= max(lambda_1, 0)``, ``mu (r - ||d||) = 0``, with
``lambda_1`` the top eigenvalue of ``A``. We work in the eigenbasis
``A = Q diag(lambda) Q'``, ``beta = Q'g``; the branches below are named after the
cases of that characterisation. Weighted l2 balls become Euclidean in ``z = d / w``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np

from .._hessian import DENSE_HESSIAN_MAX_N, NonFiniteDerivative, dense_hessian
from .._norms import Norm, feasible_point
from .._objective import Array, Objective
from .._results import VariationResult
from ._ascent import ProjectedAscent
from ._structure import polynomial_degree

EPS = np.finfo(float).eps


def solve_trs_max(
    lam: np.ndarray, beta: np.ndarray, radius: float
) -> tuple[np.ndarray, float, str]:
    """Maximize ``beta'z + 1/2 sum(lam z^2)`` over ``||z|| <= radius`` (eigen-coordinates).

    ``lam`` is sorted in descending order. Returns the maximizer, the multiplier ``mu``
    of the characterisation and the case name.
    """
    n = lam.size
    lam1 = lam[0]
    scale = max(np.max(np.abs(lam)), 1.0)
    gnorm = np.linalg.norm(beta)
    top = np.abs(lam - lam1) <= 1e3 * EPS * scale  # the top eigenspace
    if gnorm == 0.0 and lam1 <= 0:
        return np.zeros(n), 0.0, "stationary_concave"
    # Interior case: A negative definite and the Newton point inside the ball (mu = 0).
    if lam1 < -1e3 * EPS * scale:
        z = -beta / lam
        if np.linalg.norm(z) <= radius:
            return z, 0.0, "interior"
    # Hard case: g orthogonal to the top eigenspace and the step at mu = lambda_1 short.
    beta_top = np.linalg.norm(beta[top])
    if lam1 >= 0 and beta_top <= 1e3 * EPS * max(gnorm, scale * radius):
        rest = ~top
        z = np.zeros(n)
        z[rest] = beta[rest] / (lam1 - lam[rest])
        short = radius**2 - z @ z
        if short >= 0:
            i = int(np.flatnonzero(top)[0])
            z[i] = np.sqrt(short)
            return z, float(lam1), "hard_case"
    # Easy case: find mu > max(lambda_1, 0) with ||z(mu)|| = r by safeguarded Newton on
    # the secular equation 1/||z(mu)|| - 1/r = 0 (nearly linear in mu).
    lo = max(lam1, 0.0)
    hi = lo + gnorm / radius
    mu = hi
    for _ in range(200):
        z = beta / (mu - lam)
        nz = np.linalg.norm(z)
        phi = 1.0 / nz - 1.0 / radius
        if phi > 0:
            hi = mu  # step too short: mu too large
        else:
            lo = mu
        if abs(phi) * radius <= 4 * EPS or hi - lo <= 4 * EPS * max(abs(hi), 1.0):
            break
        dphi = np.sum(z**2 / (mu - lam)) / nz**3  # d/dmu of 1/||z(mu)||
        newton = mu - phi / dphi
        mu = newton if lo < newton < hi else 0.5 * (lo + hi)
    z = beta / (mu - lam)
    # Near the hard case ||z(mu)|| varies fast with mu and the bracket can end with
    # ||z|| - r far above rounding; put z on the sphere through its top coordinate, the one
    # that varies fastest (its sign, that of beta_1, makes the model increase in |z_1|).
    rest = radius**2 - z[1:] @ z[1:]
    if rest >= 0:
        z[0] = (1.0 if beta[0] >= 0 else -1.0) * np.sqrt(rest)
    return z, float(mu), "boundary"


def dual_bound(lam: np.ndarray, beta: np.ndarray, radius: float, mu: float) -> float:
    """The Lagrangian dual bound of the maximization in :func:`solve_trs_max`.

    For every ``mu >= max(lambda_1, 0)`` and ``||z|| <= r``,
    ``beta'z + 1/2 z'Lam z <= beta'z + 1/2 z'Lam z + mu/2 (r^2 - ||z||^2)
    <= 1/2 sum beta_i^2 / (mu - lam_i) + mu r^2 / 2`` (the unconstrained maximum over z),
    with equality at the optimal ``mu`` (strong duality of the trust-region subproblem).
    The bound is valid whatever the accuracy of ``mu``. Terms with ``beta_i = 0`` vanish;
    ``inf`` when ``mu`` is not admissible (``mu < 0``, or ``mu <= lam_i`` with
    ``beta_i != 0``). Differences ``mu - lam_i`` have the right sign in floating point
    and the sum has nonnegative terms, so its rounding is at most ``(n + 4) eps``
    relative; the result is rounded up by twice that.
    """
    if not mu >= 0.0:
        return np.inf
    d = mu - lam
    live = beta != 0
    if np.any(d[live] <= 0) or np.any(d < 0):
        return np.inf
    total = 0.5 * np.sum(beta[live] ** 2 / d[live]) + 0.5 * mu * radius**2
    return float(total * (1.0 + 2.0 * (lam.size + 4) * EPS))


def trs_upper_bound(lam: np.ndarray, beta: np.ndarray, radius: float, mu: float) -> float:
    """Smallest :func:`dual_bound` over a few admissible multipliers near the computed one:
    ``mu`` itself, and for the hard case ``max(lambda_1, 0) + ||beta_top|| / r``, which
    makes the term of the (numerically nonzero) top components cost about
    ``||beta_top|| r``."""
    lo = max(float(lam[0]), 0.0)
    scale = max(np.max(np.abs(lam)), 1.0)
    top = np.abs(lam - lam[0]) <= 1e3 * EPS * scale
    beta_top = float(np.linalg.norm(beta[top]))
    candidates = [max(mu, lo), lo + beta_top / radius, np.nextafter(max(mu, lo), np.inf)]
    return min(dual_bound(lam, beta, radius, m) for m in candidates)


def is_quadratic(obj: Objective, x: Array, radius: float, *, seed: int = 0) -> bool:
    """Sampled test whether ``f`` looks like a quadratic: its Hessian agrees at ``x`` and
    a random second point, and ``f`` matches its second-order Taylor model along random
    directions at two scales (a cubic or higher term would show). Dense Hessians: small
    ``n`` only. It can be fooled (a kink the samples miss), so it only chooses a
    solver; bounds need :func:`is_proven_quadratic`."""
    if not obj.is_jax or obj.n > DENSE_HESSIAN_MAX_N:
        return False
    rng = np.random.default_rng(seed)
    try:
        H = np.asarray(dense_hessian(obj, x))
    except NonFiniteDerivative:
        return False
    f0, g0 = obj.value_and_grad(x)
    f0, g0 = float(f0), np.asarray(g0)
    if not (np.all(np.isfinite(H)) and np.all(np.isfinite(g0))):
        return False
    scale = max(float(radius), 1e-3) * (1.0 + float(np.linalg.norm(x)))
    x2 = x + jnp.asarray(rng.standard_normal(obj.n)) * scale
    try:
        H2 = np.asarray(dense_hessian(obj, x2))
    except NonFiniteDerivative:
        return False
    hnorm = max(np.linalg.norm(H), 1e-300)
    if not np.all(np.isfinite(H2)) or np.linalg.norm(H - H2) > 1e-9 * hnorm:
        return False
    for t in (scale, 10 * scale):
        d = rng.standard_normal(obj.n)
        d *= t / np.linalg.norm(d)
        model = f0 + g0 @ d + 0.5 * d @ H @ d
        actual = float(obj.fun(x + jnp.asarray(d)))
        size = abs(f0) + abs(g0 @ d) + abs(0.5 * d @ H @ d) + 1e-300
        if not np.isfinite(actual) or abs(actual - model) > 1e-9 * size:
            return False
    return True


def is_proven_quadratic(obj: Objective, x: Array) -> bool:
    """``f`` is a declared :class:`~flatminima.Quadratic`, or its jaxpr shows a polynomial
    of degree at most 2 (:func:`polynomial_degree`, exact)."""
    if obj.quadratic is not None:
        return True
    if not obj.is_jax:
        return False
    degree = polynomial_degree(obj.fun, x)
    return degree is not None and degree <= 2


@dataclass(frozen=True)
class _Model:
    """The quadratic model at x in ``z = (y - x) / w`` coordinates, solved."""

    z: np.ndarray  # the model's maximizer (z coordinates)
    top: np.ndarray  # rows: an orthonormal basis of the top eigenspace (z coordinates)
    case: str
    bound: float  # dual bound on the model's maximum, with the rounding slack
    f0: float
    n_hvp: int


def _solve_model(obj: Objective, x: Array, radius: float, norm: Norm) -> _Model:
    if norm.kind != "l2":  # weighted l2 is fine: Euclidean in z = d / w
        raise ValueError(
            "ExactQuadratic handles l2 and weighted l2 balls; for linf use ProjectedAscent."
        )
    if obj.quadratic is not None:
        A, n_hvp = obj.quadratic.A, 0
    else:
        A, n_hvp = np.asarray(dense_hessian(obj, x)), obj.n
    f0, g = jax.value_and_grad(obj.fun)(x)
    g = np.asarray(g)
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(g))):
        raise ValueError(
            "the Hessian or gradient of f at x is NaN or infinite (autodiff through a "
            "function not differentiable at x, such as jnp.linalg.norm or jnp.sqrt at 0), "
            "so the quadratic model is undefined; use ProjectedAscent(), or write f "
            "without that operation (e.g. jnp.sum(y**2) for jnp.linalg.norm(y)**2)."
        )
    n = obj.n
    w = np.ones(n) if norm.scale is None else np.asarray(norm.scale)
    Az = w[:, None] * A * w[None, :]
    gz = w * g
    lam, Q = np.linalg.eigh(Az)
    lam, Q = lam[::-1], Q[:, ::-1]
    beta = Q.T @ gz
    zt, mu, case = solve_trs_max(lam, beta, radius)
    # Rounding slack (Higham, Accuracy and Stability of Numerical Algorithms, 2002):
    # gamma = 2 (n + 2) eps bounds the relative error of the length-n inner products in
    # g = Ax + b and beta = Q'g, and the backward error ||E|| <= p(n) eps ||A|| of the
    # symmetric eigensolver (LAPACK's p(n) grows far slower than n in practice). The
    # computed eigenpairs are then exact for Az + E, so on the ball the true model
    # exceeds the computed one by at most ||E|| r^2 / 2 + (error of beta and g) r.
    gamma = 2.0 * (n + 2) * EPS
    a_norm = float(np.linalg.norm(A))
    g_err = gamma * (2.0 * a_norm * float(np.linalg.norm(x)) + float(np.linalg.norm(g)))
    slack = gamma * (float(np.linalg.norm(Az)) * radius**2 / 2
                     + float(np.linalg.norm(gz)) * radius) + float(np.max(w)) * g_err * radius
    bound = trs_upper_bound(lam, beta, radius, mu) + slack
    scale = max(np.max(np.abs(lam)), 1.0)
    top = np.abs(lam - lam[0]) <= 1e3 * EPS * scale
    return _Model(Q @ zt, Q[:, top].T, case, bound, float(f0), n_hvp)


@dataclass(frozen=True)
class ExactQuadratic:
    """Exact solver for quadratics over l2 or weighted l2 balls (dense eigendecomposition
    of the Hessian plus a safeguarded Newton solve of the secular equation; the hard
    case handled explicitly).

    ``value`` is ``f(argmax) - f(x)`` evaluated. ``upper`` is the Lagrangian dual bound
    (:func:`dual_bound`) plus a rounding slack, claimed only when f is proven to be a
    quadratic (:func:`is_proven_quadratic`); otherwise f is maximized through its
    quadratic model at x and ``upper`` is None.
    """

    def solve(self, obj: Objective, x: Array, radius: float, norm: Norm, seed: int = 0):
        model = _solve_model(obj, x, radius, norm)
        argmax = feasible_point(norm, x, model.z, radius)
        value = float(obj.fun(jnp.asarray(argmax))) - model.f0
        if not value > 0.0:  # x itself is feasible with variation 0
            argmax, value = np.asarray(x), 0.0
        case = model.case.replace("_", " ")
        if is_proven_quadratic(obj, x):
            # any number above a valid upper bound is one: cover the rounding of f itself
            upper, method = max(model.bound, value), f"exact_quadratic:{model.case}"
            message = f"trust-region subproblem solved exactly ({case}); upper: dual bound."
        else:
            upper, method = None, f"quadratic_model(unproven):{model.case}"
            message = (f"f is not proven to be a quadratic: value is f at the maximizer of "
                       f"its quadratic model at x ({case}), a lower bound; no upper bound.")
        return VariationResult(value=value, argmax=argmax, upper=upper, method=method,
                               n_evals=3, radius=radius, norm=norm.name, n_hvp=model.n_hvp,
                               message=message)


@dataclass(frozen=True)
class SampledQuadratic:
    """For an f that a sampled test (:func:`is_quadratic`) takes for a quadratic but that
    is not proven one: the maximizers of its quadratic model at x (the solution, and in
    the hard case up to 50 vectors of a basis of the top eigenspace, both signs) are
    extra starts of ``ascent``, and the best value of f found wins. ``upper`` is None."""

    ascent: ProjectedAscent = ProjectedAscent()

    def solve(self, obj: Objective, x: Array, radius: float, norm: Norm, seed: int = 0):
        model = _solve_model(obj, x, radius, norm)
        starts = [model.z]
        if model.case == "hard_case":
            starts += [s * radius * v for v in model.top[:50] for s in (1.0, -1.0)]
        res = self.ascent.solve(obj, x, radius, norm, seed, extra_starts=np.stack(starts))
        return replace(
            res, method="quadratic_model(sampled)+projected_ascent", n_hvp=res.n_hvp + model.n_hvp,
            message=("f passed a sampled quadratic test but is not proven quadratic: the "
                     "quadratic model's maximizers started projected ascent; " + res.message))
