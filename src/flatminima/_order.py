"""Comparing points by flatness: the germ preorder, ranking, flat minima (SPEC 4-5)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import minimize

from ._objective import as_objective
from ._profile import Profile, default_radii, flatness_profile
from .solvers import Certified

EPS = np.finfo(float).eps
VERDICTS = ("flatter", "sharper", "equivalent", "undetermined")


@dataclass(frozen=True)
class Comparison:
    """``x`` relative to ``y`` in the germ preorder, with the evidence.

    ``difference = V(x, r) - V(y, r)`` on ``radii`` (decreasing); ``tolerance`` the
    resolution at each radius (``rtol max(Vx, Vy) + atol``); the verdict is read on the
    ``n_decide`` smallest radii: all below ``-tolerance`` -> flatter, all above ->
    sharper, all within -> equivalent (within the tolerance), otherwise undetermined.
    ``crossing`` is the largest radius at which the sign of the difference changes.
    ``leading`` compares ``(order, coefficient)`` of the two profiles.
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

    def __bool__(self) -> bool:  # pragma: no cover - guard against misuse
        raise TypeError("use comparison.verdict, a string in "
                        "{'flatter', 'sharper', 'equivalent', 'undetermined'}")


def _leading(px: Profile, py: Profile) -> str:
    if not (np.isfinite(px.order) and np.isfinite(py.order)):
        return "undetermined"
    da = px.order - py.order
    if abs(da) > px.order_uncertainty + py.order_uncertainty + 1e-9:
        return "flatter" if da > 0 else "sharper"
    if px.order_uncertainty + py.order_uncertainty > 0.1:
        return "undetermined"
    dc = px.coefficient - py.coefficient
    if abs(dc) > px.coefficient_uncertainty + py.coefficient_uncertainty + 1e-9 * max(
            abs(px.coefficient), abs(py.coefficient)):
        return "flatter" if dc < 0 else "sharper"
    return "equivalent"


def verdict_from_profiles(px: Profile, py: Profile, *, rtol: float = 1e-10,
                          n_decide: int = 3) -> Comparison:
    """The germ-preorder verdict from two profiles on the same radii."""
    if not np.array_equal(px.radii, py.radii):
        raise ValueError("the two profiles must share their radii.")
    d = px.values - py.values
    # f(y) - f(x) loses about eps |f(x)| to cancellation; values themselves are accurate
    # to near machine precision relative (solvers converge to stationarity).
    atol = 1e2 * EPS * (abs(px.fx) + abs(py.fx)) + 1e-300
    tol = rtol * np.maximum(px.values, py.values) + atol
    sign = np.where(d < -tol, -1, np.where(d > tol, 1, 0))
    crossing = None
    for i in range(len(sign) - 1):
        if sign[i] != 0 and sign[i + 1] != 0 and sign[i] != sign[i + 1]:
            crossing = float(np.sqrt(px.radii[i] * px.radii[i + 1]))
            break
    tail = sign[-n_decide:]
    if np.all(tail == -1):
        verdict, reason = "flatter", "V(x, r) < V(y, r) at the smallest radii"
    elif np.all(tail == 1):
        verdict, reason = "sharper", "V(x, r) > V(y, r) at the smallest radii"
    elif np.all(tail == 0):
        verdict, reason = "equivalent", (
            f"|V(x, r) - V(y, r)| <= {rtol:g} max V + {atol:.1e} at the smallest radii")
    else:
        verdict, reason = "undetermined", (
            "the sign of V(x, r) - V(y, r) is not resolved at the smallest radii; "
            "try smaller radii or a more accurate solver")
    return Comparison(verdict, px.radii, px, py, d, tol, crossing, _leading(px, py), reason)


def compare(f: Any, x: Any, y: Any, radii: Any = None, *, rtol: float = 1e-10,
            n_decide: int = 3, certified: bool = False, **kwargs) -> Comparison:
    """Compare ``x`` with ``y`` in the germ preorder: is x flatter than y?

    Both profiles are evaluated on the same radii (default: geometric grid from
    ``0.1 (1 + max ||.||_inf)`` down 2.5 decades) with solvers that converge to near
    machine precision, so differences far below the leading term are resolved.

    ``certified=True``: a verdict proven at the radii it states, from the certified
    solver (:class:`flatminima.solvers.Certified`, small n): see :func:`_certified_compare`.

    >>> f = lambda y: y[1] ** 2 + y[0] ** 2 * y[1] ** 4
    >>> compare(f, [0.0, 0.0], [1.0, 0.0]).verdict
    'flatter'
    """
    if certified:
        return _certified_compare(f, x, y, radii, **kwargs)
    _, xf = as_objective(f, x, name="f")
    _, yf = as_objective(f, y, name="f")
    if xf.shape != yf.shape:
        raise ValueError(f"x and y have {xf.size} and {yf.size} coordinates; pass points of "
                         "the same shape.")
    if radii is None:
        scale = max(float(jnp.max(jnp.abs(xf))), float(jnp.max(jnp.abs(yf))))
        radii = default_radii(None, r_max=0.1 * (1.0 + scale))
    px = flatness_profile(f, x, radii, **kwargs)
    py = flatness_profile(f, y, radii, **kwargs)
    return verdict_from_profiles(px, py, rtol=rtol, n_decide=n_decide)


def _certified_compare(f: Any, x: Any, y: Any, radii: Any = None, *, norm: str = "l2",
                       solver: Any = None, seed: int = 0, rtols=(1e-6, 1e-9, 1e-12)) -> Comparison:
    """Proven comparison at the given radii (default ``0.1 (1 + max ||.||_inf)`` and half
    of it). The enclosures ``[lower, upper]`` of ``V(x, r)`` and ``V(y, r)`` from
    :class:`Certified` are tightened (``rtols`` in turn) until they separate at every
    radius: ``upper_x < lower_y`` proves x flatter at r, ``lower_x > upper_y`` sharper.
    The verdict is ``flatter``/``sharper`` when proven so at every radius, else
    ``undetermined``; ``difference`` holds the midpoints of the proven intervals for
    ``V(x, r) - V(y, r)``, ``tolerance`` their half-widths, ``reason`` the intervals.
    """
    base = Certified() if solver is None else solver
    if not isinstance(base, Certified):
        raise TypeError("compare(..., certified=True) takes solver=Certified(...) or None.")
    _, xf = as_objective(f, x, name="f")
    _, yf = as_objective(f, y, name="f")
    if xf.shape != yf.shape:
        raise ValueError(f"x and y have {xf.size} and {yf.size} coordinates; pass points of "
                         "the same shape.")
    if radii is None:
        scale = max(float(jnp.max(jnp.abs(xf))), float(jnp.max(jnp.abs(yf))))
        radii = [0.1 * (1.0 + scale), 0.05 * (1.0 + scale)]
    for rtol in rtols:
        px, py = (flatness_profile(f, p, radii, norm=norm, seed=seed,
                                   solver=replace(base, rtol=rtol)) for p in (x, y))
        signs = np.where(px.uppers < py.values, -1, np.where(px.values > py.uppers, 1, 0))
        if np.all(signs != 0):
            break
    d = 0.5 * ((px.values + px.uppers) - (py.values + py.uppers))
    tol = 0.5 * ((px.uppers - px.values) + (py.uppers - py.values))
    proven = ", ".join(f"r={r:.3g}: V(x) in [{a:.10g}, {b:.10g}], V(y) in [{c:.10g}, {e:.10g}]"
                       for r, a, b, c, e in zip(px.radii, px.values, px.uppers, py.values,
                                                py.uppers))
    if np.all(signs == -1):
        verdict, reason = "flatter", f"proven V(x, r) < V(y, r) at every radius ({proven})"
    elif np.all(signs == 1):
        verdict, reason = "sharper", f"proven V(x, r) > V(y, r) at every radius ({proven})"
    else:
        verdict, reason = "undetermined", (
            f"not separated at every radius; gaps reached {[float(f'{g:.3g}') for g in 2 * tol]}"
            f" ({proven})")
    return Comparison(verdict, px.radii, px, py, d, tol, None, _leading(px, py), reason)


@dataclass(frozen=True)
class Ranking:
    """Points ordered from flattest to sharpest; ``groups`` holds indices of points that
    are equivalent (ties), ``verdicts[i][j]`` the verdict of point i relative to j."""

    groups: list
    verdicts: list
    profiles: list = field(repr=False)


def rank_minima(f: Any, points: Any, radii: Any = None, *, rtol: float = 1e-10,
                **kwargs) -> Ranking:
    """Order points by the germ preorder (flattest first), ties grouped.

    >>> f = lambda y: y[1] ** 2 + y[0] ** 2 * y[1] ** 4
    >>> rank_minima(f, [[2.0, 0.0], [0.0, 0.0], [-2.0, 0.0]]).groups
    [[1], [0, 2]]
    """
    points = [np.asarray(p, dtype=float) for p in points]
    if radii is None:
        scale = max(float(np.max(np.abs(p))) for p in points)
        radii = default_radii(None, r_max=0.1 * (1.0 + scale))
    profiles = [flatness_profile(f, p, radii, **kwargs) for p in points]
    m = len(points)
    verdicts = [[verdict_from_profiles(profiles[i], profiles[j], rtol=rtol).verdict
                 if i != j else "equivalent" for j in range(m)] for i in range(m)]
    # group equivalents, then order groups by the number of points they are flatter than
    groups: list[list[int]] = []
    for i in range(m):
        for grp in groups:
            if verdicts[i][grp[0]] == "equivalent":
                grp.append(i)
                break
        else:
            groups.append([i])
    score = lambda grp: -sum(v == "flatter" for v in verdicts[grp[0]])
    groups.sort(key=score)
    return Ranking(groups, verdicts, profiles)


@dataclass(frozen=True)
class FlatMinimumResult:
    """Whether ``x`` is a flat minimum, with its evidence: whether x is a local minimizer
    (``local_min``, with ``descent`` the largest decrease of f found near x), the nearby
    minimizers found and the verdict of x relative to each."""

    is_flat: bool
    local_min: bool
    descent: float
    neighbours: np.ndarray
    verdicts: list
    reason: str

    def __bool__(self) -> bool:
        return self.is_flat


def _local_minimizers(f, xf, radius, n_samples, seed):
    fun = jax.jit(lambda y: f(y))
    grad = jax.jit(jax.grad(lambda y: f(y)))
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(n_samples):
        u = rng.standard_normal(xf.size)
        y0 = np.asarray(xf) + radius * rng.uniform() ** (1 / xf.size) * u / np.linalg.norm(u)
        res = minimize(lambda y: float(fun(y)), y0, jac=lambda y: np.asarray(grad(y)),
                       method="BFGS", options={"gtol": 1e-12, "maxiter": 2000})
        if np.linalg.norm(res.x - xf) <= 2 * radius:
            found.append(res.x)
    return np.array(found).reshape(-1, xf.size)


def is_flat_minimum(f: Any, x: Any, *, neighbours: Any = None, radius: float = 0.5,
                    n_samples: int = 8, radii: Any = None, seed: int = 0,
                    rtol: float = 1e-10) -> FlatMinimumResult:
    """Is ``x`` a flat minimum of f (SPEC section 5)?

    1. x is a local minimizer: the largest decrease of f on small balls around x
       (maximal variation of ``-f``) is at rounding level.
    2. Local minimizers near x: the given ``neighbours`` (for instance minimizers the user
       knows), or found by BFGS from ``n_samples`` points drawn in ``B(x, radius)``.
    3. x is compared with each by :func:`compare`; x is flat when none is found flatter
       (comparisons left undetermined are counted in ``reason`` and listed in
       ``verdicts``).

    >>> f = lambda y: y[1] ** 2 + y[0] ** 2 * y[1] ** 4
    >>> bool(is_flat_minimum(f, [0.0, 0.0])), bool(is_flat_minimum(f, [1.0, 0.0]))
    (True, False)
    """
    from ._variation import max_variation

    obj, xf = as_objective(f, x)
    fx = float(obj.fun(xf))
    descent = max(max_variation(lambda y: -obj.fun(y), xf, r).value for r in (1e-2, 1e-3))
    local_min = descent <= 1e3 * EPS * (1.0 + abs(fx))
    if not local_min:
        return FlatMinimumResult(False, False, descent, np.zeros((0, xf.size)), [],
                                 f"x is not a local minimizer: f decreases by {descent:.3g} "
                                 "within distance 0.01")
    if neighbours is None:
        pts = _local_minimizers(obj.fun, xf, radius, n_samples, seed)
    else:
        pts = np.asarray(neighbours, dtype=float).reshape(-1, xf.size)
    if radii is None:
        scale = max([float(np.max(np.abs(xf)))] + [float(np.max(np.abs(p))) for p in pts])
        radii = default_radii(None, r_max=0.1 * (1.0 + scale))
    px = flatness_profile(obj.fun, xf, radii)
    verdicts = [verdict_from_profiles(px, flatness_profile(obj.fun, jnp.asarray(p), radii),
                                      rtol=rtol).verdict for p in pts]
    flatter_found = [i for i, v in enumerate(verdicts) if v == "sharper"]
    undetermined = [i for i, v in enumerate(verdicts) if v == "undetermined"]
    if flatter_found:
        reason = f"{len(flatter_found)} nearby minimizer(s) are flatter than x"
    elif undetermined:
        reason = f"x is at least as flat as the others, {len(undetermined)} undetermined"
    else:
        reason = f"x is at least as flat as all {len(pts)} nearby minimizers"
    return FlatMinimumResult(not flatter_found, True, descent, pts,
                             verdicts, reason)
