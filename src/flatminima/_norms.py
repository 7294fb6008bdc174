"""Balls of the supported norms: projection, dual norm, and the change of variables.

Every ball is handled in coordinates ``z = (y - x) / w`` where it is a ball of the
base norm (l2 or linf): for ``l2`` and ``linf`` ``w = 1``; for the weighted l2 norm
``||u||_w = ||u / w||_2`` the scale is ``w``. The solvers work on ``z``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np

from ._objective import Array


@dataclass(frozen=True)
class Norm:
    """A norm on ``R^n``: ``kind`` in {"l2", "linf"} applied to ``u / scale``."""

    kind: str
    scale: Array | None = None

    @property
    def name(self) -> str:
        return self.kind if self.scale is None else f"weighted_{self.kind}"

    def __call__(self, u: Array) -> Array:
        return base_norm(self.kind, self.to_z(u))

    def to_z(self, u: Array) -> Array:
        return u if self.scale is None else u / self.scale

    def from_z(self, z: Array) -> Array:
        return z if self.scale is None else z * self.scale

    def dual(self, g: Array) -> Array:
        """Dual norm ``||g||_* = max {<g, u> : ||u|| <= 1}``."""
        gz = g if self.scale is None else g * self.scale
        return jnp.sum(jnp.abs(gz)) if self.kind == "linf" else jnp.linalg.norm(gz)

    def ascent_direction(self, g: Array) -> Array:
        """A unit vector ``u`` (in this norm) with ``<g, u> = ||g||_*``, in z coordinates."""
        gz = g if self.scale is None else g * self.scale
        if self.kind == "linf":
            return jnp.sign(gz)
        ng = jnp.linalg.norm(gz)
        return jnp.where(ng > 0, gz / jnp.where(ng > 0, ng, 1.0), 0.0)

    def project(self, y: Array, x: Array, radius: float) -> Array:
        """Closest point of the ball ``B(x, radius)`` to ``y`` (in z coordinates the
        Euclidean projection onto the base-norm ball)."""
        return x + self.from_z(project_z(self.kind, self.to_z(y - x), radius))


def base_norm(kind: str, z: Array) -> Array:
    return jnp.max(jnp.abs(z), axis=-1) if kind == "linf" else jnp.linalg.norm(z, axis=-1)


def project_z(kind: str, z: Array, radius: float) -> Array:
    """Euclidean projection of ``z`` onto the base-norm ball of ``radius`` at 0."""
    if kind == "linf":
        return jnp.clip(z, -radius, radius)
    nz = jnp.linalg.norm(z, axis=-1, keepdims=True)
    factor = jnp.where(nz > radius, radius / jnp.where(nz > 0, nz, 1.0), 1.0)
    return z * factor


def make_norm(norm: Any, x_flat: Array, *, weights: Any = None, eta: float = 1e-3) -> Norm:
    """Build a :class:`Norm` from a name.

    ``"l2"`` (default), ``"linf"`` or ``"weighted_l2"`` with ``weights`` (a positive
    vector ``w``) or, when ``weights`` is None, ``w = |x| + eta`` (adaptive sharpness).
    """
    if isinstance(norm, Norm):
        return norm
    if norm in ("l2", "euclidean", "fro", None):
        return Norm("l2")
    if norm in ("linf", "box", "inf"):
        return Norm("linf")
    if norm in ("weighted_l2", "weighted"):
        if weights is None:
            w = jnp.abs(x_flat) + eta
        else:
            w = jnp.asarray(np.asarray(weights, dtype=float).reshape(-1))
            if w.shape != x_flat.shape:
                raise ValueError(
                    f"weights has {w.shape[0]} entries but x has {x_flat.shape[0]}; "
                    "pass one positive weight per coordinate."
                )
        if not bool(jnp.all(jnp.isfinite(w))) or not bool(jnp.all(w > 0)):
            raise ValueError("weights must be finite and positive (use eta > 0 for |x| + eta).")
        return Norm("l2", scale=w)
    raise ValueError(f"norm must be 'l2', 'linf' or 'weighted_l2', got {norm!r}.")


def feasible_point(norm: Norm, x: Array, z: np.ndarray, radius: float) -> np.ndarray:
    """``y = x + w z`` shrunk by a few ulps at a time until ``||y - x|| <= radius`` holds
    when computed in floating point, so that the returned point is provably in the ball."""
    x = np.asarray(x)
    w = 1.0 if norm.scale is None else np.asarray(norm.scale)
    z = np.asarray(z, dtype=float)
    eps = np.finfo(float).eps
    for k in range(60):
        y = x + w * z
        u = (y - x) / w
        size_np = np.max(np.abs(u)) if norm.kind == "linf" else np.linalg.norm(u)
        if max(size_np, float(norm(jnp.asarray(y - x)))) <= radius:
            return y
        z = z * (1 - 4.0 * eps * 2**k)
    return x.copy()
