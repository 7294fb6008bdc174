"""Hessian access for the solvers and the sharpness measures: dense for small n, Lanczos
on Hessian-vector products otherwise.

Lanczos is our own (``lanczos``) rather than matfree's ``tridiag_sym``: on a Hessian with
few distinct eigenvalues (fewer samples than parameters, zero layers, a factorization at
the origin) the Krylov space becomes invariant after a few steps, the off-diagonal
``beta_k`` vanishes, and matfree 0.6 goes on normalising rounding noise, so the Ritz
values that follow are garbage (2e7 for a top eigenvalue of 90). Here a vanishing
``beta_k`` is detected; the run then stops (quadrature, which is exact on the invariant
subspace) or goes on from a fresh random vector orthogonal to the basis (to find the rest
of the spectrum), and every top eigenvalue returned is checked by its residual
``||H v - theta v||`` with a fresh product. matfree still computes Hutchinson traces.

Reference: B. N. Parlett, *The Symmetric Eigenvalue Problem*, SIAM 1998, ch. 13
(Lanczos with full reorthogonalisation, "twice is enough", restarts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.linalg import eigh_tridiagonal

from ._objective import Array, Objective
from ._warn import warn

#: Largest dimension for which the Hessian is formed densely (n Hessian-vector products).
DENSE_HESSIAN_MAX_N = 400
#: Lanczos steps used by :func:`top_eigenpairs` above that dimension.
TOP_EIGENPAIRS_LANCZOS_STEPS = 200
#: Relative Ritz residual at which :func:`rough_top_eigenvectors` stops (starting points).
START_RTOL = 1e-2
#: ... and at which its Rayleigh-quotient error estimate ``res^2 / gap`` must be, relative:
#: the resolution at which ``compare`` reads V in float64.
START_VALUE_RTOL = 1e-10
#: Relative accuracy of one Hessian-vector product: automatic differentiation is exact up
#: to rounding, ``NOISE_EPS_FACTOR`` units of f's precision times the matrix scale ...
NOISE_EPS_FACTOR = 100.0
#: ... and central differences of the gradient (step 1e-5, objectives bridged from NumPy)
#: are accurate to about this, relative to the matrix scale.
FINITE_DIFFERENCE_RTOL = 1e-6

NAN_ADVICE = (
    "automatic differentiation gives NaN where f is written with a function that is not "
    "differentiable there even if f is smooth: jnp.linalg.norm(w) ** 2 and jnp.sqrt(w @ w) "
    "have NaN derivatives at w = 0. Write the squared norm as a sum of squares "
    "(jnp.sum(w ** 2)), or evaluate at a point where f is twice differentiable.")


class NonFiniteDerivative(ValueError):
    """A derivative of f (gradient, Hessian-vector product) is NaN or infinite."""


def check_finite(values: Array | np.ndarray, what: str) -> np.ndarray:
    """``values`` as a NumPy array; a :class:`NonFiniteDerivative` naming the NaN and its
    fix if any entry is NaN or infinite."""
    arr = np.asarray(values)
    if not np.all(np.isfinite(arr)):
        raise NonFiniteDerivative(f"{what} is NaN or infinite: {NAN_ADVICE}")
    return arr


@dataclass(frozen=True)
class HessianOperator:
    """``v -> H v``: ``matvec`` is the compiled product (JAX-traceable), a call checks
    its output finite and returns NumPy; ``noise_rtol`` is the relative accuracy of one
    product, below which no Lanczos tolerance is set."""

    matvec: Callable[[np.ndarray], np.ndarray]
    n: int
    noise_rtol: float

    def __call__(self, v: np.ndarray) -> np.ndarray:
        return check_finite(self.matvec(v), "the Hessian-vector product at x")


def hessian_operator(obj: Objective, y: Array) -> HessianOperator:
    """The Hessian of ``obj`` at ``y`` as an operator; its product is compiled once per
    objective code and shapes (``jax.jit`` at module level) and reused by every Lanczos
    step and restart, and by later calls."""
    # a module-level jitted product keyed on the objective's code and shapes: compiled
    # once for every call on objectives of the same code, not once per call
    hvp: Callable[..., Any] = obj.hvp
    if obj.is_jax:
        eps = float(jnp.finfo(jax.eval_shape(obj.fun, y).dtype).eps)
        noise = NOISE_EPS_FACTOR * eps
    else:
        noise = FINITE_DIFFERENCE_RTOL
    return HessianOperator(lambda v: hvp(y, v), obj.n, noise)


def top_eigenpairs_cost(n: int) -> int:
    """Lanczos steps spent by :func:`top_eigenpairs` in dimension ``n`` (the dense path
    takes ``n`` products; the Lanczos path adds one product per returned pair to check it)."""
    return n if n <= DENSE_HESSIAN_MAX_N else min(n, TOP_EIGENPAIRS_LANCZOS_STEPS)


@jax.jit
def _dense_hessian_jax(fun, y):
    hvp = lambda v: jax.jvp(jax.grad(fun), (y,), (v,))[1]
    H = jax.vmap(hvp)(jnp.eye(y.shape[0]))
    return 0.5 * (H + H.T)


def dense_hessian(obj: Objective, y: Array) -> Array:
    """The Hessian at ``y`` as a dense symmetric matrix (exact for JAX objectives and
    objects with ``hvp``); :class:`NonFiniteDerivative` if it has a NaN (see
    :data:`NAN_ADVICE`)."""
    H = _dense_hessian_jax(obj.fun, y)
    check_finite(H, "the Hessian at x")
    return H


def _dense_top_eigenpairs(obj: Objective, y: Array, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenvalues of the dense Hessian (descending) and their
    eigenvectors (rows)."""
    vals, vecs = np.linalg.eigh(np.asarray(dense_hessian(obj, y)))
    order = np.argsort(vals)[::-1][:k]
    return vals[order], vecs[:, order].T


@dataclass(frozen=True)
class Krylov:
    """A Lanczos run: orthonormal basis ``Q`` (rows), the tridiagonal ``T = Q H Q'``
    (diagonal ``alpha``, off-diagonal ``beta``, zero where the run restarted after a
    breakdown), ``beta_next`` (``H Q' = Q' T + beta_next q_next e_last'``), the matrix
    scale seen (``max |T_ij|``, a lower bound on ``||H||``) and the breakdown count."""

    Q: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    beta_next: float
    scale: float
    breakdowns: int

    def ritz(self, count: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The top ``count`` (default all) Ritz values (ascending), their Ritz vectors
        (rows, unit) and residual estimates ``|beta_next u_last|``."""
        lam, U = self._tridiagonal_eigenpairs(count)
        vecs = U.T @ self.Q
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        return lam, vecs, np.abs(self.beta_next * U[-1])

    def estimates(self, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The top ``count`` Ritz values and their residual estimates, without the vectors
        (a convergence test at every step costs no work in ``n``)."""
        lam, U = self._tridiagonal_eigenpairs(count)
        return lam, np.abs(self.beta_next * U[-1])

    def _tridiagonal_eigenpairs(self, count: int | None) -> tuple[np.ndarray, np.ndarray]:
        m = len(self.alpha)
        if count is None or count >= m:
            return eigh_tridiagonal(self.alpha, self.beta)
        return eigh_tridiagonal(self.alpha, self.beta, select="i",
                                select_range=(m - count, m - 1))


# The loop's vector work goes through np.einsum (its own single-threaded loops), not BLAS:
# OpenBLAS's threads spin for a while after each call and, on a machine with few cores,
# take them from the Hessian-vector product that follows (measured: a product took 52 ms
# inside the loop against 28 ms alone, 1e5 parameters, 2 cores). Limiting BLAS's threads
# instead would change process-wide state, which is not safe with threads.


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.einsum("i,i->", a, b))


def _norm(a: np.ndarray) -> float:
    return float(np.sqrt(_dot(a, a)))


def _orthogonalise(w: np.ndarray, Q: np.ndarray) -> np.ndarray:
    for _ in range(2):  # classical Gram-Schmidt twice: orthogonal to working precision
        w = w - np.einsum("kn,k->n", Q, np.einsum("kn,n->k", Q, w))
    return w


def lanczos(op: HessianOperator, v0: np.ndarray, num_steps: int, rng: np.random.Generator, *,
            stop_at_breakdown: bool = False,
            converged: Callable[[Krylov], bool] | None = None, check_every: int = 10) -> Krylov:
    """Lanczos with full reorthogonalisation from ``v0``, at most ``num_steps`` products.

    A breakdown is ``beta_k <= noise_rtol * scale``: the basis then spans an invariant
    subspace. With ``stop_at_breakdown`` the run ends there; else it goes on from a fresh
    random vector (drawn from ``rng``) orthogonal to the basis, with ``beta_k = 0`` in T.
    It also ends when the basis spans ``R^n`` or ``converged(krylov)`` holds (tested
    every ``check_every`` steps and at each breakdown).
    """
    n = op.n
    m = int(min(num_steps, n))
    Q, alpha, beta = np.zeros((m, n)), np.zeros(m), np.zeros(m)
    q = np.asarray(v0, dtype=float)
    q = q / _norm(q)
    scale, breakdowns = 0.0, 0

    def snapshot(j: int) -> Krylov:
        return Krylov(Q[: j + 1], alpha[: j + 1], beta[:j], beta[j], scale, breakdowns)

    for k in range(m):
        Q[k] = q
        w = op(q)
        alpha[k] = _dot(q, w)
        w = _orthogonalise(w - alpha[k] * q - (beta[k - 1] * Q[k - 1] if k else 0.0), Q[: k + 1])
        b = _norm(w)
        scale = max(scale, abs(alpha[k]), b)
        broke = b <= op.noise_rtol * scale
        beta[k] = 0.0 if broke else b
        breakdowns += broke
        if k + 1 == m or (broke and stop_at_breakdown):
            break
        if converged is not None and (broke or (k + 1) % check_every == 0) and converged(snapshot(k)):
            break
        if broke:
            w = _orthogonalise(rng.standard_normal(n), Q[: k + 1])
            if _norm(w) <= 1e-8 * np.sqrt(n):  # the basis spans R^n numerically
                break
        q = w / _norm(w)
    return snapshot(k)


def _tolerance(theta: float, scale: float, rtol: float, noise_rtol: float) -> float:
    return max(rtol * abs(theta), noise_rtol * scale)


@dataclass(frozen=True)
class TopEigenvalue:
    """The top Hessian eigenvalue by Lanczos: ``value`` lies within ``residual``
    (``||H v - value v||``, from a fresh product) of an eigenvalue; ``converged`` says
    whether ``residual <= tolerance``; ``n_matvecs`` counts every product."""

    value: float
    residual: float
    tolerance: float
    vector: np.ndarray
    n_matvecs: int
    converged: bool


def lanczos_top(op: HessianOperator, *, num_matvecs: int = 60, rtol: float = 1e-8,
                max_matvecs: int = 640, seed: int = 0) -> TopEigenvalue:
    """Top eigenvalue by explicitly restarted Lanczos.

    Each cycle runs at most ``num_matvecs`` steps (ending early once the estimated Ritz
    residual is below the tolerance) and checks the top Ritz pair by a fresh product;
    the tolerance is ``max(rtol |theta|, noise_rtol * scale)``, never below what one
    product resolves. If the residual is above it the next cycle starts from that Ritz
    vector (the random stream goes on; a restart never repeats the seed), until
    ``max_matvecs`` products are spent; then a ``RuntimeWarning`` gives the residual.
    """
    n = op.n
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(n)
    used, best = 0, None

    def converged(kr: Krylov) -> bool:
        lam, est = kr.estimates(1)
        return est[-1] <= _tolerance(lam[-1], max(kr.scale, abs(lam[-1])), rtol, op.noise_rtol)

    while True:
        steps = max(1, min(num_matvecs, n, max_matvecs - used - 1))
        kr = lanczos(op, v, steps, rng, converged=converged, check_every=1)
        lam, vecs, _ = kr.ritz(1)
        theta, v = float(lam[-1]), vecs[-1]
        residual = float(np.linalg.norm(op(v) - theta * v))
        used += len(kr.alpha) + 1
        tol = _tolerance(theta, max(kr.scale, abs(theta)), rtol, op.noise_rtol)
        if best is None or residual < best.residual:
            best = TopEigenvalue(theta, residual, tol, v, used, residual <= tol)
        if best.converged or used + 2 > max_matvecs:
            break
    result = TopEigenvalue(best.value, best.residual, best.tolerance, best.vector, used,
                           best.converged)
    if not result.converged:
        warn(
            f"Lanczos did not reach the residual {result.tolerance:.3g} within {max_matvecs} "
            f"Hessian-vector products (reached {result.residual:.3g}; the eigenvalue lies within "
            "it); raise max_matvecs or num_matvecs, or loosen rtol.", RuntimeWarning)
    return result


_REUSE: ContextVar[list | None] = ContextVar("flatminima_reuse_eigenvectors", default=None)


@contextmanager
def reuse_eigenvectors() -> Iterator[None]:
    """Within this scope, :func:`rough_top_eigenvectors` at a point is computed once and
    reused (a flatness profile, a comparison or a level distance asks for the same starts
    at every radius). The results, and the objectives they belong to, are held only until
    the outermost scope exits."""
    token = _REUSE.set([]) if _REUSE.get() is None else None
    try:
        yield
    finally:
        if token is not None:
            _REUSE.reset(token)


def rough_top_eigenvectors(obj: Objective, y: Array, k: int, *, seed: int = 0,
                           rtol: float = START_RTOL) -> tuple[np.ndarray, int]:
    """:func:`_rough_top_eigenvectors`, reused within :func:`reuse_eigenvectors`: the
    products spent are 0 for a reused result."""
    memo = _REUSE.get()
    if memo is None:
        return _rough_top_eigenvectors(obj, y, k, seed=seed, rtol=rtol)
    point = np.asarray(y)
    for held, at, key, vecs in memo:
        if held is obj and key == (k, seed, rtol) and np.array_equal(at, point):
            return vecs, 0
    vecs, spent = _rough_top_eigenvectors(obj, y, k, seed=seed, rtol=rtol)
    memo.append((obj, point.copy(), (k, seed, rtol), vecs))
    return vecs, spent


def _rough_top_eigenvectors(obj: Objective, y: Array, k: int, *, seed: int = 0,
                            rtol: float = START_RTOL) -> tuple[np.ndarray, int]:
    """Approximations of the ``k`` top Hessian eigenvectors at ``y`` (rows, unit), and the
    Hessian-vector products spent: dense below :data:`DENSE_HESSIAN_MAX_N`; above,
    :func:`lanczos` stopped once each of the top ``k`` Ritz pairs has a residual estimate
    ``res <= rtol |theta|`` and a Rayleigh-quotient error estimate ``res^2 / gap`` below
    :data:`START_VALUE_RTOL` ``|theta|`` (``gap`` the distance to the nearest other Ritz
    value; never below what one product resolves). The second test matters on clustered
    spectra: there a Ritz vector with a small residual is still a mixture of the
    eigenvectors of the cluster, from which the ascent separates them only slowly. The run
    does not stop at a breakdown (it goes on, to find the copies of repeated eigenvalues);
    at most :data:`TOP_EIGENPAIRS_LANCZOS_STEPS` steps. Not verified by a fresh product:
    these are starting points."""
    n = obj.n
    if n <= DENSE_HESSIAN_MAX_N:
        return _dense_top_eigenpairs(obj, y, k)[1], n
    op = hessian_operator(obj, y)

    def converged(kr: Krylov) -> bool:
        if kr.breakdowns or len(kr.alpha) <= k:
            return False
        lam, est = kr.estimates(k + 1)  # ascending
        floor = op.noise_rtol * kr.scale
        size = np.maximum(np.abs(lam), floor)
        step = np.diff(lam)
        gap = np.minimum(np.append(np.inf, step), np.append(step, np.inf))
        value_error = est**2 / np.maximum(gap, floor)
        top = slice(1, None)  # the k largest (ascending order: the first is the (k+1)-th)
        return bool(np.all(est[top] <= rtol * size[top])
                    and np.all(value_error[top] <= np.maximum(START_VALUE_RTOL * size[top], floor)))

    rng = np.random.default_rng(seed)
    kr = lanczos(op, rng.standard_normal(n), min(n, TOP_EIGENPAIRS_LANCZOS_STEPS), rng,
                 converged=converged, check_every=1)
    vecs = kr.ritz(k)[1][::-1]
    return vecs, len(kr.alpha)


def top_eigenpairs(obj: Objective, y: Array, k: int, *, seed: int = 0,
                   rtol: float = 1e-6) -> tuple[Array, Array]:
    """The ``k`` largest Hessian eigenvalues at ``y`` (descending) and their eigenvectors
    (rows). Dense below :data:`DENSE_HESSIAN_MAX_N`; above, :func:`lanczos` for
    :func:`top_eigenpairs_cost` steps (going on past breakdowns, so repeated eigenvalues
    show up), each returned pair checked by a fresh product; a ``RuntimeWarning`` if a
    residual is above ``max(rtol |theta|, noise)``."""
    n = obj.n
    if n <= DENSE_HESSIAN_MAX_N:
        vals, vecs = _dense_top_eigenpairs(obj, y, k)
        return jnp.asarray(vals), jnp.asarray(vecs)
    op = hessian_operator(obj, y)
    rng = np.random.default_rng(seed)
    kr = lanczos(op, rng.standard_normal(n), top_eigenpairs_cost(n), rng)
    lam, vecs, _ = kr.ritz(k)
    lam, vecs = lam[::-1], vecs[::-1]
    scale = max(kr.scale, abs(lam).max())
    for theta, v in zip(lam, vecs, strict=True):
        residual = float(np.linalg.norm(op(v) - theta * v))
        tol = _tolerance(theta, scale, rtol, op.noise_rtol)
        if residual > tol:
            warn(
                f"Hessian eigenpair {theta:.6g} has residual {residual:.3g} > {tol:.3g} after "
                f"{len(kr.alpha)} Lanczos steps; the eigenvalue lies within the residual.",
                RuntimeWarning)
    return jnp.asarray(lam), jnp.asarray(vecs)


def top_eigenvalue(obj: Objective, y: Array, *, seed: int = 0,
                   rtol: float = 1e-10) -> tuple[float, int]:
    """The largest Hessian eigenvalue at ``y`` and the products spent: dense below
    :data:`DENSE_HESSIAN_MAX_N`, else :func:`lanczos_top` to ``rtol`` (relative residual;
    never below what one product resolves; a ``RuntimeWarning`` if not reached)."""
    if obj.n <= DENSE_HESSIAN_MAX_N:
        return float(_dense_top_eigenpairs(obj, y, 1)[0][0]), obj.n
    top = lanczos_top(hessian_operator(obj, y), rtol=rtol, seed=seed)
    return top.value, top.n_matvecs
