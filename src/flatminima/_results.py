"""Frozen result types: one per question, each with the answer, what it proves,
the solver's statistics and a readable reason it stopped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class VariationResult:
    """Maximal variation ``V(x, r) = max_{B(x, r)} f - f(x)``.

    ``value`` is ``f(argmax) - f(x)`` at a feasible point (``argmax`` lies in the ball
    in floating point), hence a proven lower bound on ``V``; ``upper`` is a proven
    upper bound when the method gives one (exact solver, Lipschitz or smoothness
    constant), else None. ``argmax`` has the structure of the point passed in (array
    shape, dict or tuple of arrays); ``argmax_flat`` is the same point as one flat
    ``(n,)`` vector, in the order of ``jax.flatten_util.ravel_pytree``.
    """

    value: float
    argmax: Any
    upper: float | None
    method: str
    n_evals: int
    radius: float
    norm: str = "l2"
    n_iter: int = 0
    n_hvp: int = 0
    nonfinite: bool = False
    message: str = ""
    argmax_flat: np.ndarray | None = field(default=None, repr=False)

    @property
    def gap(self) -> float | None:
        """``upper - value`` when an upper bound is known."""
        return None if self.upper is None else self.upper - self.value


@dataclass(frozen=True)
class DistanceResult:
    """Distance to the neighbouring level set ``D(x, delta)``.

    ``value = ||point - x||`` at a point with ``f(point) >= f(x) + delta`` (a proven
    upper bound on ``D``), ``inf`` when no such point was found within ``max_radius``.
    ``bracket`` is the final ``(r_low, r_high)`` of the search on the radius.
    ``point`` has the structure of the point passed in; ``point_flat`` is the same point
    as one flat ``(n,)`` vector.
    """

    value: float
    point: Any
    method: str
    n_evals: int
    delta: float
    bracket: tuple[float, float] = (0.0, float("inf"))
    message: str = ""
    variations: tuple = field(default=(), repr=False)
    point_flat: np.ndarray | None = field(default=None, repr=False)


def in_structure(unravel: Callable, flat: Any) -> Any:
    """The flat vector ``flat`` as a point in the user's structure (NumPy leaves)."""
    return jax.tree_util.tree_map(np.asarray, unravel(jnp.asarray(flat)))
