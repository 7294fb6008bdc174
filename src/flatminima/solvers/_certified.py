"""Certified maximal variation for small problems: branch and bound over interval
enclosures, returning an interval ``[value, upper]`` proven to contain ``V(x, r)``.

The ball ``B = {y : ||(y - x) / w|| <= r}`` (l2 or linf, ``w = 1`` unless weighted) is
covered by boxes, the first one the bounding box of B. For each box ``Y``:

* boxes outside B are dropped; the rest are bounded by the smaller of the natural
  interval enclosure of f over Y and a mean-value form centred at a point ``p`` of Y
  (``p`` the centre, or its projection onto B when the centre is outside), with the
  interval gradient ``G`` of f over Y (:mod:`flatminima._interval`);
* l2 balls: the mean-value form is applied to the Lagrangian
  ``L = f + mu (r^2 - ||(y - x) / w||^2)``, which is ``>= f`` on B for every ``mu >= 0``.
  With ``mu`` the multiplier read off ``G`` at p (``grad f = 2 mu (y - x) / w^2`` at a
  maximizer on the sphere), ``grad L`` vanishes at the maximizer, so the bound's excess
  over the true maximum on a box of width h is ``O(h^2)`` instead of ``O(h)``;
* monotonicity: a box inside the open ball with ``0 not in G_i`` holds no maximizer
  (moving along ``e_i`` increases f and stays in B): dropped. For linf, such a box
  touching the face of B that f increases towards is reduced to that face, otherwise
  dropped.

The box with the largest bound is bisected along its widest side until the largest
bound is within ``max(atol, rtol V)`` of the best lower bound, or a budget runs out.
Lower bounds are values of f, in interval arithmetic, at points proven to lie in B: the
projected-ascent maximizer, then the points p met on the way. The result's ``value`` is
the lower endpoint of ``f(y) - f(x)`` at the best point y, ``upper`` the upper endpoint
of (largest bound) ``- f(x)``; both rounded outwards to floats.

Reference: R. B. Kearfott, Rigorous Global Search: Continuous Problems, Kluwer, 1996
(branch and bound with interval enclosures, mean-value forms, monotonicity tests).
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from flint import ctx

from .._interval import arb, interval, interval_function, lower_float, upper_float
from .._interval._arith import integer_pow
from .._interval._sympy import SymbolicFunction
from .._norms import Norm
from .._objective import Array, Objective
from .._results import VariationResult
from ._ascent import ProjectedAscent

EPS = np.finfo(float).eps


@dataclass(frozen=True)
class CertifiedProgress:
    """State of a running certified solve, passed to a ``progress`` callback: proven
    ``lower <= max f over the ball - f(x) <= upper``."""

    boxes: int
    lower: float
    upper: float
    seconds: float


class _Ball:
    """The ball in interval arithmetic: membership tests and the constraint function."""

    def __init__(self, norm: Norm, x: np.ndarray, radius: float):
        self.kind = norm.kind
        self.x = np.asarray(x, dtype=float)
        self.w = np.ones_like(self.x) if norm.scale is None else np.asarray(norm.scale, float)
        self.xa = [arb(v) for v in self.x]
        self.wa = [arb(v) for v in self.w]
        self.ra = arb(radius)
        self.radius = radius
        reach = [self.ra * w for w in self.wa]
        self.lo = np.array([lower_float(xi - h) for xi, h in zip(self.xa, reach)])
        self.hi = np.array([upper_float(xi + h) for xi, h in zip(self.xa, reach)])
        # just inside the faces: a float <= x_i + r w_i and one >= x_i - r w_i
        self.face_hi = np.array([lower_float(xi + h) for xi, h in zip(self.xa, reach)])
        self.face_lo = np.array([upper_float(xi - h) for xi, h in zip(self.xa, reach)])

    def scaled(self, Y):
        return [(yi - xi) / wi for yi, xi, wi in zip(Y, self.xa, self.wa)]

    def sq_norm(self, Y):
        """``||(Y - x) / w||_2^2`` enclosed over the box (or at a point)."""
        total = arb(0)
        for zi in self.scaled(Y):
            total += integer_pow(zi, 2)
        return total

    def contains(self, y) -> bool:
        """Proven membership of the float point ``y``."""
        Y = [arb(v) for v in y]
        if self.kind == "linf":
            return all(abs(z) <= self.ra for z in self.scaled(Y))
        return bool(self.sq_norm(Y) <= self.ra * self.ra)

    def inward(self, c: np.ndarray) -> np.ndarray:
        """A float point of the ball near ``c`` (projection, then shrunk until proven)."""
        u = (c - self.x) / self.w
        size = np.max(np.abs(u)) if self.kind == "linf" else np.linalg.norm(u)
        if size <= self.radius:
            y = c.copy()
        elif self.kind == "linf":
            y = self.x + self.w * np.clip(u, -self.radius, self.radius)
        else:
            y = self.x + self.w * u * (self.radius / size)
        for k in range(60):
            if self.contains(y):
                return y
            y = self.x + (y - self.x) * (1 - 4 * EPS * 2**k)
        return self.x.copy()


@dataclass(frozen=True)
class Certified:
    """Branch and bound with interval arithmetic: a proven enclosure of ``V(x, r)``.

    For small problems (n up to about 6) and JAX functions built from the primitives of
    :mod:`flatminima._interval` (or a :class:`SymbolicFunction`); l2, linf and weighted l2
    balls. See the module docstring for the method.

    Args:
        rtol: relative gap: stop when ``upper - value <= max(atol, rtol * value)``.
        atol: absolute gap of the same test.
        max_boxes: budget of boxes evaluated.
        max_seconds: budget of time.
        precision: working precision of the ball arithmetic, in bits.
        ascent: start the lower bound from :class:`ProjectedAscent` (compiled once per
            function); False leaves the lower bound to the points met by the boxes.
        progress: None, True (a progress line on the terminal) or a callable receiving
            :class:`CertifiedProgress` about four times a second and once at the end.

    >>> import flatminima as fm
    >>> res = fm.max_variation(lambda y: y[1] ** 2 + y[0] ** 2 * y[1] ** 4, [1.0, 0.0], 0.1,
    ...                        solver="certified")
    >>> print(f"{res.value:.10f} {res.upper:.10f}")  # r^2 + r^4 + O(r^8), proven
    0.0101000098 0.0101000098
    """

    rtol: float = 1e-9
    atol: float = 0.0
    max_boxes: int = 200_000
    max_seconds: float = 60.0
    precision: int = 106
    ascent: bool = True
    progress: bool | Callable[[CertifiedProgress], Any] | None = None

    def __post_init__(self):
        for name in ("rtol", "atol", "max_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
        if not (isinstance(self.max_boxes, int) and self.max_boxes >= 1):
            raise ValueError(f"max_boxes must be a positive integer, got {self.max_boxes!r}.")
        if not (isinstance(self.precision, int) and self.precision >= 53):
            raise ValueError(f"precision must be an integer >= 53 (bits), got {self.precision!r}.")

    def solve(self, obj: Objective, x: Array, radius: float, norm: Norm, seed: int = 0):
        if not obj.is_jax:
            raise TypeError("the certified solver reads f's operations: pass a JAX function "
                            "or a SymbolicFunction, not an object with value_and_grad.")
        user_f = obj.source
        source = user_f if isinstance(user_f, SymbolicFunction) else obj.fun
        fn = interval_function(source, obj.n)
        start, n_start = np.asarray(x, dtype=float), 0
        if self.ascent:
            res = ProjectedAscent().solve(obj, x, radius, norm, seed)
            start, n_start = np.asarray(res.argmax, dtype=float), res.n_evals
        with ctx.workprec(self.precision):
            return _BranchAndBound(self, fn, _Ball(norm, np.asarray(x), radius)).run(
                start, norm.name, n_start)


def _reporter(progress):
    """``(show, stop)`` for the ``progress`` option."""
    if progress is None or progress is False:
        return None, lambda: None
    if callable(progress):
        return progress, lambda: None
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                   transient=True)
    task = bar.add_task("certified", total=None)
    bar.start()

    def show(info):
        bar.update(task, description=f"certified: V in [{info.lower:.12g}, {info.upper:.12g}]"
                                     f" after {info.boxes} boxes")

    return show, bar.stop


class _BranchAndBound:
    def __init__(self, options: Certified, fn, ball: _Ball):
        self.opt, self.fn, self.ball = options, fn, ball
        self.n_evals = 1
        self.fx = fn.point(ball.xa)
        if not self.fx.is_finite():
            raise ValueError("f(x) is not finite in interval arithmetic; x must be a point "
                             "where f is defined.")
        self.best_y, self.best_f = ball.x.copy(), self.fx
        self.best_lower = lower_float(self.fx)

    def offer(self, y: np.ndarray, fy) -> None:
        """Record f(y) (a ball) at a point y proven to lie in the ball."""
        if fy.is_finite() and fy.lower() > self.best_f.lower():
            self.best_y, self.best_f = y, fy
            self.best_lower = lower_float(fy)

    def bound(self, lo: np.ndarray, hi: np.ndarray):
        """``(upper bound of f over box ∩ ball, lo, hi)`` (the box possibly reduced to a
        face), or None when the box holds no maximizer."""
        b = self.ball
        Y = [interval(a, c) for a, c in zip(lo, hi)]
        inside = False
        if b.kind == "l2":
            d, r2 = b.sq_norm(Y), b.ra * b.ra
            if d > r2:
                return None
            inside = bool(d < r2)
        jet = self.fn.jet(Y)
        self.n_evals += 1
        G = jet.g if jet.g is not None and all(g.is_finite() for g in jet.g) else None
        if G is not None and b.kind == "linf":
            for i, g in enumerate(G):
                if g > 0 and hi[i] >= b.hi[i]:  # f increases towards the upper face
                    if lo[i] < b.face_hi[i]:
                        return self.bound(np.where(np.arange(lo.size) == i, b.face_hi, lo), hi)
                elif g < 0 and lo[i] <= b.lo[i]:
                    if hi[i] > b.face_lo[i]:
                        return self.bound(lo, np.where(np.arange(lo.size) == i, b.face_lo, hi))
                elif g > 0 or g < 0:
                    return None
        elif G is not None and inside and any(g > 0 or g < 0 for g in G):
            return None
        c = lo + (hi - lo) / 2
        p = b.inward(c)
        feasible = bool(np.all((p >= lo) & (p <= hi)))
        p = p if feasible else c
        P = [arb(v) for v in p]
        fp = self.fn.point(P)
        self.n_evals += 1
        if feasible:
            self.offer(p, fp)
        upper = upper_float(jet.v)
        if G is not None:
            total = fp
            grads = list(G)
            if b.kind == "l2":
                a = (p - b.x) / b.w**2
                slope = float(np.dot([float(g.mid()) for g in G], a))
                mu = arb(max(0.0, slope / (2 * float(np.dot(a, a)))) if np.any(a) else 0.0)
                total += mu * (b.ra * b.ra - b.sq_norm(P))
                grads = [g - 2 * mu * (yi - xi) / (wi * wi)
                         for g, yi, xi, wi in zip(G, Y, b.xa, b.wa)]
            for g, yi, pi in zip(grads, Y, P):
                total += g * (yi - pi)
            upper = min(upper, upper_float(total))
        return upper, lo, hi

    def run(self, y_start: np.ndarray, norm_name: str, n_start: int) -> VariationResult:
        opt, b = self.opt, self.ball
        t0 = time.perf_counter()
        if b.contains(y_start):
            self.offer(y_start, self.fn.point([arb(v) for v in y_start]))
            self.n_evals += 1
        show, stop = _reporter(opt.progress)
        heap: list = []
        count, frozen, boxes, last_shown = 0, -math.inf, 0, t0
        reason = "every box was discarded"

        def push(lo, hi):
            nonlocal count
            res = self.bound(lo, hi)
            if res is not None and res[0] > self.best_lower:
                count += 1
                heapq.heappush(heap, (-res[0], count, res[1], res[2]))

        push(b.lo, b.hi)
        try:
            while heap:
                top = -heap[0][0]
                if top <= self.best_lower:
                    heapq.heappop(heap)
                    continue
                v_low = self.best_lower - float(self.fx.mid())
                if top - self.best_lower <= max(opt.atol, opt.rtol * abs(v_low)):
                    reason = "the gap reached the tolerance"
                    break
                elapsed = time.perf_counter() - t0
                if boxes >= opt.max_boxes or elapsed >= opt.max_seconds:
                    reason = (f"the budget ran out (max_boxes={opt.max_boxes}, "
                              f"max_seconds={opt.max_seconds:g})")
                    break
                if show is not None and elapsed - (last_shown - t0) >= 0.25:
                    last_shown = time.perf_counter()
                    show(CertifiedProgress(boxes, max(v_low, 0.0), top - float(self.fx.mid()),
                                           elapsed))
                _, _, lo, hi = heapq.heappop(heap)
                i = int(np.argmax((hi - lo) / b.w))
                mid = lo[i] + (hi[i] - lo[i]) / 2
                if not lo[i] < mid < hi[i]:  # at floating-point resolution
                    frozen = max(frozen, top)
                    continue
                boxes += 1
                push(lo, np.where(np.arange(lo.size) == i, mid, hi))
                push(np.where(np.arange(lo.size) == i, mid, lo), hi)
            if show is not None:
                top = -heap[0][0] if heap else self.best_lower
                show(CertifiedProgress(boxes, max(self.best_lower - float(self.fx.mid()), 0.0),
                                       top - float(self.fx.mid()), time.perf_counter() - t0))
        finally:
            stop()
        return self._result(heap, frozen, boxes, reason, time.perf_counter() - t0,
                            norm_name, n_start)

    def _result(self, heap, frozen, boxes, reason, seconds, norm_name, n_start):
        top = max([-heap[0][0]] if heap else [], default=-math.inf)
        top = max(top, frozen, upper_float(self.best_f))
        upper = upper_float(arb(top) - self.fx)
        at_x = np.array_equal(self.best_y, self.ball.x)
        value = 0.0 if at_x else max(0.0, lower_float(self.best_f - self.fx))
        upper = max(upper, value)
        if frozen > -math.inf and reason != "the gap reached the tolerance":
            reason += "; some boxes reached floating-point resolution"
        rel = (upper - value) / value if value > 0 else math.inf
        message = (f"proven: {value!r} <= V <= {upper!r} (gap {upper - value:.3g}, relative "
                   f"{rel:.3g}); {reason}; {boxes} boxes split in {seconds:.2f} s.")
        return VariationResult(value=value, argmax=np.asarray(self.best_y), upper=upper,
                               method="certified", n_evals=n_start + self.n_evals,
                               radius=self.ball.radius, norm=norm_name, n_iter=boxes,
                               message=message)
