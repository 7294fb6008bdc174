"""Interval evaluation of sympy expressions (rational constants kept exact)."""

from __future__ import annotations

from typing import Any

import sympy as sp

from . import _arith as A
from ._arith import arb
from ._jaxpr import UnsupportedOperation

_FUNCS = {sp.exp: A.exp, sp.log: A.log, sp.sin: A.UNARY["sin"], sp.cos: A.UNARY["cos"],
          sp.tanh: A.UNARY["tanh"], sp.Abs: A.UNARY["abs"]}
_SUPPORTED = "+ - * /, powers, exp, log, sin, cos, tanh, Abs, Max, Min, sqrt"


class SymbolicFunction:
    """A sympy expression in ``variables`` used as an objective.

    Calling it evaluates the expression with JAX (so every solver accepts it); the
    certified solver reads the expression itself, rational constants exact.

    >>> x, y = sp.symbols("x y")
    >>> f = SymbolicFunction(y**2 + x**2 * y**4, [x, y])
    >>> float(f([2.0, 1.0]))
    5.0
    """

    def __init__(self, expr: Any, variables: Any):
        self.expr = sp.sympify(expr)
        self.variables = list(variables)
        unknown = self.expr.free_symbols - set(self.variables)
        if unknown:
            raise ValueError(f"expr has symbols {sorted(map(str, unknown))} that are not in "
                             "variables; list every symbol of the expression.")
        check_supported(self.expr)
        self._jax = sp.lambdify([self.variables], self.expr, modules="jax")

    def __call__(self, y):
        import jax.numpy as jnp

        return jnp.asarray(self._jax(jnp.asarray(y)), dtype=jnp.float64)


def _constant(e):
    if e.is_Rational:
        return arb(int(e.p)) / int(e.q)
    if e is sp.pi:
        return arb.pi()
    if e is sp.E:
        return arb(1).exp()
    return arb(float(e))  # a sympy Float: its float64 value, taken exactly


def check_supported(expr) -> None:
    """Raise :class:`UnsupportedOperation` naming the first unsupported function."""
    for e in sp.preorder_traversal(expr):
        if e.is_Atom:
            if not (e.is_Symbol or e.is_Number or e in (sp.pi, sp.E)):
                raise UnsupportedOperation(f"the interval evaluator does not support the "
                                           f"constant {e}; supported: {_SUPPORTED}.")
        elif not (e.is_Add or e.is_Mul or e.is_Pow or e.func in (sp.Max, sp.Min)
                  or e.func in _FUNCS):
            raise UnsupportedOperation(f"the interval evaluator does not support "
                                       f"{e.func.__name__} (in {e}); supported: {_SUPPORTED}.")


def evaluate(e, env):
    """Enclosure of the expression ``e`` with the symbols bound by ``env``."""
    if e.is_Symbol:
        return env[e]
    if e.is_Atom:
        return _constant(e)
    if e.is_Pow:
        base, p = e.args
        b = evaluate(base, env)
        if p.is_Integer:
            return A.integer_pow(b, int(p))
        return A.sqrt(b) if p == sp.Rational(1, 2) else A.real_pow(b, evaluate(p, env))
    args = [evaluate(a, env) for a in e.args]
    if e.func in _FUNCS:
        return _FUNCS[e.func](args[0])
    combine = {sp.Add: A.add, sp.Mul: A.mul, sp.Max: A.maximum, sp.Min: A.minimum}[e.func]
    out = args[0]
    for a in args[1:]:
        out = combine(out, a)
    return out
