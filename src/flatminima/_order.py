"""Comparing points by flatness: the germ preorder, ranking, flat minima (SPEC 4-5)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import minimize

from ._objective import as_objective
from ._profile import Profile, default_radii, flatness_profile
from ._report import result_type
from ._results import Comparison, CriticalComparison, in_structure
from ._warn import warn
from ._x64 import float64
from .solvers import Certified

VERDICTS = ("flatter", "sharper", "equivalent", "undetermined")
# Default relative resolution of V, in units of the machine epsilon of the precision f is
# computed in. V(x, r) = f(y) - f(x) carries the rounding of both evaluations, eps times
# the size of f's intermediate sums, which at small radii exceeds V itself (measured: up
# to 2.7e2 eps relative to V at radii 1e-3 to 1e-1, trained tanh network in float32),
# and the ascent stops where its steps no longer change f in that precision. 4.5e5 eps
# is 1e-10 in float64 and 5.4e-2 in float32: points equal up to rounding (exchanged by an
# exact symmetry) come out equivalent; pass rtol to resolve finer differences.
RTOL_EPS = 1e-10 / float(np.finfo(np.float64).eps)
# x is not critical at the scale of the radii when ||grad f(x)||_* r exceeds this share
# of V(x, r) at the smallest radius.
FIRST_ORDER_SHARE = 0.5


def _leading(px: Profile, py: Profile, rtol: float) -> str:
    if not (np.isfinite(px.order) and np.isfinite(py.order)):
        return "undetermined"
    da = px.order - py.order
    if abs(da) > px.order_uncertainty + py.order_uncertainty + 1e-9:
        return "flatter" if da > 0 else "sharper"
    if px.order_uncertainty + py.order_uncertainty > 0.1:
        return "undetermined"
    dc = px.coefficient - py.coefficient
    if abs(dc) > px.coefficient_uncertainty + py.coefficient_uncertainty + 10 * rtol * max(
            abs(px.coefficient), abs(py.coefficient)):
        return "flatter" if dc < 0 else "sharper"
    return "equivalent"


def _read(radii, d, tol, n_decide):
    """Verdict from the signs of ``d`` beyond ``tol`` at the ``n_decide`` smallest radii,
    and the largest radius where the sign changes."""
    sign = np.where(d < -tol, -1, np.where(d > tol, 1, 0))
    crossing = None
    for i in range(len(sign) - 1):
        if sign[i] != 0 and sign[i + 1] != 0 and sign[i] != sign[i + 1]:
            crossing = float(np.sqrt(radii[i] * radii[i + 1]))
            break
    tail = sign[-n_decide:]
    if np.all(tail == -1):
        return "flatter", crossing
    if np.all(tail == 1):
        return "sharper", crossing
    return ("equivalent" if np.all(tail == 0) else "undetermined"), crossing


def verdict_from_profiles(px: Profile, py: Profile, *, rtol: float | None = None,
                          n_decide: int = 3) -> Comparison:
    """The germ-preorder verdict from two profiles on the same radii (``rtol=None``:
    ``4.5e5 eps`` of the coarser precision, 1e-10 in float64; see :class:`Comparison`)."""
    if not np.array_equal(px.radii, py.radii):
        raise ValueError("the two profiles must share their radii.")
    coarse = px if px.eps >= py.eps else py
    eps = coarse.eps
    rtol = RTOL_EPS * eps if rtol is None else float(rtol)
    r = px.radii
    d = px.values - py.values
    # f(y) - f(x) loses about eps |f(x)| to cancellation
    atol = 1e2 * eps * (abs(px.fx) + abs(py.fx)) + 1e-300
    tol = rtol * np.maximum(px.values, py.values) + atol
    verdict, crossing = _read(r, d, tol, n_decide)
    reason = {
        "flatter": "V(x, r) < V(y, r) at the smallest radii",
        "sharper": "V(x, r) > V(y, r) at the smallest radii",
        "equivalent": f"|V(x, r) - V(y, r)| <= {rtol:.3g} max V + {atol:.1e} at the smallest "
                      f"radii ({coarse.precision})",
        "undetermined": "the sign of V(x, r) - V(y, r) is not resolved at the smallest radii; "
                        "try smaller radii or a more accurate solver",
    }[verdict]
    gx, gy = px.gradient_norm, py.gradient_norm
    share = tuple(float(g * r[-1] / v) if v > 0 else (np.inf if g > 0 else 0.0)
                  for g, v in ((gx, px.values[-1]), (gy, py.values[-1])))
    dominates = any(s > FIRST_ORDER_SHARE and p.first_order for s, p in zip(share, (px, py)))
    if dominates:
        reason += (f"; at these radii V is dominated by ||grad f||_* r (gradient norms "
                   f"{gx:.3g} at x, {gy:.3g} at y): the verdict ranks gradient norms")
    dc = d - (gx - gy) * r
    tol_c = tol + rtol * (gx + gy) * r
    curvature, _ = _read(r, dc, tol_c, n_decide)
    return Comparison(verdict, r, px, py, d, tol, crossing, _leading(px, py, rtol), reason,
                      coarse.precision, rtol, (gx, gy), share, dominates, curvature, dc, tol_c)


@float64
def compare(f: Any, x: Any, y: Any, radii: Any = None, *, rtol: float | None = None,
            n_decide: int = 3, critical: bool = False, certified: bool = False,
            **kwargs) -> Comparison:
    """Compare ``x`` with ``y`` in the germ preorder: is x flatter than y?

    ``x <= y`` iff ``V(x, r) <= V(y, r)`` for all small r (SPEC 4). Both profiles are
    evaluated on the same radii (default: geometric grid from ``0.1 (1 + max ||.||_inf)``
    down 2.5 decades) with solvers that converge to near the precision of f.

    Args:
        f, x, y: the objective and two points of the same structure (arrays or pytrees).
        radii: radii of the profiles; the verdict is read on the ``n_decide`` smallest.
        rtol: relative resolution of V; default ``4.5e5 eps`` of the precision f is
            computed in (``1e-10`` in float64, ``5.4e-2`` in float32).
        critical: also compare the critical points reached by local minimization (BFGS)
            from x and from y (``.critical``); two more profiles.
        kwargs: passed to :func:`flatness_profile` (``norm``, ``solver``, ``seed``).

    Returns:
        :class:`Comparison`, ``.verdict`` in {"flatter", "sharper", "equivalent",
        "undetermined"}, x relative to y. When x or y is not critical at the scale of the
        radii a ``RuntimeWarning`` says so and ``.curvature_verdict`` gives the verdict on
        ``V - ||grad f||_* r``.

    Reference: C. Josz, On the geometry of flat minima, arXiv:2509.11386, 2025.

    ``certified=True``: a verdict proven at the radii it states, from the certified
    solver (:class:`flatminima.solvers.Certified`, small n): see :func:`_certified_compare`.

    >>> f = lambda y: y[1] ** 2 + y[0] ** 2 * y[1] ** 4
    >>> compare(f, [0.0, 0.0], [1.0, 0.0]).verdict
    'flatter'
    """
    if certified:
        return _certified_compare(f, x, y, radii, **kwargs)
    obj, xf, yf = _two_points(f, x, y)
    if radii is None:
        radii = _default_radii([xf, yf])
    px = flatness_profile(f, x, radii, **kwargs)
    py = flatness_profile(f, y, radii, **kwargs)
    comparison = verdict_from_profiles(px, py, rtol=rtol, n_decide=n_decide)
    if comparison.first_order_dominates:
        warn(
            "x or y is not a critical point at the scale of the radii (||grad f||_* r is "
            f"{max(comparison.first_order_share):.0%} of V at the smallest radius): the "
            "verdict ranks gradient norms. See .curvature_verdict (V - ||grad f||_* r), or "
            "pass critical=True to compare the nearby critical points.",
            RuntimeWarning)
    if critical:
        comparison = replace(comparison, critical=_compare_critical(
            f, obj, xf, yf, radii, rtol=comparison.rtol, n_decide=n_decide, **kwargs))
    return comparison


def _two_points(f, x, y):
    """The objective at x and both flat points, checked to have the same size."""
    obj, xf = as_objective(f, x, name="f")
    _, yf = as_objective(f, y, name="f")
    if xf.shape != yf.shape:
        raise ValueError(f"x and y have {xf.size} and {yf.size} coordinates; pass points of "
                         "the same shape.")
    return obj, xf, yf


def _default_radii(flats):
    scale = max(float(jnp.max(jnp.abs(p))) for p in flats)
    return default_radii(None, r_max=0.1 * (1.0 + scale))


def _bfgs(value_and_grad, y0):
    """Local minimization from ``y0`` by scipy BFGS; ``value_and_grad`` jitted once by the
    caller for all its starts."""

    def fg(y):
        v, g = value_and_grad(jnp.asarray(y))
        return float(v), np.asarray(g, dtype=float)

    res = minimize(fg, np.asarray(y0, dtype=float), jac=True, method="BFGS",
                   options={"gtol": 1e-12, "maxiter": 5000})
    return res.x


def _compare_critical(f, obj, xf, yf, radii, **kwargs) -> CriticalComparison:
    ends = []
    value_and_grad = jax.jit(jax.value_and_grad(obj.fun))
    for start in (xf, yf):
        end = _bfgs(value_and_grad, start)
        f0, f1 = float(value_and_grad(start)[0]), float(value_and_grad(jnp.asarray(end))[0])
        grad = float(jnp.linalg.norm(value_and_grad(jnp.asarray(end))[1]))
        ends.append((end, float(np.linalg.norm(end - np.asarray(start))), f0 - f1, grad,
                     grad <= np.sqrt(obj.eps) * (1.0 + abs(f1))))
    (xs, mx, dx, gx, okx), (ys, my, dy, gy, oky) = ends
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # its share is reported in the result
        comp = compare(f, in_structure(obj.unravel, xs), in_structure(obj.unravel, ys), radii,
                       **kwargs)
    missed = [name for name, ok in (("x", okx), ("y", oky)) if not ok]
    message = ("both minimizations reached a critical point" if not missed else
               f"the minimization from {' and '.join(missed)} stopped with a gradient above "
               f"sqrt(eps) (1 + |f|) = {np.sqrt(obj.eps):.1e} (1 + |f|); compare those points "
               "with care")
    if comp.first_order_dominates:
        message += "; the end points are still not critical at the scale of the radii"
    return CriticalComparison(comp.verdict, comp, comp.profile_x.point, comp.profile_y.point,
                              mx, my, dx, dy, gx, gy, not missed, message)


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
    _, xf, yf = _two_points(f, x, y)
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
    return Comparison(verdict, px.radii, px, py, d, tol, None, _leading(px, py, RTOL_EPS * px.eps), reason,
                      px.precision)


@result_type()
@dataclass(frozen=True)
class Ranking:
    """Points ordered from flattest to sharpest; ``groups`` holds indices of points that
    are equivalent (ties), ``verdicts[i][j]`` the verdict of point i relative to j."""

    groups: list
    verdicts: list
    profiles: list = field(repr=False)


@float64
def rank_minima(f: Any, points: Any, radii: Any = None, *, rtol: float | None = None,
                **kwargs) -> Ranking:
    """Order points by the germ preorder (flattest first), ties grouped.

    Args:
        points: a sequence of points of the same structure (arrays, dicts or tuples of
            arrays); a 2-D array is read as one point per row.
        rtol: as in :func:`compare` (default from the precision f is computed in).

    >>> f = lambda y: y[1] ** 2 + y[0] ** 2 * y[1] ** 4
    >>> rank_minima(f, [[2.0, 0.0], [0.0, 0.0], [-2.0, 0.0]]).groups
    [[1], [0, 2]]
    """
    points = list(points)
    if len(points) < 2:
        raise ValueError(f"rank_minima needs at least two points, got {len(points)}.")
    flats = [as_objective(f, p, name="f")[1] for p in points]
    if len({p.size for p in flats}) > 1:
        raise ValueError("the points have different numbers of coordinates "
                         f"({sorted({p.size for p in flats})}); pass points of one structure.")
    if radii is None:
        radii = _default_radii(flats)
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


@result_type()
@dataclass(frozen=True)
class FlatMinimumResult:
    """Whether ``x`` is a flat minimum, with its evidence: whether x is a local minimizer
    (``local_min``, with ``descent`` the largest decrease of f found near x), the nearby
    minimizers found (``neighbours``, in the structure of x; ``neighbours_flat`` one flat
    row each) and the verdict of x relative to each."""

    is_flat: bool
    local_min: bool
    descent: float
    neighbours: list
    verdicts: list
    reason: str
    neighbours_flat: np.ndarray | None = field(default=None, repr=False)

    def __bool__(self) -> bool:
        return self.is_flat


def _local_minimizers(fun, xf, radius, n_samples, seed):
    rng = np.random.default_rng(seed)
    value_and_grad = jax.jit(jax.value_and_grad(fun))
    found = []
    for _ in range(n_samples):
        u = rng.standard_normal(xf.size)
        y0 = np.asarray(xf) + radius * rng.uniform() ** (1 / xf.size) * u / np.linalg.norm(u)
        end = _bfgs(value_and_grad, y0)
        if np.linalg.norm(end - xf) <= 2 * radius:
            found.append(end)
    return np.array(found).reshape(-1, xf.size)


def _flatten_like(point, treedef, n, i):
    """Neighbour ``i`` as a flat vector: in the structure of x, or already flat (n,)."""
    if isinstance(point, (list, tuple)) and all(np.ndim(v) == 0 for v in point):
        point = np.asarray(point, dtype=float)  # a list of numbers is a vector
    leaves, tdef = jax.tree_util.tree_flatten(point)
    if tdef != treedef and not (len(leaves) == 1 and np.size(leaves[0]) == n):
        raise ValueError(f"neighbours[{i}] has structure {tdef}, x has {treedef}; pass "
                         "neighbours shaped like x (or as flat vectors).")
    flat = np.concatenate([np.ravel(np.asarray(leaf, dtype=float)) for leaf in leaves])
    if flat.size != n:
        raise ValueError(f"neighbours[{i}] has {flat.size} coordinates, x has {n}.")
    return flat


@float64
def is_flat_minimum(f: Any, x: Any, *, neighbours: Any = None, radius: float = 0.5,
                    n_samples: int = 8, radii: Any = None, seed: int = 0,
                    rtol: float | None = None) -> FlatMinimumResult:
    """Is ``x`` a flat minimum of f (SPEC section 5)?

    1. x is a local minimizer: the largest decrease of f on small balls around x
       (maximal variation of ``-f``) is at rounding level (``1e3 eps (1 + |f(x)|)``,
       ``eps`` of the precision f is computed in).
    2. Local minimizers near x: the given ``neighbours`` (a sequence of points shaped
       like x, or flat vectors; for instance minimizers the user knows), or found by BFGS
       from ``n_samples`` points drawn in ``B(x, radius)``.
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
    if neighbours is not None:
        treedef = jax.tree_util.tree_structure(obj.unravel(xf))
        pts = np.array([_flatten_like(p, treedef, xf.size, i)
                        for i, p in enumerate(neighbours)]).reshape(-1, xf.size)
    descent = max(max_variation(lambda y: -obj.fun(y), xf, r).value for r in (1e-2, 1e-3))
    local_min = descent <= 1e3 * obj.eps * (1.0 + abs(fx))
    if not local_min:
        return FlatMinimumResult(False, False, descent, [], [],
                                 f"x is not a local minimizer: f decreases by {descent:.3g} "
                                 "within distance 0.01", np.zeros((0, xf.size)))
    if neighbours is None:
        pts = _local_minimizers(obj.fun, xf, radius, n_samples, seed)
    if radii is None:
        radii = _default_radii([xf, *pts])
    structured = [in_structure(obj.unravel, p) for p in pts]
    px = flatness_profile(f, x, radii)
    verdicts = [verdict_from_profiles(px, flatness_profile(f, p, radii), rtol=rtol).verdict
                for p in structured]
    flatter_found = [i for i, v in enumerate(verdicts) if v == "sharper"]
    undetermined = [i for i, v in enumerate(verdicts) if v == "undetermined"]
    if flatter_found:
        reason = f"{len(flatter_found)} nearby minimizer(s) are flatter than x"
    elif undetermined:
        reason = f"x is at least as flat as the others, {len(undetermined)} undetermined"
    else:
        reason = f"x is at least as flat as all {len(pts)} nearby minimizers"
    return FlatMinimumResult(not flatter_found, True, descent, structured, verdicts, reason,
                             pts)
