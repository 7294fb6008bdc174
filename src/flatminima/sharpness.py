"""Classical sharpness measures, for side-by-side comparison (SPEC section 10).

Hessian measures are matrix-free above a size threshold: Lanczos (``_hessian``, with
breakdown handling and residual checks) for the top eigenvalue and for stochastic
Lanczos quadrature of the spectral density, Hutchinson's estimator (matfree) for the
trace, all on Hessian-vector products. Every value returned is checked finite: a NaN
from automatic differentiation is a ``ValueError`` naming its cause and fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from matfree import stochtrace
from scipy.linalg import eigh_tridiagonal
from scipy.special import gammaln

from ._hessian import (
    DENSE_HESSIAN_MAX_N,
    check_finite,
    dense_hessian,
    hessian_operator,
    lanczos,
    lanczos_top,
)
from ._norms import Norm
from ._objective import as_objective, check_scalar, check_seed
from ._report import result_type
from ._variation import max_variation
from ._warn import warn
from ._x64 import float64

__all__ = [
    "SharpnessResult",
    "VolumeResult",
    "adaptive_sharpness",
    "hessian_eigmax",
    "hessian_spectrum",
    "hessian_trace",
    "keskar_sharpness",
    "relative_sharpness",
    "sam_sharpness",
    "sublevel_volume",
]


@result_type("value")
@dataclass(frozen=True)
class SharpnessResult:
    """A sharpness value with the method used and its uncertainty: ``stderr`` is the
    standard error of a stochastic estimate or, for Lanczos, the Ritz residual
    ``||H v - value v||`` (an eigenvalue lies within it); ``interval`` a confidence
    interval; ``message`` says anything the value alone does not."""

    value: float
    method: str
    stderr: float | None = None
    interval: tuple[float, float] | None = None
    message: str = ""


def _checked(result: SharpnessResult) -> SharpnessResult:
    """``result`` if its value is finite, else a ``ValueError`` naming the NaN."""
    check_finite(result.value, f"the {result.method} sharpness value")
    return result


def _count(value: Any, name: str, least: int = 1) -> int:
    """A positive count argument (steps, samples), checked at the boundary."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}.")
    return int(value)


def _method(n: int, method: str) -> str:
    if method == "auto":
        return "dense" if n <= DENSE_HESSIAN_MAX_N else "lanczos"
    if method not in ("dense", "lanczos", "hutchinson"):
        raise ValueError(f"method must be 'auto', 'dense', 'lanczos' or 'hutchinson', got {method!r}.")
    return method


@float64
def hessian_eigmax(f: Any, x: Any, *, method: str = "auto", rtol: float = 1e-6,
                   num_matvecs: int = 60, max_matvecs: int = 640,
                   seed: int = 0) -> SharpnessResult:
    """Top eigenvalue ``lambda_max`` of the Hessian of ``f`` at ``x``.

    ``method="dense"`` (default for n <= 400): ``eigh`` of the Hessian. ``"lanczos"``:
    restarted Lanczos with full reorthogonalisation on Hessian-vector products
    (``num_matvecs`` steps a cycle, ``max_matvecs`` in all), stopped when the Ritz
    residual ``||H v - theta v||`` from a fresh product is below ``max(rtol |theta|,
    100 eps ||H||)`` (``eps`` of f's precision: no target below what f resolves). The
    residual reached is ``stderr``: an eigenvalue lies within it of ``value`` (for a
    symmetric H, a proven bound), so the default ``rtol = 1e-6`` gives the value to 1e-6
    relative (usually far better: the error is about residual^2 / gap); pass a smaller
    ``rtol`` to resolve finer differences, as a comparison of close points may need. A
    ``RuntimeWarning`` if the budget ends first; a ``ValueError`` if the Hessian has a NaN.

    Reference: Parlett, *The Symmetric Eigenvalue Problem* (1998), ch. 13.

    >>> hessian_eigmax(lambda y: y[1] ** 2 + y[0] ** 2 * y[1] ** 4, [3.0, 0.0]).value
    2.0
    """
    seed = check_seed(seed)
    obj, xf = as_objective(f, x)
    rtol = check_scalar(rtol, "rtol")
    num_matvecs = _count(num_matvecs, "num_matvecs")
    max_matvecs = _count(max_matvecs, "max_matvecs", least=2)
    m = _method(obj.n, method)
    if m == "dense":
        H = np.asarray(dense_hessian(obj, xf))
        return _checked(SharpnessResult(float(np.linalg.eigvalsh(H)[-1]), "dense"))
    top = lanczos_top(hessian_operator(obj, xf), num_matvecs=num_matvecs, rtol=rtol,
                      max_matvecs=max_matvecs, seed=seed)
    message = "" if top.converged else (
        f"residual {top.residual:.3g} above the tolerance {top.tolerance:.3g}")
    return _checked(SharpnessResult(top.value, f"lanczos({top.n_matvecs})",
                                    stderr=top.residual, message=message))


@float64
def hessian_trace(f: Any, x: Any, *, method: str = "auto", num_samples: int = 200,
                  seed: int = 0) -> SharpnessResult:
    """Trace of the Hessian: exact (dense) for small n, else Hutchinson's estimator
    ``mean_i z_i' H z_i`` over ``num_samples`` Rademacher probes (matfree), with its
    standard error. A ``ValueError`` if the Hessian has a NaN.

    Reference: Hutchinson, Commun. Stat. Simul. Comput. 18 (1989) 1059-1076.

    >>> hessian_trace(lambda y: y[1] ** 2 + y[0] ** 2 * y[1] ** 4, [3.0, 0.0]).value
    2.0
    """
    seed = check_seed(seed)
    obj, xf = as_objective(f, x)
    num_samples = _count(num_samples, "num_samples")
    m = _method(obj.n, method)
    if m == "dense":
        return _checked(SharpnessResult(float(jnp.trace(dense_hessian(obj, xf))), "dense"))
    integrand = stochtrace.monte_carlo_trace()
    sampler = stochtrace.sampler_signs(xf, num=num_samples)
    estimate = stochtrace.estimator_monte_carlo_mean_and_sem(integrand, sampler)
    mean, sem = estimate(hessian_operator(obj, xf).matvec, jax.random.PRNGKey(seed))
    check_finite(jnp.stack([mean, sem]), "the Hessian-vector product at x")
    return _checked(SharpnessResult(float(mean), f"hutchinson({num_samples})",
                                    stderr=float(sem)))


@float64
def hessian_spectrum(f: Any, x: Any, *, num_matvecs: int = 30, num_samples: int = 20,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Spectral density of the Hessian by stochastic Lanczos quadrature: returns
    ``(nodes, weights)`` of a discrete measure (weights sum to 1) that approximates the
    empirical eigenvalue distribution; smooth it for a density plot.

    Each of ``num_samples`` Rademacher probes ``z`` runs at most ``num_matvecs`` Lanczos
    steps and gives the Gauss rule of ``z' g(H) z / n``: nodes the eigenvalues of T,
    weights the squared first components of its eigenvectors. A probe stops at a
    breakdown, where its rule is exact; nodes always lie in ``[lambda_min, lambda_max]``.

    Reference: Ubaru, Chen and Saad, SIAM J. Matrix Anal. Appl. 38 (2017) 1075-1099.
    """
    seed = check_seed(seed)
    obj, xf = as_objective(f, x)
    num_matvecs = _count(num_matvecs, "num_matvecs")
    num_samples = _count(num_samples, "num_samples")
    op = hessian_operator(obj, xf)
    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    for _ in range(num_samples):
        probe = rng.choice([-1.0, 1.0], size=obj.n)
        kr = lanczos(op, probe, num_matvecs, rng, stop_at_breakdown=True)
        lam, U = eigh_tridiagonal(kr.alpha, kr.beta)
        nodes.append(lam)
        weights.append(U[0] ** 2 / num_samples)
    return np.concatenate(nodes), np.concatenate(weights)


@float64
def keskar_sharpness(f: Any, x: Any, eps: float = 1e-3, **kwargs) -> SharpnessResult:
    """Keskar et al. (2017): ``100 max_{|y_i - x_i| <= eps (|x_i| + 1)} (f(y) - f(x)) /
    (1 + f(x))``, maximized over the box by the library's ascent (a lower bound)."""
    eps = check_scalar(eps, "eps", positive=True)
    obj, xf = as_objective(f, x)
    box = Norm("linf", scale=eps * (jnp.abs(xf) + 1.0))
    res = max_variation(f, x, 1.0, norm=box, **kwargs)
    fx = float(obj.fun(xf))
    return _checked(SharpnessResult(100.0 * res.value / (1.0 + fx), "keskar:" + res.method))


@float64
def sam_sharpness(f: Any, x: Any, rho: float = 0.05, *, steps: int = 1,
                  seed: int = 0) -> SharpnessResult:
    """SAM sharpness: ``f(x + u_k) - f(x)`` after ``steps`` normalized ascent steps
    ``u_{t+1} = rho grad f(x + u_t) / ||grad f(x + u_t)||`` from ``u_0 = 0`` (a lower bound
    on ``V(x, rho)``). At a zero gradient the first direction is random (``seed``).
    A ``ValueError`` if a gradient is NaN (see ``_hessian.NAN_ADVICE``).

    Reference: Foret et al., Sharpness-Aware Minimization, ICLR 2021.

    >>> round(sam_sharpness(lambda y: y[0] ** 2 + 3 * y[1] ** 2, [1.0, 0.0], 0.1).value, 12)
    0.21
    """
    rho = check_scalar(rho, "rho", positive=True)
    steps = _count(steps, "steps")
    seed = check_seed(seed)
    obj, xf = as_objective(f, x)
    grad = jax.grad(obj.fun)
    u = jnp.zeros_like(xf)
    for t in range(steps):
        g = grad(xf + u)
        check_finite(g, "the gradient of f at x" if t == 0 else "the gradient of f at x + u")
        if float(jnp.linalg.norm(g)) == 0.0:
            g = jax.random.normal(jax.random.PRNGKey(seed), xf.shape)
        u = rho * g / jnp.linalg.norm(g)
    return _checked(SharpnessResult(float(obj.fun(xf + u) - obj.fun(xf)), f"sam({steps})"))


@float64
def adaptive_sharpness(f: Any, x: Any, rho: float = 0.05, *, eta: float = 1e-3,
                       **kwargs) -> SharpnessResult:
    """Adaptive sharpness: the maximal variation in the weighted norm
    ``||u / (|x| + eta)||_2`` at radius ``rho`` (a lower bound)."""
    eta = check_scalar(eta, "eta", positive=True)
    xf = as_objective(f, x)[1]
    res = max_variation(f, x, rho, norm="weighted_l2", weights=jnp.abs(xf) + eta, **kwargs)
    return _checked(SharpnessResult(res.value, "adaptive:" + res.method))


@float64
def relative_sharpness(f: Any, x: Any, r: float, **kwargs) -> SharpnessResult:
    """Dinh et al. (2017), for nonnegative f: ``max_{B(x, r)} (f(y) - f(x)) / (1 + f(x))``."""
    obj, xf = as_objective(f, x)
    res = max_variation(f, x, r, **kwargs)
    return _checked(SharpnessResult(res.value / (1.0 + float(obj.fun(xf))),
                                    "relative:" + res.method))


@result_type("value")
@dataclass(frozen=True)
class VolumeResult(SharpnessResult):
    """Sublevel-set volume, in log space so that no dimension under- or overflows.

    ``log_value`` is the natural log of the volume estimate and ``log_interval`` its 95%
    interval; ``fraction`` (with ``fraction_interval``) is the same as a fraction of the
    ball, what one compares between points at the same radius. ``value`` and
    ``interval`` are the volume itself (0.0 or inf when it leaves the float range:
    use the logs). ``stderr`` is the standard error of ``log_value``. When no sample
    falls inside, ``log_value`` is the log of the interval's upper end (the volume is
    positive but below it), and ``message`` says so.
    """

    log_value: float = 0.0
    log_interval: tuple[float, float] = (0.0, 0.0)
    fraction: float = 0.0
    fraction_interval: tuple[float, float] = (0.0, 0.0)
    num_inside: int = 0
    num_samples: int = 0


def _log(p: float) -> float:
    return math.log(p) if p > 0 else -math.inf


def _wilson(k: int, N: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / N``."""
    p = k / N
    denom = 1 + z**2 / N
    centre = (p + z**2 / (2 * N)) / denom
    half = z * math.sqrt(p * (1 - p) / N + z**2 / (4 * N**2)) / denom
    return max(centre - half, 0.0), min(centre + half, 1.0)


@float64
def sublevel_volume(f: Any, x: Any, delta: float, radius: float, *, num_samples: int = 4096,
                    seed: int = 0) -> VolumeResult:
    """Monte Carlo volume of ``S = {y in B(x, R) : f(y) <= f(x) + delta}`` (after
    Hochreiter and Schmidhuber, Neural Comput. 9 (1997) 1-42); larger is flatter.

    With ``p`` the fraction of ``num_samples`` uniform points of the ball ``B(x, R)``
    (``R = radius``) that fall in S, ``log vol(S) = log p + log vol(B)``, where
    ``log vol(B) = (n/2) log pi - log Gamma(n/2 + 1) + n log R``; the 95% interval is
    Wilson's score interval for ``p``. Returns a :class:`VolumeResult`; its ``log_value``
    is finite in any dimension.

    >>> res = sublevel_volume(lambda y: y @ y, [0.0] * 400, 0.2485, 0.5)
    >>> res.value, round(res.log_value, 1), round(res.fraction, 2)  # fraction 0.994^200
    (0.0, -912.7, 0.3)
    """
    delta = check_scalar(delta, "delta", positive=True)
    radius = check_scalar(radius, "radius", positive=True)
    num_samples = _count(num_samples, "num_samples")
    seed = check_seed(seed)
    obj, xf = as_objective(f, x)
    n = obj.n
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    u = jax.random.normal(k1, (num_samples, n))
    u = u / jnp.linalg.norm(u, axis=1, keepdims=True)
    s = jax.random.uniform(k2, (num_samples, 1)) ** (1.0 / n)
    values = jax.vmap(obj.fun)(xf + radius * s * u)
    inside = int(jnp.sum(values <= obj.fun(xf) + delta))
    p = inside / num_samples
    lo, hi = _wilson(inside, num_samples)
    log_ball = 0.5 * n * math.log(math.pi) - float(gammaln(0.5 * n + 1)) + n * math.log(radius)
    message = ""
    if inside == 0:
        p = hi
        message = (f"no sample of {num_samples} fell in the sublevel set: the volume is "
                   f"positive but below the 95% upper end, reported as log_value; use more "
                   "samples, a larger delta or a smaller radius for an estimate.")
        warn(message, RuntimeWarning)
    log_value, log_interval = _log(p) + log_ball, (_log(lo) + log_ball, _log(hi) + log_ball)
    with np.errstate(over="ignore", under="ignore"):
        value, interval = float(np.exp(log_value)), tuple(float(np.exp(t)) for t in log_interval)
    stderr = math.sqrt((1 - p) / (p * num_samples)) if inside else math.inf
    return VolumeResult(value, f"monte_carlo({num_samples})", stderr=stderr, interval=interval,
                        message=message, log_value=log_value, log_interval=log_interval,
                        fraction=p, fraction_interval=(lo, hi), num_inside=inside,
                        num_samples=num_samples)
