"""An exact structural test: the polynomial degree of ``f`` read from its jaxpr.

A sampled test can be fooled by a function that is quadratic near ``x`` only (a ReLU
kink just outside the sampled points); it may choose a solver, never prove a bound.
This module proves quadratic-ness instead: it traces ``f`` once
(``jax.make_jaxpr``) and propagates, through every equation, an upper bound on the
polynomial degree of each intermediate value in the input (``None``: not known to be
a polynomial). The rules, with why each holds in exact arithmetic:

* inputs have degree 1; constants and literals degree 0; any primitive whose inputs
  all have degree 0 gives degree 0 (a function of constants is a constant);
* ``add``, ``sub``, ``add_any``, ``neg``, ``max`` of degrees (a sum of polynomials);
* ``mul`` and ``dot_general``: sum of degrees (products and sums of products);
* ``integer_pow`` with exponent ``k >= 0``: ``k`` times the degree; ``square``: twice;
  ``pow`` with a literal nonnegative integer exponent likewise;
* ``div`` by a degree-0 divisor: the degree of the dividend;
* linear rearrangements (``reshape``, ``broadcast_in_dim``, ``transpose``, ``slice``,
  ``squeeze``, ``expand_dims``, ``concatenate``, ``pad``, ``rev``, ``copy``, ``split``,
  ``reduce_sum``, ``cumsum``) keep the degree, as do ``dynamic_slice``,
  ``dynamic_update_slice`` and ``gather`` with degree-0 indices, and
  ``convert_element_type`` to float64 (to an integer or a narrower float it rounds);
* ``select_n`` with a degree-0 predicate: max over the cases (the branch is fixed);
* calls (``jit``/``pjit``, ``closed_call``, ``remat``, ``custom_jvp_call``,
  ``custom_vjp_call``): the degree of the called jaxpr (for the custom-derivative
  calls, the primal function, which is what ``f`` evaluates).

Everything else with a non-constant input (``max``, ``abs``, ``exp``, ``sqrt``,
comparisons, loops, callbacks, ...) makes the result "not a polynomial". The test
is sufficient, not necessary: ``jnp.linalg.norm(y) ** 2`` is a quadratic that it
does not recognise (it goes through ``sqrt``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.extend import core as jcore

_MAX_OF_DEGREES = {"add", "sub", "add_any", "neg", "concatenate", "pad"}
_LINEAR = {
    "reshape", "broadcast_in_dim", "transpose", "slice", "squeeze", "expand_dims", "rev",
    "copy", "copy_p", "reduce_sum", "cumsum", "split",
}
# operand position(s) that must be constant (indices), the rest keep their degree
_INDEXED = {"dynamic_slice": 1, "gather": 1, "dynamic_update_slice": 2}
_CALLS = ("jaxpr", "call_jaxpr", "fun_jaxpr")


def _literal_value(var: Any) -> Any:
    return var.val if isinstance(var, jcore.Literal) else None


def _sub_jaxpr(eqn: Any) -> Any:
    for name in _CALLS:
        sub = eqn.params.get(name)
        if hasattr(sub, "jaxpr") or hasattr(sub, "eqns"):  # closed or open jaxpr
            return sub
    return None


def _eqn_degree(eqn: Any, degs: list) -> int | None:
    """Degree bound of the outputs of one equation given its inputs' degrees."""
    if any(d is None for d in degs):
        return None
    if all(d == 0 for d in degs):
        return 0
    name = eqn.primitive.name
    if name in _MAX_OF_DEGREES or name in _LINEAR:
        return max(degs)
    if name in ("mul", "dot_general"):
        return sum(degs)
    if name == "integer_pow":
        k = int(eqn.params["y"])
        return degs[0] * k if k >= 0 else None
    if name == "square":
        return 2 * degs[0]
    if name == "pow":
        k = _literal_value(eqn.invars[1])
        if degs[1] == 0 and k is not None and float(k) == int(k) and k >= 0:
            return degs[0] * int(k)
        return None
    if name == "div":
        return degs[0] if degs[1] == 0 else None
    if name == "convert_element_type":
        dtype = np.dtype(eqn.params["new_dtype"])
        return degs[0] if dtype.kind == "f" and dtype.itemsize >= 8 else None
    if name == "select_n":
        return max(degs[1:]) if degs[0] == 0 else None
    if name in _INDEXED:
        k = _INDEXED[name]
        return max(degs[:k] + degs[k + 1 :]) if degs[k] == 0 else None
    if name in ("jit", "pjit", "closed_call", "core_call", "remat2", "checkpoint",
                "custom_jvp_call", "custom_vjp_call"):
        sub = _sub_jaxpr(eqn)
        if sub is None or len(_open(sub).invars) != len(degs):
            return None
        return _jaxpr_degree(sub, degs)
    return None


def _open(jaxpr: Any) -> Any:
    return jaxpr.jaxpr if hasattr(jaxpr, "jaxpr") else jaxpr


def _jaxpr_degree(jaxpr: Any, in_degs: list) -> int | None:
    inner = _open(jaxpr)
    env: dict = {v: 0 for v in inner.constvars}
    env.update(zip(inner.invars, in_degs))

    def read(var):
        return 0 if isinstance(var, jcore.Literal) else env.get(var)

    for eqn in inner.eqns:
        d = _eqn_degree(eqn, [read(v) for v in eqn.invars])
        for out in eqn.outvars:
            env[out] = d
    outs = [read(v) for v in inner.outvars]
    return None if any(d is None for d in outs) else max(outs, default=0)


def polynomial_degree(fun: Callable, x: Any) -> int | None:
    """An upper bound on the degree of ``fun`` as a polynomial in ``x``, read exactly
    from its jaxpr; ``None`` when ``fun`` is not recognised as a polynomial.

    Args:
        fun: a JAX-traceable function (of an array or pytree).
        x: a point of the right shape (only its shape and dtype are used).

    >>> import jax.numpy as jnp
    >>> polynomial_degree(lambda y: y @ y + 2.0 * y[0], jnp.ones(3))
    2
    >>> polynomial_degree(lambda y: jnp.sum(jnp.abs(y)), jnp.ones(3)) is None
    True
    """
    try:
        closed = jax.make_jaxpr(fun)(x)
    except Exception:  # not traceable as a whole (Python control flow on values, ...)
        return None
    n_in = len(_open(closed).invars)
    return _jaxpr_degree(closed, [1] * n_in)
