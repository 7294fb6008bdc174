"""An objective as code plus data: ``y -> code(consts, y)`` on flat vectors.

The user's function is traced once (``jax.make_jaxpr``) and closure-converted: every
array it closes over (a mini-batch, a matrix) is hoisted into ``consts``, which enter
compiled code as ordinary arguments. :class:`FlatFunction` is a pytree whose leaves
are those arrays and whose static part is the code, compared by its text (the jaxpr and
the shapes and dtypes of the constants). So

* compiled solvers that take the objective as an argument are keyed on code and shapes:
  a new closure over new arrays of the same shapes reuses them, and
* nothing cached by JAX owns the user's data: the code keeps only a weak reference to
  its trace, which lives as long as the objective that made it.

``custom_jvp`` rules (``jax.nn.relu``, ...) are traced and compared by their text too.
Code that cannot be compared by its text (derivative rules that close over arrays,
``custom_vjp``, callbacks, control flow whose branches keep constants of their own) gets
a key of its own: it is never shared, so it is compiled once per objective, and data
such code keeps inside itself stays in the compiled code until JAX evicts it.

Objects with a NumPy ``value_and_grad(x)`` are bridged through ``jax.pure_callback``
(:func:`bridge`); the compiled code refers to them by a number that is looked up at
run time in a table of weak references.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import ClosedJaxpr, Jaxpr, Literal

Array = jax.Array

_TRACES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_SOURCES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_counter = itertools.count()


@jax.tree_util.register_pytree_node_class
class FlatFunction:
    """``y -> code(consts, y)`` for flat ``(n,)`` vectors ``y``; returns a scalar.

    A pytree (leaves: ``consts``; static: ``code`` and ``n``), so it can be passed to a
    jitted function as an ordinary argument. ``keep`` holds what the code needs at run
    time (the trace, the bridged object) for as long as this function lives.
    """

    def __init__(self, code: Callable, consts: tuple, n: int, keep: Any = None):
        self.code, self.consts, self.n, self._keep = code, tuple(consts), n, keep

    def tree_flatten(self):
        return self.consts, (self.code, self.n)

    @classmethod
    def tree_unflatten(cls, aux, consts):
        return cls(aux[0], consts, aux[1])

    def __call__(self, y: Any) -> Array:
        y = jnp.asarray(y, dtype=jnp.float64)
        if y.shape != (self.n,):
            raise ValueError(f"the objective takes a flat vector of {self.n} coordinates, "
                             f"got shape {y.shape}.")
        return _evaluate(self, y)


@jax.jit
def _evaluate(fun: FlatFunction, y: Array) -> Array:
    return fun.code(fun.consts, y)


class _Trace:
    """Holds a jaxpr; referenced strongly by its objective only."""

    __slots__ = ("jaxpr", "__weakref__")

    def __init__(self, jaxpr: Jaxpr):
        self.jaxpr = jaxpr


class _JaxprCode:
    """Evaluates a jaxpr on ``(consts, y)``; equal to another when the keys are equal."""

    __slots__ = ("key", "_trace")

    def __init__(self, key: tuple, trace: _Trace):
        self.key, self._trace = key, weakref.ref(trace)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _JaxprCode) and other.key == self.key

    def __call__(self, consts: tuple, y: Array) -> Array:
        trace = self._trace() or _TRACES.get(self.key)
        if trace is None:  # pragma: no cover - only if an objective is traced after release
            raise RuntimeError("the objective was released; build it again with as_objective.")
        return jax.core.eval_jaxpr(trace.jaxpr, list(consts), y)[0]


def _describe(value: Any, rules: list) -> bool:
    """True when ``value`` (a jaxpr or a jaxpr parameter) is fully described by its
    printed text plus the texts appended to ``rules`` (the derivative rules of
    ``custom_jvp`` calls, which the printed jaxpr names but does not show)."""
    if isinstance(value, ClosedJaxpr):
        return not value.consts and _describe(value.jaxpr, rules)
    if isinstance(value, Jaxpr):
        for eqn in value.eqns:
            for name, param in eqn.params.items():
                if name == "jvp_jaxpr_fun":
                    rule = _jvp_rule(eqn)
                    if rule is None:
                        return False
                    if str(rule) not in rules:  # a rule may call its own function
                        rules.append(str(rule))
                        if not _describe(rule, rules):
                            return False
                elif not _describe(param, rules):
                    return False
        return True
    if isinstance(value, (tuple, list)):
        return all(_describe(v, rules) for v in value)
    if isinstance(value, dict):
        return all(_describe(v, rules) for v in value.values())
    if isinstance(value, (jax.sharding.Mesh, jax.sharding.AbstractMesh, jax.sharding.Sharding)):
        return True  # device placement, not data
    return not (callable(value) or hasattr(value, "call_wrapped")
                or isinstance(value, (np.ndarray, jax.Array)))


def _jvp_rule(eqn: Any) -> Jaxpr | None:
    """The jaxpr of a ``custom_jvp`` rule (all tangents nonzero), or None when the rule
    closes over arrays or cannot be traced here."""
    try:
        n = len(eqn.invars) - eqn.params["num_consts"]
        jaxpr, consts, _ = eqn.params["jvp_jaxpr_fun"].call_wrapped(*[False] * n)
    except Exception:
        return None
    return None if consts else jaxpr


def _inline_calls(jaxpr: Jaxpr, consts: list, *args: Any) -> list:
    """Evaluate ``jaxpr`` with the bodies of its ``jit`` calls inlined, so that constants
    those calls keep of their own become constants of the enclosing trace."""
    env: dict = {}
    read = lambda v: v.val if isinstance(v, Literal) else env[v]
    env.update(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    for eqn in jaxpr.eqns:
        vals = [read(v) for v in eqn.invars]
        if eqn.primitive.name == "jit":
            inner = eqn.params["jaxpr"]
            outs = _inline_calls(inner.jaxpr, inner.consts, *vals)
        else:
            outs = eqn.primitive.bind(*vals, **eqn.primitive.get_bind_params(eqn.params))
            outs = outs if eqn.primitive.multiple_results else [outs]
        env.update(zip(eqn.outvars, outs))
    return [read(v) for v in jaxpr.outvars]


def convert(f: Callable, unravel: Callable, flat: Array, name: str = "f", *,
            hold_f: bool = True) -> FlatFunction:
    """Closure-convert ``y -> f(unravel(y))``, traced at the point ``flat`` (see the
    module docstring). The result holds ``f`` alive unless ``hold_f`` is False (for a
    result kept by ``f`` itself: holding ``f`` would make a reference cycle, and the
    arrays in it would wait for the garbage collector).

    Raises ``ValueError`` when tracing ``f`` fails or ``f`` does not return one scalar.
    """
    try:
        closed = jax.make_jaxpr(lambda y: f(unravel(y)))(flat)
    except Exception as err:
        raise ValueError(
            f"{name} raised {type(err).__name__} at x: {err}. {name} must accept a point "
            f"shaped like x, be traceable by JAX (jax.numpy operations, no Python branches "
            f"on values) and return a scalar."
        ) from err
    shapes = [tuple(a.shape) for a in closed.out_avals]
    if shapes != [()]:
        got = f"an array of shape {shapes[0]}" if len(shapes) == 1 else f"{len(shapes)} outputs"
        raise ValueError(f"{name} must return a scalar, got {got}; reduce it (e.g. with "
                         f".sum() or .mean()).")
    if any(eqn.primitive.name == "jit" and eqn.params["jaxpr"].consts
           for eqn in closed.jaxpr.eqns):
        closed = jax.make_jaxpr(lambda y: _inline_calls(closed.jaxpr, closed.consts, y)[0])(flat)
    trace = _Trace(closed.jaxpr)
    rules: list[str] = []
    if _describe(closed.jaxpr, rules):
        avals = tuple(repr(v.aval) for v in closed.jaxpr.constvars)
        key: tuple = ("jaxpr", str(closed.jaxpr), tuple(rules), avals)
    else:
        key = ("own", next(_counter))
    _TRACES[key] = trace
    consts = tuple(jnp.asarray(c) for c in closed.consts)  # on the device once, not per call
    return FlatFunction(_JaxprCode(key, trace), consts, flat.shape[0],
                        keep=(f, trace) if hold_f else (trace,))


# --- objects with a NumPy value_and_grad ------------------------------------------------


class _Source:
    """An object with ``value_and_grad`` (and perhaps ``hvp``) and its point's shape."""

    __slots__ = ("obj", "shape", "__weakref__")

    def __init__(self, obj: Any, shape: tuple):
        self.obj, self.shape = obj, shape


def _source(token: Any) -> _Source:
    source = _SOURCES.get(int(token))
    if source is None:  # pragma: no cover - only if an objective is evaluated after release
        raise RuntimeError("the objective was released; build it again with as_objective.")
    return source


def _host_value_and_grad(token, y):
    source = _source(token)
    value, grad = source.obj.value_and_grad(np.asarray(y, dtype=float).reshape(source.shape))
    grad, value = np.asarray(grad, dtype=np.float64).reshape(-1), np.asarray(value)
    if value.size != 1:
        raise ValueError(f"value_and_grad returned a value of shape {value.shape}; return a "
                         f"scalar (e.g. reduce with .sum() or .mean()).")
    if grad.size != y.size:
        raise ValueError(f"value_and_grad returned a gradient of {grad.size} entries for a "
                         f"point of {y.size}; return one entry per coordinate.")
    return value.astype(np.float64).reshape(()), grad


def _host_hvp(token, y, v):
    """The object's exact ``hvp(x, v)`` when it has one; else central differences of the
    gradient, ``(g(y + h v) - g(y - h v)) / 2h`` with ``h = 1e-5 (1 + |y|) / |v|``
    (error of order ``h^2`` times the third derivative, plus rounding ``eps / h``)."""
    source = _source(token)
    y, v = np.asarray(y, dtype=float), np.asarray(v, dtype=float)
    if callable(getattr(source.obj, "hvp", None)):
        hv = source.obj.hvp(y.reshape(source.shape), v.reshape(source.shape))
        return np.asarray(hv, dtype=np.float64).reshape(-1)
    nv = np.linalg.norm(v)
    if nv == 0:
        return np.zeros_like(y)
    h = 1e-5 * (1.0 + np.linalg.norm(y)) / nv
    return (_host_value_and_grad(token, y + h * v)[1] - _host_value_and_grad(token, y - h * v)[1]) / (2 * h)


# The host functions return their float64 results as pairs of uint32 words (the same
# bytes), turned back into float64 in the compiled code. JAX checks a callback's results
# on the thread that runs it, converting float64 to float32 there when 64-bit types are
# off on that thread; flatminima enables them only in the calling thread (see _x64), and
# XLA may run a callback on one of its own threads. uint32 is the same everywhere.


def _words(a: Any) -> np.ndarray:
    """A float64 array as uint32 words, with a trailing axis of 2."""
    a = np.asarray(a, dtype=np.float64)
    return np.ascontiguousarray(a.reshape(-1)).view(np.uint32).reshape(a.shape + (2,))


def _words_spec(shape: tuple) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(shape) + (2,), jnp.uint32)


def _from_words(w: Array) -> Array:
    return jax.lax.bitcast_convert_type(w, jnp.float64)


def _packed_value_and_grad(token, y):
    value, grad = _host_value_and_grad(token, y)
    return _words(value), _words(grad)


def _packed_hvp(token, y, v):
    return _words(_host_hvp(token, y, v))


@jax.custom_jvp
def _bridged_value_and_grad(token: Array, y: Array) -> tuple[Array, Array]:
    spec = (_words_spec(()), _words_spec(y.shape))
    value, grad = jax.pure_callback(_packed_value_and_grad, spec, token, y,
                                    vmap_method="sequential")
    return _from_words(value), _from_words(grad)


@_bridged_value_and_grad.defjvp
def _bridged_value_and_grad_jvp(primals, tangents):
    (token, y), (_, dy) = primals, tangents
    value, grad = _bridged_value_and_grad(token, y)
    hv = jax.pure_callback(_packed_hvp, _words_spec(y.shape), token, y, dy,
                           vmap_method="sequential")
    return (value, grad), (grad @ dy, _from_words(hv))


@jax.custom_jvp
def _bridged_value(token: Array, y: Array) -> Array:
    return _bridged_value_and_grad(token, y)[0]


@_bridged_value.defjvp
def _bridged_value_jvp(primals, tangents):
    (token, y), (_, dy) = primals, tangents
    value, grad = _bridged_value_and_grad(token, y)
    return value, grad @ dy


class _BridgeCode:
    """``(token, y) -> value`` of the bridged object numbered ``token``; one per ``n``."""

    __slots__ = ("n",)

    def __init__(self, n: int):
        self.n = n

    def __hash__(self) -> int:
        return hash(("bridge", self.n))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _BridgeCode) and other.n == self.n

    def __call__(self, consts: tuple, y: Array) -> Array:
        return _bridged_value(consts[0], y)


def bridge(obj: Any, shape: tuple[int, ...]) -> FlatFunction:
    """A JAX scalar function of flat vectors whose value and gradient come from
    ``obj.value_and_grad`` and whose Hessian-vector products come from ``obj.hvp``
    (exact) when it has one, else from central differences of the gradient.

    Compiled code is shared by every bridged object of the same size and refers to
    ``obj`` only by number, through a table of weak references.
    """
    token = next(_counter)
    source = _Source(obj, shape)
    _SOURCES[token] = source
    n = int(np.prod(shape, dtype=int))
    return FlatFunction(_BridgeCode(n), (jnp.asarray(token, dtype=jnp.int64),), n, keep=source)
