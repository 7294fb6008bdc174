"""Linear symmetries and conservation laws (SPEC section 7).

A linear symmetry of f is a matrix A with ``<grad f(x), A x> = 0`` for all x. The map
``A -> (<grad f(x_i), A x_i>)_i`` over sample points is linear in A; its null space is
the symmetry Lie algebra ``g_f`` (confirmed on fresh samples). The search space is
either all ``n x n`` matrices (``space="dense"``) or, for pytrees of matrices, the
generators acting on each leaf ``W`` by left and right multiplication,
``W -> B W + W C`` (``space="leaves"``): ``sum (p^2 + q^2)`` unknowns instead of ``n^2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ._objective import as_objective
from ._report import result_type
from ._x64 import float64


@dataclass(frozen=True)
class LeafSpace:
    """Generators ``W -> B W + W C`` on each matrix leaf (vectors: ``W -> B W``).

    A coefficient vector holds, leaf by leaf, ``vec(B)`` (p x p) then ``vec(C)`` (q x q).
    The gauge ``trace(C) = 0`` removes the trivial pair ``B = I, C = -I`` on each leaf.
    """

    shapes: tuple
    unravel: Any = field(repr=False)

    @property
    def size(self) -> int:
        return sum(p * p + q * q for p, q in self._pq())

    def _pq(self):
        for s in self.shapes:
            yield (s[0], s[1]) if len(s) == 2 else (int(np.prod(s)), 0)

    def blocks(self, coef):
        """Split a coefficient vector into [(B, C or None)] per leaf."""
        out, i = [], 0
        for p, q in self._pq():
            B = coef[i:i + p * p].reshape(p, p)
            i += p * p
            C = None
            if q:
                C = coef[i:i + q * q].reshape(q, q)
                i += q * q
            out.append((B, C))
        return out

    def apply(self, coef, x_flat):
        """``A x`` for the generator with coefficients ``coef``, as a flat vector."""
        leaves = jax.tree_util.tree_leaves(self.unravel(x_flat))
        parts = []
        for (B, C), W in zip(self.blocks(coef), leaves):
            if C is None:
                parts.append((B @ W.reshape(-1)).reshape(-1))
            else:
                parts.append((B @ W + W @ C).reshape(-1))
        return jnp.concatenate(parts)

    def row(self, g_flat, x_flat):
        """The coefficients' row of the linear map: ``<g, A x>`` as a vector in coef."""
        gs = jax.tree_util.tree_leaves(self.unravel(g_flat))
        xs = jax.tree_util.tree_leaves(self.unravel(x_flat))
        parts = []
        for G, W, (_, q) in zip(gs, xs, self._pq()):
            if q:
                parts += [(G @ W.T).reshape(-1), (W.T @ G).reshape(-1)]
            else:
                parts.append(jnp.outer(G.reshape(-1), W.reshape(-1)).reshape(-1))
        return jnp.concatenate(parts)

    def gauge(self) -> np.ndarray:
        """Rows of the gauge equations ``trace(C_leaf) = 0``."""
        rows, i = [], 0
        for p, q in self._pq():
            i += p * p
            if q:
                r = np.zeros(self.size)
                r[i + np.arange(q) * (q + 1)] = 1.0
                rows.append(r)
                i += q * q
        return np.array(rows).reshape(-1, self.size)

    def skew_part(self, coef) -> np.ndarray:
        """The skew parts of all blocks (zero iff the generator is symmetric)."""
        return np.concatenate([np.concatenate([(B - B.T).ravel()] + (
            [] if C is None else [(C - C.T).ravel()])) for B, C in self.blocks(np.asarray(coef))])

    def matrix(self, coef) -> np.ndarray:
        n = sum(int(np.prod(s)) for s in self.shapes)
        eye = jnp.eye(n)
        return np.asarray(jax.vmap(lambda e: self.apply(jnp.asarray(coef), e))(eye).T)


@result_type()
@dataclass(frozen=True)
class SymmetryAlgebra:
    """The symmetry Lie algebra found.

    ``basis``: shape ``(dim, n, n)`` (dense space) or ``(dim, K)`` generator
    coefficients (leaf space, see ``space``), orthonormal in the Frobenius/Euclidean
    inner product. ``residuals``: per basis element, ``max_i |<g_i, A x_i>| / (||g_i||
    ||A x_i||)`` on fresh samples. ``singular_values``: of the sampled map (normalized
    rows), smallest last, with the cut ``threshold``.
    """

    basis: np.ndarray
    dim: int
    residuals: np.ndarray
    singular_values: np.ndarray
    threshold: float
    space: Any = None
    n_samples: int = 0

    def apply(self, j: int, x_flat):
        A = self.basis[j]
        return A @ x_flat if self.space is None else self.space.apply(jnp.asarray(A), x_flat)

    def matrices(self) -> np.ndarray:
        """The basis as ``(dim, n, n)`` matrices (materialized for the leaf space)."""
        if self.space is None:
            return self.basis
        return np.stack([self.space.matrix(c) for c in self.basis]) if self.dim else np.zeros(
            (0, 0, 0))


def _samples(xf, n, scale, seed):
    rng = np.random.default_rng(seed)
    return jnp.asarray(np.asarray(xf) + scale * rng.standard_normal((n, xf.size)))


@float64
def linear_symmetries(f: Any, x_example: Any, *, space: str = "dense", n_samples: int | None = None,
                      scale: float = 1.0, tol: float = 1e-8, seed: int = 0) -> SymmetryAlgebra:
    """Discover the linear symmetries ``{A : <grad f(x), A x> = 0 for all x}``.

    Args:
        x_example: a point (array or pytree of matrices) fixing the structure; samples are
            drawn as ``x_example + scale * N(0, I)``.
        space: ``"dense"`` (all n x n matrices) or ``"leaves"`` (left/right
            multiplication on each leaf of a pytree of matrices).
        n_samples: number of sample points (default: unknowns + 20). Fewer than the
            number of unknowns is an error.
        tol: singular values below ``tol`` times the largest span the null space.

    >>> f = lambda y: (y[0] ** 2 + y[1] ** 2) ** 2 + y[2] ** 4
    >>> alg = linear_symmetries(f, jnp.ones(3))
    >>> alg.dim  # rotations of (y0, y1)
    1
    """
    obj, xf = as_objective(f, x_example)
    n = obj.n
    if space == "dense":
        lin = None
        unknowns = n * n
        row = lambda g, x: jnp.outer(g, x).reshape(-1)
        gauge = np.zeros((0, unknowns))
    elif space == "leaves":
        leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(jnp.asarray, x_example))
        if any(leaf.ndim > 2 for leaf in leaves):
            raise ValueError("space='leaves' needs leaves that are vectors or matrices.")
        lin = LeafSpace(tuple(tuple(leaf.shape) for leaf in leaves), ravel_pytree(
            jax.tree_util.tree_map(jnp.asarray, x_example))[1])
        unknowns = lin.size
        row = lin.row
        gauge = lin.gauge()
    else:
        raise ValueError(f"space must be 'dense' or 'leaves', got {space!r}.")
    needed = unknowns - gauge.shape[0]
    if n_samples is None:
        n_samples = needed + 20
    if n_samples < needed:
        raise ValueError(f"n_samples = {n_samples} is too few for {unknowns} unknowns: pass "
                         f"n_samples >= {needed} (more for a reliable null space).")
    grad = jax.jit(jax.vmap(jax.grad(obj.fun)))
    rows_fn = jax.jit(jax.vmap(row))

    def sampled_rows(seed_):
        X = _samples(xf, n_samples, scale, seed_)
        G = grad(X)
        R = np.asarray(rows_fn(G, X))
        norms = np.linalg.norm(R, axis=1, keepdims=True)
        return R / np.where(norms > 0, norms, 1.0), X, G

    R, _, _ = sampled_rows(seed)
    if gauge.shape[0]:
        R = np.vstack([R, gauge / np.linalg.norm(gauge, axis=1, keepdims=True)])
    _, s, Vt = np.linalg.svd(R, full_matrices=True)
    s_full = np.concatenate([s, np.zeros(unknowns - s.size)]) if s.size < unknowns else s
    threshold = tol * max(s_full[0], 1e-300)
    null = Vt[s_full <= threshold]
    # confirm on fresh samples
    _, X2, G2 = sampled_rows(seed + 1)
    residuals = []
    for c in null:
        AX = X2 @ c.reshape(n, n).T if lin is None else jax.vmap(
            lin.apply, in_axes=(None, 0))(jnp.asarray(c), X2)
        num = np.abs(np.sum(np.asarray(G2) * np.asarray(AX), axis=1))
        den = np.linalg.norm(G2, axis=1) * np.linalg.norm(AX, axis=1) + 1e-300
        residuals.append(float(np.max(num / den)))
    basis = null.reshape(-1, n, n) if lin is None else null
    return SymmetryAlgebra(basis, int(null.shape[0]), np.array(residuals), s_full, threshold,
                           lin, n_samples)


@dataclass(frozen=True)
class ConservedQuantities:
    """Conserved quadratic forms ``h_S(x) = 1/2 x'Sx`` for the symmetric ``S`` in the
    algebra. ``matrices``: ``(dim, n, n)`` (dense) or generator coefficients (leaf
    space). Calling it on a point gives the vector of values."""

    matrices: np.ndarray
    dim: int
    space: Any = None
    unravel: Any = None

    def __call__(self, x: Any) -> jax.Array:
        xf = x if isinstance(x, jax.Array) and x.ndim == 1 and self.unravel is None else \
            ravel_pytree(jax.tree_util.tree_map(jnp.asarray, x))[0]
        if self.space is None:
            return 0.5 * jnp.einsum("i,kij,j->k", xf, jnp.asarray(self.matrices), xf)
        return jnp.stack([0.5 * xf @ self.space.apply(jnp.asarray(c), xf) for c in self.matrices]
                         ) if self.dim else jnp.zeros(0)


@float64
def conserved_quantities(algebra_or_f: Any, x_example: Any = None, **kwargs) -> ConservedQuantities:
    """The symmetric part of the symmetry algebra: conserved quantities of the gradient
    flow (SPEC section 7). Pass a :class:`SymmetryAlgebra`, or ``f`` and ``x_example``
    (then :func:`linear_symmetries` is called with ``kwargs``)."""
    alg = algebra_or_f if isinstance(algebra_or_f, SymmetryAlgebra) else linear_symmetries(
        algebra_or_f, x_example, **kwargs)
    if alg.dim == 0:
        return ConservedQuantities(np.zeros((0,) + alg.basis.shape[1:]), 0, alg.space)
    if alg.space is None:
        skew = np.stack([(A - A.T).ravel() for A in alg.basis], axis=1)
    else:
        skew = np.stack([alg.space.skew_part(c) for c in alg.basis], axis=1)
    _, s, Vt = np.linalg.svd(skew, full_matrices=True)
    s_full = np.concatenate([s, np.zeros(alg.dim - s.size)]) if s.size < alg.dim else s
    coeffs = Vt[s_full <= 1e-8 * max(np.linalg.norm(skew), 1.0)]
    mats = np.tensordot(coeffs, alg.basis, axes=1)
    if alg.space is None:
        mats = 0.5 * (mats + np.swapaxes(mats, 1, 2))
    return ConservedQuantities(mats, int(coeffs.shape[0]), alg.space)
