"""Interval arithmetic on Arb balls, and on jets (a ball with a ball gradient).

Each rule takes balls (``flint.arb``) or :class:`Jet` and returns an enclosure: for every
choice of the real inputs in their balls, the exact result lies in the returned ball,
and the returned gradient encloses the gradient (Clarke's generalized gradient at
kinks). Constants are plain balls (zero gradient). ``g = None`` means "no bound on the
gradient" (the function may jump on the box).
"""

from __future__ import annotations

import math

from flint import arb

INF = float("inf")


def interval(lo: float, hi: float):
    """The interval ``[lo, hi]`` (floats, taken exactly) as an Arb ball containing it."""
    return arb(lo).union(arb(hi))


def upper_float(a) -> float:
    """A float ``>=`` every point of the ball ``a`` (``inf`` when ``a`` is not finite)."""
    if not a.is_finite():
        return INF
    u = float(a.upper())
    while not arb(u) >= a:
        u = math.nextafter(u, INF)
    return u


def lower_float(a) -> float:
    """A float ``<=`` every point of the ball ``a`` (``-inf`` when not finite)."""
    return -upper_float(-a)


class Jet:
    """A ball ``v`` enclosing a value and a tuple ``g`` of balls enclosing its gradient
    (``None``: unbounded)."""

    __slots__ = ("v", "g")

    def __init__(self, v, g):
        self.v, self.g = v, g

    def __repr__(self) -> str:
        return f"Jet({self.v}, {self.g})"


def value(a):
    return a.v if isinstance(a, Jet) else a


def _scale(g, c):
    return None if g is None else tuple(c * gi for gi in g)


def chain(a, fun, derivative):
    """``phi(a)`` for a scalar function with ``phi = fun`` and ``phi' = derivative``."""
    if not isinstance(a, Jet):
        return fun(a)
    return Jet(fun(a.v), None if a.g is None else _scale(a.g, derivative(a.v)))


def add(a, b):
    ja, jb = isinstance(a, Jet), isinstance(b, Jet)
    if ja and jb:
        g = None if a.g is None or b.g is None else tuple(p + q for p, q in zip(a.g, b.g))
        return Jet(a.v + b.v, g)
    if ja:
        return Jet(a.v + b, a.g)
    if jb:
        return Jet(a + b.v, b.g)
    return a + b


def neg(a):
    return Jet(-a.v, _scale(a.g, -1)) if isinstance(a, Jet) else -a


def sub(a, b):
    return add(a, neg(b))


def mul(a, b):
    if a is b:
        return integer_pow(a, 2)  # y * y: the square, not the product of two intervals
    ja, jb = isinstance(a, Jet), isinstance(b, Jet)
    if ja and jb:
        g = None if a.g is None or b.g is None else tuple(
            a.v * q + b.v * p for p, q in zip(a.g, b.g))
        return Jet(a.v * b.v, g)
    if ja:
        return Jet(a.v * b, _scale(a.g, b))
    if jb:
        return Jet(a * b.v, _scale(b.g, a))
    return a * b


def div(a, b):
    if isinstance(b, Jet):
        return mul(a, chain(b, lambda v: 1 / v, lambda v: -1 / (v * v)))
    return mul(a, 1 / b)


def hull(a, b):
    """A ball holding both; for jets the gradient is dropped (the two may differ: a jump)."""
    if a is b:
        return a
    if isinstance(a, Jet) or isinstance(b, Jet):
        return Jet(value(a).union(value(b)), None)
    return a.union(b)


def _ipow_value(v, k):
    if k == 0:
        return arb(1)
    if k < 0:
        return 1 / _ipow_value(v, -k)
    if k % 2:  # odd: increasing
        return (v.lower() ** k).union(v.upper() ** k)
    return (v.abs_lower() ** k).union(v.abs_upper() ** k)


def integer_pow(a, k: int):
    return chain(a, lambda v: _ipow_value(v, k), lambda v: k * _ipow_value(v, k - 1))


def _nonneg_pow(v, p):
    """``v^p`` over the points ``v >= 0`` of the ball, for a ball exponent ``p > 0``."""
    if v > 0:
        return v**p
    if v < 0 or not p > 0:
        return arb.nan()
    top = v.upper() ** p if v.upper() > 0 else arb(0)
    return arb(0).union(top)


def _pow_derivative(v, p):
    if p > 1:
        return p * _nonneg_pow(v, p - 1)
    return p * v ** (p - 1) if v > 0 else arb.nan()


def real_pow(a, p):
    """``a^p`` for a real exponent ``p`` (an integer, or ``a >= 0``, ``a > 0`` for p <= 0)."""
    if isinstance(p, Jet):
        return exp(mul(p, log(a)))
    if p.is_exact() and p.is_integer() and abs(p) < 2**31:
        return integer_pow(a, int(p.unique_fmpz()))
    return chain(a, lambda v: _nonneg_pow(v, p), lambda v: _pow_derivative(v, p))


def _sqrt_value(v):
    if v >= 0:
        return v.sqrt()
    if v < 0:
        return arb.nan()
    return arb(0).union(v.upper().sqrt())


def sqrt(a):
    return chain(a, _sqrt_value, lambda v: 1 / (2 * v.sqrt()))


def exp(a):
    return chain(a, lambda v: v.exp(), lambda v: v.exp())


def log(a):
    return chain(a, lambda v: v.log() if v > 0 else arb.nan(), lambda v: 1 / v)


def _abs_value(v):
    if v >= 0:
        return v
    if v <= 0:
        return -v
    return arb(0).union(v.abs_upper())


def _sign_hull(v):
    return arb(1) if v > 0 else arb(-1) if v < 0 else arb(-1).union(arb(1))


UNARY = {
    "neg": neg,
    "exp": exp,
    "log": log,
    "sqrt": sqrt,
    "rsqrt": lambda a: div(arb(1), sqrt(a)),
    "sin": lambda a: chain(a, lambda v: v.sin(), lambda v: v.cos()),
    "cos": lambda a: chain(a, lambda v: v.cos(), lambda v: -v.sin()),
    "tanh": lambda a: chain(a, lambda v: v.tanh(), lambda v: v.sech() ** 2),
    "logistic": lambda a: chain(a, lambda v: 1 / (1 + (-v).exp()),
                                lambda v: (v / 2).sech() ** 2 / 4),
    "log1p": lambda a: chain(a, lambda v: v.log1p() if v > -1 else arb.nan(),
                             lambda v: 1 / (1 + v)),
    "expm1": lambda a: chain(a, lambda v: v.expm1(), lambda v: v.exp()),
    "abs": lambda a: chain(a, _abs_value, _sign_hull),
    "square": lambda a: integer_pow(a, 2),
}


def maximum(a, b):
    va, vb = value(a), value(b)
    if va >= vb:
        return a
    if vb >= va:
        return b
    ja, jb = isinstance(a, Jet), isinstance(b, Jet)
    if not (ja or jb):
        return va.max(vb)
    ga = a.g if ja else tuple(arb(0) for _ in b.g or ())
    gb = b.g if jb else tuple(arb(0) for _ in a.g or ())
    g = None if ga is None or gb is None else tuple(p.union(q) for p, q in zip(ga, gb))
    return Jet(va.max(vb), g)  # Clarke: the gradient lies in the hull of both


def minimum(a, b):
    return neg(maximum(neg(a), neg(b)))


def compare(op: str, a, b):
    """Three-valued comparison: True, False, or None when undecided on the balls."""
    va, vb = value(a), value(b)
    if op in ("gt", "ge"):
        op, va, vb = {"gt": "lt", "ge": "le"}[op], vb, va
    if op == "lt":
        return True if va < vb else False if va >= vb else None
    if op == "le":
        return True if va <= vb else False if va > vb else None
    equal = True if va == vb else False if va != vb else None
    return equal if op == "eq" or equal is None else not equal


def select(pred, *cases):
    """``cases[pred]``; the hull of both when the predicate is undecided."""
    return hull(cases[0], cases[1]) if pred is None else cases[int(pred)]


BINARY = {"add": add, "sub": sub, "mul": mul, "div": div, "max": maximum, "min": minimum,
          "pow": real_pow}
