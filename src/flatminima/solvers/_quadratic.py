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

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from .._hessian import DENSE_HESSIAN_MAX_N, dense_hessian
from .._norms import Norm, feasible_point
from .._objective import Array, Objective
from .._results import VariationResult

EPS = np.finfo(float).eps


def _step_norm(beta: np.ndarray, lam: np.ndarray, mu: float) -> float:
    return float(np.linalg.norm(beta / (mu - lam)))


def solve_trs_max(lam: np.ndarray, beta: np.ndarray, radius: float) -> tuple[np.ndarray, str]:
    """Maximize ``beta'z + 1/2 sum(lam z^2)`` over ``||z|| <= radius`` (eigen-coordinates).

    ``lam`` is sorted in descending order. Returns the maximizer and the case name.
    """
    n = lam.size
    lam1 = lam[0]
    scale = max(np.max(np.abs(lam)), 1.0)
    gnorm = np.linalg.norm(beta)
    top = np.abs(lam - lam1) <= 1e3 * EPS * scale  # the top eigenspace
    if gnorm == 0.0 and lam1 <= 0:
        return np.zeros(n), "stationary_concave"
    # Interior case: A negative definite and the Newton point inside the ball.
    if lam1 < -1e3 * EPS * scale:
        z = -beta / lam
        if np.linalg.norm(z) <= radius:
            return z, "interior"
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
            return z, "hard_case"
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
    return z, "boundary"


def is_quadratic(obj: Objective, x: Array, radius: float, *, seed: int = 0) -> bool:
    """Test whether ``f`` is a quadratic: its Hessian agrees at ``x`` and a random second
    point, and ``f`` matches its second-order Taylor model along random directions at
    two scales (a cubic or higher term would show). Dense Hessians: small ``n`` only."""
    if not obj.is_jax or obj.n > DENSE_HESSIAN_MAX_N:
        return False
    rng = np.random.default_rng(seed)
    H = np.asarray(dense_hessian(obj, x))
    scale = max(float(radius), 1e-3) * (1.0 + float(np.linalg.norm(x)))
    x2 = x + jnp.asarray(rng.standard_normal(obj.n)) * scale
    H2 = np.asarray(dense_hessian(obj, x2))
    hnorm = max(np.linalg.norm(H), 1e-300)
    if not np.all(np.isfinite(H2)) or np.linalg.norm(H - H2) > 1e-9 * hnorm:
        return False
    f0, g0 = obj.value_and_grad(x)
    f0, g0 = float(f0), np.asarray(g0)
    for t in (scale, 10 * scale):
        d = rng.standard_normal(obj.n)
        d *= t / np.linalg.norm(d)
        model = f0 + g0 @ d + 0.5 * d @ H @ d
        actual = float(obj.fun(x + jnp.asarray(d)))
        size = abs(f0) + abs(g0 @ d) + abs(0.5 * d @ H @ d) + 1e-300
        if not np.isfinite(actual) or abs(actual - model) > 1e-9 * size:
            return False
    return True


@dataclass(frozen=True)
class ExactQuadratic:
    """Exact solver for quadratics over l2 or weighted l2 balls (dense eigendecomposition
    of the Hessian plus a safeguarded Newton solve of the secular equation; the hard
    case handled explicitly). ``upper`` equals ``value`` up to rounding."""

    def solve(self, obj: Objective, x: Array, radius: float, norm: Norm, seed: int = 0):
        if norm.kind != "l2":  # weighted l2 is fine: Euclidean in z = d / w
            raise ValueError(
                "ExactQuadratic handles l2 and weighted l2 balls; for linf use ProjectedAscent."
            )
        if obj.quadratic is not None:
            A = obj.quadratic.A
            n_hvp = 0
        else:
            A = np.asarray(dense_hessian(obj, x))
            n_hvp = obj.n
        f0, g = jax.value_and_grad(obj.fun)(x)
        g = np.asarray(g)
        w = np.ones(obj.n) if norm.scale is None else np.asarray(norm.scale)
        Az = w[:, None] * A * w[None, :]
        gz = w * g
        lam, Q = np.linalg.eigh(Az)
        lam, Q = lam[::-1], Q[:, ::-1]
        beta = Q.T @ gz
        zt, case = solve_trs_max(lam, beta, radius)
        model = float(beta @ zt + 0.5 * np.sum(lam * zt**2))
        argmax = feasible_point(norm, x, Q @ zt, radius)
        value_direct = float(obj.fun(jnp.asarray(argmax)) - f0)
        # The model value is the same quantity computed without cancellation against
        # f(x); it is used only when f itself confirms it at the returned point.
        agree = np.isclose(model, value_direct, rtol=1e-6, atol=1e-10 * (1 + abs(float(f0))))
        value = max(model if agree else value_direct, 0.0)
        slack = 1e2 * EPS * (abs(value) + np.sum(np.abs(beta * zt)) + np.sum(np.abs(lam) * zt**2))
        return VariationResult(
            value=value,
            argmax=argmax,
            upper=float(value + slack) if agree else None,
            method=f"exact_quadratic:{case}",
            n_evals=3,
            radius=radius,
            norm=norm.name,
            n_hvp=n_hvp,
            message=f"trust-region subproblem solved exactly ({case.replace('_', ' ')}).",
        )
