"""Flatness profiles and the order of flatness (SPEC section 3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._hessian import reuse_eigenvectors, top_eigenvalue
from ._norms import make_norm
from ._objective import as_objective, check_scalar, check_seed
from ._report import result_type
from ._results import in_structure
from ._variation import _pick_solver, level_distance
from ._x64 import float64


@result_type()
@dataclass(frozen=True)
class Profile:
    """The flatness profile ``r -> V(x, r)`` on radii shrinking to 0.

    ``values`` are lower bounds (f at feasible points); ``uppers`` proven upper bounds or
    NaN. ``order`` and ``coefficient`` describe ``V(x, r) = c r^alpha + o(r^alpha)``;
    ``basis`` says where they come from: ``"exact"`` (quadratic: closed form),
    ``"hessian"`` (critical point with ``lambda_max > 0``, confirmed by the profile),
    ``"gradient"`` (nonzero gradient, confirmed by the profile) or ``"fit"`` (a log-log
    fit of the smallest radii, with ``order_uncertainty``/``coefficient_uncertainty``).
    ``precision`` is the float type f is computed in (the coarsest of f's output and the
    point's leaves); every rounding-level threshold follows its ``eps``.
    ``n_evals`` counts the evaluations of f (with its gradient) and ``n_hvp`` the
    Hessian-vector products (a dense Hessian counts ``n``) spent on the whole profile.
    ``gradient_norm`` is ``||grad f(x)||_*`` (dual norm), the slope of the first-order
    term ``||grad f(x)||_* r`` of V; ``first_order`` whether f falls along
    ``-grad f(x)`` at the smallest radius by at least half of that term (x is not
    critical at the scale of the radii; False at a nonsmooth minimum, where autodiff
    returns one subgradient). ``point`` is x in the structure it was passed in.
    """

    radii: np.ndarray
    values: np.ndarray
    uppers: np.ndarray
    order: float
    coefficient: float
    order_uncertainty: float
    coefficient_uncertainty: float
    basis: str
    fx: float
    method: str
    n_evals: int
    precision: str = "float64"
    gradient_norm: float = 0.0
    first_order: bool = False
    point: Any = field(default=None, repr=False)
    n_hvp: int = 0

    @property
    def eps(self) -> float:
        """Machine epsilon of ``precision`` (``finfo.eps``: 2.2e-16 in float64, 1.2e-7 in
        float32; twice the unit roundoff 1.1e-16 and 6e-8)."""
        return float(jnp.finfo(jnp.dtype(self.precision)).eps)

    def local_orders(self) -> np.ndarray:
        """Slopes of ``log V`` against ``log r`` between consecutive radii."""
        return np.diff(np.log(self.values)) / np.diff(np.log(self.radii))


def default_radii(xf, n_radii: int = 9, r_max: float | None = None, decades: float = 2.5):
    """Geometric grid from ``r_max = 0.1 (1 + ||x||_inf)`` down ``decades`` decades."""
    if r_max is None:
        r_max = 0.1 * (1.0 + float(np.max(np.abs(np.asarray(xf)))))
    return r_max * np.logspace(0.0, -decades, n_radii)


def fit_order(radii, values, fx: float, tail: int = 4, eps: float = float(np.finfo(float).eps)):
    """Least-squares fit of ``log V = log c + alpha log r`` on the ``tail`` smallest radii
    whose values are above the rounding floor ``1e3 eps (1 + |f(x)|)`` (``eps`` of the
    precision f is computed in). Returns ``(alpha, c, d_alpha, d_c)`` where
    the uncertainties combine the fit's standard error and the drift of the local slopes
    (a leading term not yet dominant shows as drift)."""
    radii, values = np.asarray(radii), np.asarray(values)
    floor = 1e3 * eps * (1.0 + abs(fx))
    keep = values > floor
    r, v = radii[keep], values[keep]
    if r.size < 2:
        return float("nan"), float("nan"), float("inf"), float("inf")
    order = np.argsort(r)[: max(tail, 2)]
    lr, lv = np.log(r[order]), np.log(v[order])
    A = np.stack([lr, np.ones_like(lr)], axis=1)
    coef, *_ = np.linalg.lstsq(A, lv, rcond=None)
    alpha, logc = coef
    resid = lv - A @ coef
    dof = max(lr.size - 2, 1)
    cov = (resid @ resid / dof) * np.linalg.inv(A.T @ A)
    slopes = np.diff(lv) / np.diff(lr)
    drift = float(np.max(np.abs(slopes - alpha))) if slopes.size else 0.0
    d_alpha = float(2.0 * np.sqrt(max(cov[0, 0], 0.0)) + drift)
    # coefficient uncertainty: propagate d_alpha at the smallest radius
    c = float(np.exp(logc))
    d_c = float(c * (np.exp(d_alpha * abs(lr.min() - lr.mean())) - 1.0) + c * 2 * np.sqrt(
        max(cov[1, 1], 0.0)))
    return float(alpha), c, d_alpha, d_c


@float64
@reuse_eigenvectors()
def flatness_profile(
    f: Any,
    x: Any,
    radii: Any = None,
    *,
    norm: str = "l2",
    solver: Any = None,
    seed: int = 0,
    n_radii: int = 9,
) -> Profile:
    """The profile ``r -> V(x, r)`` and the order of flatness ``V ~ c r^alpha``.

    Args:
        radii: radii to evaluate (any order; sorted decreasing); default a geometric grid
            of ``n_radii`` radii from ``0.1 (1 + ||x||_inf)`` down 2.5 decades.

    >>> p = flatness_profile(lambda y: y[1] ** 2 + y[0] ** 2 * y[1] ** 4, [1.0, 0.0])
    >>> p.order, p.coefficient, p.basis
    (2.0, 1.0, 'hessian')
    """
    seed = check_seed(seed)
    obj, xf = as_objective(f, x)
    nrm = make_norm(norm, xf)
    if radii is None:
        radii = default_radii(xf, n_radii)
    radii = np.sort(np.asarray([check_scalar(r, "radii", positive=True)
                                for r in np.atleast_1d(radii)]))[::-1]
    chosen = _pick_solver(obj, xf, float(radii[0]), nrm, solver)
    results = [chosen.solve(obj, xf, float(r), nrm, seed) for r in radii]
    values = np.array([res.value for res in results])
    uppers = np.array([np.nan if res.upper is None else res.upper for res in results])
    n_evals = sum(res.n_evals for res in results) + 3  # f(x), grad f(x), the descent test
    n_hvp = sum(res.n_hvp for res in results)
    fx = float(obj.fun(xf))
    alpha, c, d_alpha, d_c = fit_order(radii, values, fx, eps=obj.eps)
    basis = "fit"
    g = jax.grad(obj.fun)(xf)
    gdual = float(nrm.dual(g))
    exact = results[0].method.startswith("exact_quadratic")
    # critical at rounding level: a minimizer computed in precision eps has a gradient of
    # about sqrt(eps) relative (f is flat to rounding within sqrt(eps) of it)
    gtol = np.sqrt(obj.eps) * (1.0 + abs(fx))
    # the closed forms are used only where the profile confirms them (f may be nonsmooth
    # at x, where autodiff returns one element of the subdifferential)
    confirms = lambda a, cc: abs(alpha - a) <= max(d_alpha, 0.05) and abs(c - cc) <= max(
        d_c, 1e-3 * abs(cc))
    if gdual > gtol and (exact or confirms(1.0, gdual)):
        alpha, c, d_alpha, d_c, basis = 1.0, gdual, 0.0, 0.0, "exact" if exact else "gradient"
    elif gdual <= gtol and nrm.kind == "l2" and nrm.scale is None:
        lam, spent = top_eigenvalue(obj, xf, seed=seed)
        n_hvp += spent
        if lam > 0 and (exact or confirms(2.0, lam / 2.0)):
            alpha, c, d_alpha, d_c, basis = 2.0, lam / 2.0, 0.0, 0.0, "exact" if exact else "hessian"
    return Profile(radii, values, uppers, alpha, c, d_alpha, d_c, basis, fx,
                   results[0].method, n_evals, obj.precision, gdual,
                   _descends(obj, xf, g, nrm, float(radii[-1]), fx),
                   in_structure(obj.unravel, xf), n_hvp)


def _descends(obj, xf, g, nrm, radius, fx) -> bool:
    """Whether f falls along ``-grad f(x)`` at ``radius`` by at least half the first-order
    prediction ``||g||_2^2 radius / ||g||``: the first-order term is real (False at a
    nonsmooth minimum, where autodiff returns one subgradient)."""
    size = float(nrm(g))
    if not size > 0:
        return False
    step = radius / size
    return float(obj.fun(xf - step * g)) - fx <= -0.5 * step * float(g @ g)


@float64
def distance_profile(f: Any, x: Any, deltas: Any, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """The dual profile ``delta -> D(x, delta)`` (upper bounds; see ``level_distance``)."""
    deltas = np.sort(np.atleast_1d(np.asarray(deltas, dtype=float)))[::-1]
    return deltas, np.array([level_distance(f, x, d, **kwargs).value for d in deltas])
