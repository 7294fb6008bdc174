"""Frozen result types: one per question, each with the answer, what it proves,
the solver's statistics and a readable reason it stopped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from ._report import result_type
from ._x64 import float64

if TYPE_CHECKING:  # pragma: no cover
    from ._profile import Profile


@result_type("value")
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


@result_type("value")
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


@float64
def in_structure(unravel: Callable, flat: Any) -> Any:
    """The flat vector ``flat`` as a point in the user's structure (NumPy leaves)."""
    return jax.tree_util.tree_map(np.asarray, unravel(jnp.asarray(flat)))


@result_type()
@dataclass(frozen=True)
class Comparison:
    """``x`` relative to ``y`` in the germ preorder, with the evidence.

    ``difference = V(x, r) - V(y, r)`` on ``radii`` (decreasing); ``tolerance`` the
    resolution at each radius (``rtol max(Vx, Vy) + atol``, ``atol = 100 eps (|f(x)| +
    |f(y)|)``, ``eps`` of ``precision``, the coarser precision of the two profiles); the
    verdict is read on the ``n_decide`` smallest radii: all below ``-tolerance`` ->
    flatter, all above -> sharper, all within -> equivalent (within the tolerance),
    otherwise undetermined. ``crossing`` is the largest radius at which the sign of the
    difference changes. ``leading`` compares ``(order, coefficient)`` of the profiles.

    Points that are not critical (SPEC 4): ``V(x, r) = ||grad f(x)||_* r + O(r^2)``, so
    where the first term dominates, ``verdict`` ranks gradient norms. That is the germ
    preorder and is reported as such; beside it:

    * ``first_order_share``: ``||grad f||_* r / V`` at the smallest radius for x and y;
      ``first_order_dominates`` when either exceeds 1/2 at a point where f does fall
      along ``-grad f`` (``Profile.first_order``; ``compare`` then warns).
    * ``curvature_verdict``: the same reading applied to the curvature parts
      ``C(x, r) = V(x, r) - ||grad f(x)||_* r`` (``curvature_difference``, with
      ``curvature_tolerance``). For C^2 f, ``C(x, r) = (1/2) u'H u r^2 + O(r^3)`` with
      ``u = grad f / ||grad f||`` (l2): the curvature along the gradient, not
      ``lambda_max``; at a critical point C = V.
    * ``critical``: with ``compare(..., critical=True)``, a :class:`CriticalComparison`
      of the critical points reached by local minimization from x and from y.
    """

    verdict: str
    radii: np.ndarray
    profile_x: Profile
    profile_y: Profile
    difference: np.ndarray
    tolerance: np.ndarray
    crossing: float | None
    leading: str
    reason: str
    precision: str = "float64"
    rtol: float = 1e-10
    gradient_norms: tuple = (0.0, 0.0)
    first_order_share: tuple = (0.0, 0.0)
    first_order_dominates: bool = False
    curvature_verdict: str = "undetermined"
    curvature_difference: np.ndarray | None = field(default=None, repr=False)
    curvature_tolerance: np.ndarray | None = field(default=None, repr=False)
    critical: CriticalComparison | None = None

    @property
    def n_evals(self) -> int:
        """Evaluations of f (with its gradient) spent on both profiles."""
        return self.profile_x.n_evals + self.profile_y.n_evals

    @property
    def n_hvp(self) -> int:
        """Hessian-vector products spent on both profiles (a dense Hessian counts n)."""
        return self.profile_x.n_hvp + self.profile_y.n_hvp

    def __bool__(self) -> bool:  # pragma: no cover - guard against misuse
        raise TypeError("use comparison.verdict, a string in "
                        "{'flatter', 'sharper', 'equivalent', 'undetermined'}")


@result_type()
@dataclass(frozen=True)
class CriticalComparison:
    """The comparison of the critical points ``x*`` and ``y*`` reached by BFGS from x and y.

    ``comparison`` is the plain :class:`Comparison` of ``x*`` with ``y*`` (its ``verdict``
    copied in ``verdict``); ``point_x``/``point_y`` are ``x*``/``y*`` in the structure of
    x; ``moved_x = ||x* - x||_2``; ``decrease_x = f(x) - f(x*) >= 0``; ``gradient_x =
    ||grad f(x*)||_2``; likewise for y. ``converged`` when both gradients are below
    ``sqrt(eps) (1 + |f|)``; ``message`` says which did not.
    """

    verdict: str
    comparison: Comparison
    point_x: Any
    point_y: Any
    moved_x: float
    moved_y: float
    decrease_x: float
    decrease_y: float
    gradient_x: float
    gradient_y: float
    converged: bool
    message: str
