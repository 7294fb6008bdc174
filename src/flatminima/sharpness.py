"""Classical sharpness measures, for side-by-side comparison (SPEC section 10).

Hessian measures are matrix-free above a size threshold: Lanczos for the top
eigenvalue, Hutchinson's estimator for the trace and stochastic Lanczos quadrature for
the spectral density, all from matfree, on Hessian-vector products.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from matfree import decomp, stochtrace

from ._hessian import DENSE_HESSIAN_MAX_N, dense_hessian, lanczos_top
from ._norms import Norm
from ._objective import as_objective, check_scalar
from ._variation import max_variation

__all__ = [
    "SharpnessResult",
    "adaptive_sharpness",
    "hessian_eigmax",
    "hessian_spectrum",
    "hessian_trace",
    "keskar_sharpness",
    "relative_sharpness",
    "sam_sharpness",
    "sublevel_volume",
]


@dataclass(frozen=True)
class SharpnessResult:
    """A sharpness value with the method used and its uncertainty: ``stderr`` is the
    standard error of a stochastic estimate or, for Lanczos, the Ritz residual (an
    eigenvalue lies within it); ``interval`` a confidence interval."""

    value: float
    method: str
    stderr: float | None = None
    interval: tuple[float, float] | None = None


def _method(n: int, method: str) -> str:
    if method == "auto":
        return "dense" if n <= DENSE_HESSIAN_MAX_N else "lanczos"
    if method not in ("dense", "lanczos", "hutchinson"):
        raise ValueError(f"method must be 'auto', 'dense', 'lanczos' or 'hutchinson', got {method!r}.")
    return method


def hessian_eigmax(f: Any, x: Any, *, method: str = "auto", num_matvecs: int = 60,
                   seed: int = 0) -> SharpnessResult:
    """Top eigenvalue of the Hessian: dense ``eigh`` for small n, else Lanczos with full
    reorthogonalisation on Hessian-vector products (``num_matvecs`` steps, doubled until
    the Ritz residual, reported as ``stderr``, is below 1e-10 relative).

    >>> hessian_eigmax(lambda y: y[1] ** 2 + y[0] ** 2 * y[1] ** 4, [3.0, 0.0]).value
    2.0
    """
    obj, xf = as_objective(f, x)
    m = _method(obj.n, method)
    if m == "dense":
        return SharpnessResult(float(np.linalg.eigvalsh(np.asarray(dense_hessian(obj, xf)))[-1]),
                               "dense")
    theta, residual, steps = lanczos_top(lambda v: obj.hvp(xf, v), obj.n,
                                         num_matvecs=num_matvecs, seed=seed)
    return SharpnessResult(theta, f"lanczos({steps})", stderr=residual)


def hessian_trace(f: Any, x: Any, *, method: str = "auto", num_samples: int = 200,
                  seed: int = 0) -> SharpnessResult:
    """Trace of the Hessian: exact (dense) for small n, else Hutchinson's estimator with
    Rademacher probes (matfree), with its standard error.

    >>> hessian_trace(lambda y: y[1] ** 2 + y[0] ** 2 * y[1] ** 4, [3.0, 0.0]).value
    2.0
    """
    obj, xf = as_objective(f, x)
    m = _method(obj.n, method)
    if m == "dense":
        return SharpnessResult(float(jnp.trace(dense_hessian(obj, xf))), "dense")
    integrand = stochtrace.monte_carlo_trace()
    sampler = stochtrace.sampler_signs(xf, num=num_samples)
    estimate = stochtrace.estimator_monte_carlo_mean_and_sem(integrand, sampler)
    mean, sem = estimate(lambda v: obj.hvp(xf, v), jax.random.PRNGKey(seed))
    return SharpnessResult(float(mean), f"hutchinson({num_samples})", stderr=float(sem))


def hessian_spectrum(f: Any, x: Any, *, num_matvecs: int = 30, num_samples: int = 20,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Spectral density of the Hessian by stochastic Lanczos quadrature: returns
    ``(nodes, weights)`` of a discrete measure (weights sum to 1) that approximates the
    empirical eigenvalue distribution; smooth it for a density plot."""
    obj, xf = as_objective(f, x)
    k = int(min(num_matvecs, obj.n))
    tridiag = decomp.tridiag_sym(k, reortho="full")
    keys = jax.random.split(jax.random.PRNGKey(seed), num_samples)
    nodes, weights = [], []
    for key in keys:
        v0 = jax.random.rademacher(key, (obj.n,), dtype=jnp.float64)
        v0 = v0 / jnp.linalg.norm(v0)
        _, T, *_ = tridiag(lambda v: obj.hvp(xf, v), v0)
        lam, U = np.linalg.eigh(np.asarray(T))
        nodes.append(lam)
        weights.append(U[0] ** 2 / num_samples)
    return np.concatenate(nodes), np.concatenate(weights)


def keskar_sharpness(f: Any, x: Any, eps: float = 1e-3, **kwargs) -> SharpnessResult:
    """Keskar et al. (2017): ``100 max_{|y_i - x_i| <= eps (|x_i| + 1)} (f(y) - f(x)) /
    (1 + f(x))``, maximized over the box by the library's ascent (a lower bound)."""
    eps = check_scalar(eps, "eps", positive=True)
    obj, xf = as_objective(f, x)
    box = Norm("linf", scale=eps * (jnp.abs(xf) + 1.0))
    res = max_variation(f, x, 1.0, norm=box, **kwargs)
    fx = float(obj.fun(xf))
    return SharpnessResult(100.0 * res.value / (1.0 + fx), "keskar:" + res.method)


def sam_sharpness(f: Any, x: Any, rho: float = 0.05, *, steps: int = 1,
                  seed: int = 0) -> SharpnessResult:
    """SAM sharpness: ``f(x + u_k) - f(x)`` after ``steps`` normalized ascent steps
    ``u_{t+1} = rho grad f(x + u_t) / ||grad f(x + u_t)||`` from ``u_0 = 0`` (a lower bound
    on ``V(x, rho)``). At a zero gradient the first direction is random (``seed``)."""
    rho = check_scalar(rho, "rho", positive=True)
    obj, xf = as_objective(f, x)
    grad = jax.grad(obj.fun)
    u = jnp.zeros_like(xf)
    for _ in range(int(steps)):
        g = grad(xf + u)
        if float(jnp.linalg.norm(g)) == 0.0:
            g = jax.random.normal(jax.random.PRNGKey(seed), xf.shape)
        u = rho * g / jnp.linalg.norm(g)
    return SharpnessResult(float(obj.fun(xf + u) - obj.fun(xf)), f"sam({steps})")


def adaptive_sharpness(f: Any, x: Any, rho: float = 0.05, *, eta: float = 1e-3,
                       **kwargs) -> SharpnessResult:
    """Adaptive sharpness: the maximal variation in the weighted norm
    ``||u / (|x| + eta)||_2`` at radius ``rho`` (a lower bound)."""
    eta = check_scalar(eta, "eta", positive=True)
    xf = as_objective(f, x)[1]
    res = max_variation(f, x, rho, norm="weighted_l2", weights=jnp.abs(xf) + eta, **kwargs)
    return SharpnessResult(res.value, "adaptive:" + res.method)


def relative_sharpness(f: Any, x: Any, r: float, **kwargs) -> SharpnessResult:
    """Dinh et al. (2017), for nonnegative f: ``max_{B(x, r)} (f(y) - f(x)) / (1 + f(x))``."""
    obj, xf = as_objective(f, x)
    res = max_variation(f, x, r, **kwargs)
    return SharpnessResult(res.value / (1.0 + float(obj.fun(xf))), "relative:" + res.method)


def sublevel_volume(f: Any, x: Any, delta: float, radius: float, *, num_samples: int = 4096,
                    seed: int = 0) -> SharpnessResult:
    """Monte Carlo volume of ``{y in B(x, radius) : f(y) <= f(x) + delta}`` (after
    Hochreiter and Schmidhuber), with a 95% Wilson interval; larger is flatter."""
    delta = check_scalar(delta, "delta", positive=True)
    radius = check_scalar(radius, "radius", positive=True)
    obj, xf = as_objective(f, x)
    n = obj.n
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    u = jax.random.normal(k1, (num_samples, n))
    u = u / jnp.linalg.norm(u, axis=1, keepdims=True)
    s = jax.random.uniform(k2, (num_samples, 1)) ** (1.0 / n)
    ys = xf + radius * s * u
    inside = jax.vmap(obj.fun)(ys) <= obj.fun(xf) + delta
    p = float(jnp.mean(inside))
    z = 1.96
    denom = 1 + z**2 / num_samples
    centre = (p + z**2 / (2 * num_samples)) / denom
    half = z * math.sqrt(p * (1 - p) / num_samples + z**2 / (4 * num_samples**2)) / denom
    ball = math.pi ** (n / 2) / math.gamma(n / 2 + 1) * radius**n
    return SharpnessResult(p * ball, f"monte_carlo({num_samples})",
                           stderr=ball * math.sqrt(p * (1 - p) / num_samples),
                           interval=((centre - half) * ball, (centre + half) * ball))
