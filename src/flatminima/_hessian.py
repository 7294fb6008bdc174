"""Hessian access for the solvers and the sharpness measures: dense for small n,
matrix-free (Hessian-vector products, Lanczos from matfree) otherwise."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from matfree import decomp, eig

from ._objective import Array, Objective

#: Largest dimension for which the Hessian is formed densely (n Hessian-vector products).
DENSE_HESSIAN_MAX_N = 400
#: Lanczos steps used by :func:`top_eigenpairs` above that dimension.
TOP_EIGENPAIRS_LANCZOS_STEPS = 200


def top_eigenpairs_cost(n: int) -> int:
    """Hessian-vector products spent by :func:`top_eigenpairs` in dimension ``n``."""
    return n if n <= DENSE_HESSIAN_MAX_N else min(n, TOP_EIGENPAIRS_LANCZOS_STEPS)


@jax.jit
def _dense_hessian_jax(fun, y):
    hvp = lambda v: jax.jvp(jax.grad(fun), (y,), (v,))[1]
    H = jax.vmap(hvp)(jnp.eye(y.shape[0]))
    return 0.5 * (H + H.T)


def dense_hessian(obj: Objective, y: Array) -> Array:
    """The Hessian at ``y`` as a dense symmetric matrix (exact for JAX objectives and
    objects with ``hvp``)."""
    return _dense_hessian_jax(obj.fun, y)


def lanczos_eigh(matvec, n: int, num_matvecs: int, key: Array) -> tuple[Array, Array]:
    """Ritz values (ascending) and Ritz vectors (rows) after ``num_matvecs`` Lanczos steps
    with full reorthogonalisation (matfree)."""
    num = int(min(num_matvecs, n))
    v0 = jax.random.normal(key, (n,))
    eigh = eig.eigh_partial(decomp.tridiag_sym(num, reortho="full"))
    vals, vecs = eigh(matvec, v0)
    return vals, vecs


def top_eigenpairs(obj: Objective, y: Array, k: int, *, seed: int = 0) -> tuple[Array, Array]:
    """The ``k`` largest Hessian eigenvalues at ``y`` (descending) and their eigenvectors
    (rows). Dense below :data:`DENSE_HESSIAN_MAX_N`, Lanczos above."""
    n = obj.n
    if n <= DENSE_HESSIAN_MAX_N:
        vals, vecs = np.linalg.eigh(np.asarray(dense_hessian(obj, y)))
        order = np.argsort(vals)[::-1][:k]
        return jnp.asarray(vals[order]), jnp.asarray(vecs[:, order].T)
    matvec = lambda v: obj.hvp(y, v)
    vals, vecs = lanczos_eigh(matvec, n, top_eigenpairs_cost(n), jax.random.PRNGKey(seed))
    order = jnp.argsort(vals)[::-1][:k]
    return vals[order], vecs[order]


def lanczos_top(matvec, n: int, *, num_matvecs: int = 60, rtol: float = 1e-10,
                max_matvecs: int = 640, seed: int = 0) -> tuple[float, float, int]:
    """Top eigenvalue by Lanczos, restarted with twice the Krylov dimension until the Ritz
    residual ``||H v - theta v||`` is below ``rtol |theta|`` (for a symmetric matrix an
    eigenvalue lies within the residual of theta). Returns ``(theta, residual, steps)``."""
    key = jax.random.PRNGKey(seed)
    k = int(min(num_matvecs, n))
    while True:
        vals, vecs = lanczos_eigh(matvec, n, k, key)
        i = int(jnp.argmax(vals))
        theta, v = float(vals[i]), vecs[i] / jnp.linalg.norm(vecs[i])
        residual = float(jnp.linalg.norm(matvec(v) - theta * v))
        if residual <= rtol * max(abs(theta), 1e-300) or k >= min(n, max_matvecs):
            return theta, residual, k
        k = int(min(2 * k, n, max_matvecs))
