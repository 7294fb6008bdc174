"""Frozen result types: one per question, each with the answer, what it proves,
the solver's statistics and a readable reason it stopped."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class VariationResult:
    """Maximal variation ``V(x, r) = max_{B(x, r)} f - f(x)``.

    ``value`` is ``f(argmax) - f(x)`` at a feasible point (``argmax`` lies in the ball
    in floating point), hence a proven lower bound on ``V``; ``upper`` is a proven
    upper bound when the method gives one (exact solver, Lipschitz or smoothness
    constant), else None.
    """

    value: float
    argmax: np.ndarray
    upper: float | None
    method: str
    n_evals: int
    radius: float
    norm: str = "l2"
    n_iter: int = 0
    n_hvp: int = 0
    nonfinite: bool = False
    message: str = ""

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
    """

    value: float
    point: np.ndarray | None
    method: str
    n_evals: int
    delta: float
    bracket: tuple[float, float] = (0.0, float("inf"))
    message: str = ""
    variations: tuple = field(default=(), repr=False)
