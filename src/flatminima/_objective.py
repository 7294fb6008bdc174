"""Wrap a user's objective as a JAX function of one flat vector.

Two kinds of objective come in:

* a JAX-traceable function of one array or pytree that returns a scalar;
* any object with a NumPy ``value_and_grad(x) -> (float, ndarray)`` method
  (how a PyTorch model's loss comes in), and optionally ``hvp(x, v) -> ndarray``.
  It is bridged into JAX through ``jax.pure_callback`` with custom JVPs: gradients
  come from ``value_and_grad``, Hessian-vector products from ``hvp`` (exact) or,
  for objects without one, from central differences of the gradient.

Everything downstream works on ``Objective.fun``: flat ``(n,)`` vector to scalar, a
closure-converted :class:`~flatminima._flat.FlatFunction` (code plus the arrays it
closes over), so compiled solvers are keyed on code and shapes and never own the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ._flat import FlatFunction, bridge, convert

Array = jax.Array


class Quadratic:
    """The quadratic ``f(y) = 1/2 y'Ay + b'y + c`` with symmetric ``A``.

    Passing a ``Quadratic`` to :func:`flatminima.max_variation` selects the exact
    trust-region solver without any detection step.

    >>> import numpy as np
    >>> q = Quadratic(np.diag([2.0, -1.0]), b=[1.0, 0.0])
    >>> float(q(np.array([1.0, 1.0])))
    1.5
    """

    def __init__(self, A: Any, b: Any = None, c: float = 0.0):
        A = np.asarray(A, dtype=float)
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"A must be a square matrix, got shape {A.shape}.")
        if not np.all(np.isfinite(A)):
            raise ValueError("A contains NaN or infinite entries; pass a finite matrix.")
        self.A = 0.5 * (A + A.T)
        n = A.shape[0]
        self.b = np.zeros(n) if b is None else np.asarray(b, dtype=float).reshape(n)
        self.c = float(c)

    def __call__(self, y: Any) -> Array:
        y = jnp.asarray(y)
        return 0.5 * y @ (self.A @ y) + self.b @ y + self.c

    def __repr__(self) -> str:
        return f"Quadratic(n={self.A.shape[0]})"


def torch_to_numpy(leaf: Any) -> Any:
    """A torch tensor as a NumPy array (detached, on the host; it may share the tensor's
    memory); anything else as it is."""
    if type(leaf).__module__.startswith("torch") and hasattr(leaf, "detach"):
        return leaf.detach().cpu().numpy()
    return leaf


def _from_torch(leaf: Any) -> Any:
    """A torch tensor as a NumPy copy (the point must not change with the user's tensor);
    anything else as it is."""
    arr = torch_to_numpy(leaf)
    return arr.copy() if arr is not leaf else leaf


def check_seed(seed: Any) -> int:
    """A random seed: a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    return int(seed)


def _is_number(v: Any) -> bool:
    """A Python or NumPy number, or a 0-d array (a list of arrays of other shapes, such as
    ``[(W, b), ...]``, is a pytree, not a vector)."""
    return np.isscalar(v) or (hasattr(v, "shape") and tuple(v.shape) == ())


def _check_deterministic(f: Any, x: np.ndarray, name: str) -> None:
    """Two evaluations of an object's ``value_and_grad`` at x must agree: every measure
    assumes f is a function. Randomness in a model (dropout, noise layers, a sampled batch)
    fails here, before any computation. They must agree exactly, except for an object that
    sums over ``B`` batches (a ``num_batches`` attribute above 1): a shuffled loader groups
    the examples differently at each pass, and sums of the same terms grouped differently
    round differently. Each batch's term then carries a relative rounding error of a few
    ``eps`` (its reduction over the batch, in the object's ``dtype``; float64 when it has
    none), and the ``B`` terms are added in float64 (no further error) or, on a device
    without float64, in that dtype, whose errors, of random sign, grow like ``sqrt(B) eps``.
    So the two values may differ by ``min(4 sqrt(B) eps, 1e-6) |f|`` (measured spreads of
    shuffled loaders: ``1e-7 |f|`` in float32, ``3.5e-16 |f|`` in float64, about one eps).
    The cap ``1e-6`` bounds the randomness the allowance can let through in any dtype:
    float16 and bfloat16 (``eps`` ``1e-3``, ``8e-3``) get no more, so a shuffled loader
    in those dtypes must read its batches in a fixed order."""
    v1, v2 = (float(np.asarray(f.value_and_grad(x.copy())[0]).reshape(())) for _ in range(2))
    if v1 == v2 or (np.isnan(v1) and np.isnan(v2)):
        return
    batches = getattr(f, "num_batches", 1)
    batched = batches > 1
    allowance = min(4.0 * np.sqrt(batches) * _eps_of(f), 1e-6) if batched else 0.0
    if abs(v1 - v2) <= allowance * max(abs(v1), abs(v2)):
        return
    hint = ("; read the batches in the same order at each pass (shuffle=False)" if batched
            else "")
    raise ValueError(
        f"{name} is not deterministic: two evaluations at x gave {v1!r} and {v2!r}. "
        "Remove the randomness (evaluate the model in eval mode: model.eval() or "
        f"TorchObjective(..., train=False); fix the batch and any noise layer{hint}).")


def _eps_of(f: Any) -> float:
    """The machine epsilon of an object's ``dtype`` attribute (a torch dtype is read by
    name), float64's when it has none or it is not a float type."""
    try:
        dtype = jnp.dtype(str(getattr(f, "dtype", "float64")).removeprefix("torch."))
    except TypeError:
        dtype = jnp.dtype(jnp.float64)
    if not jnp.issubdtype(dtype, jnp.inexact):
        dtype = jnp.dtype(jnp.float64)
    return float(jnp.finfo(dtype).eps)


def _is_numpy_objective(f: Any) -> bool:
    return hasattr(f, "value_and_grad") and callable(f.value_and_grad)


@dataclass(frozen=True)
class Objective:
    """A scalar objective on ``R^n`` with the structure needed by the solvers.

    ``fun`` maps a flat ``(n,)`` vector to a scalar and is JAX-traceable;
    ``unravel`` maps a flat vector back to the user's point structure.
    """

    fun: Callable[[Array], Array]
    n: int
    unravel: Callable[[Array], Any]
    is_jax: bool
    quadratic: Quadratic | None = None
    eps: float = float(np.finfo(np.float64).eps)
    precision: str = "float64"
    #: the user's f as passed, for solvers that read its form (the certified solver reads a
    #: sympy SymbolicFunction); the Objective lives only as long as the call that made it
    source: Any = field(default=None, repr=False, compare=False)

    def value_and_grad(self, y: Array) -> tuple[Array, Array]:
        return jax.value_and_grad(self.fun)(y)

    def hvp(self, y: Array, v: Array) -> Array:
        """Hessian-vector product ``H(y) v``: exact for JAX objectives and for objects
        with an ``hvp`` method; central differences of the gradient for objects with
        ``value_and_grad`` only."""
        return _hvp(self.fun, y, v)


@jax.jit
def _hvp(fun: FlatFunction, y: Array, v: Array) -> Array:
    return jax.jvp(jax.grad(fun), (y,), (v,))[1]


def as_objective(f: Any, x: Any, *, name: str = "f") -> tuple[Objective, Array]:
    """Validate ``f`` and the point ``x``; return the wrapped objective and flat ``x``.

    Raises ``TypeError``/``ValueError`` naming the argument and the fix.
    """
    if isinstance(x, (list, tuple)) and x and all(_is_number(v) for v in x):
        x = np.asarray(x, dtype=float)  # a list of numbers is a vector; else a pytree
    # torch tensors (parameters that require grad included) are read as NumPy copies
    x = jax.tree_util.tree_map(_from_torch, x)
    try:
        leaves = jax.tree_util.tree_leaves(x)
    except Exception as err:  # pragma: no cover - defensive
        raise TypeError(f"x must be an array or a pytree of arrays, got {type(x)!r}.") from err
    if not leaves:
        raise ValueError("x is empty; pass a point with at least one coordinate.")
    for leaf in leaves:
        if not isinstance(leaf, (np.ndarray, jax.Array, np.generic, int, float)):
            raise TypeError(
                f"x holds a {type(leaf).__name__}, not only arrays: pass the parameters "
                f"alone, e.g. eqx.filter(model, eqx.is_inexact_array) for an Equinox model "
                f"(or DatasetLoss(...).params), nnx.state(model, nnx.Param) for Flax NNX.")
        arr = np.asarray(leaf)
        if not np.issubdtype(arr.dtype, np.number):
            raise TypeError(f"x must hold numbers, got dtype {arr.dtype}.")
        if not np.all(np.isfinite(arr)):
            raise ValueError("x contains NaN or infinite values; pass a finite point.")
    input_dtypes = [np.asarray(leaf).dtype for leaf in leaves]
    x = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype=jnp.float64), x)
    flat, unravel = ravel_pytree(x)
    n = flat.shape[0]

    if _is_numpy_objective(f):
        if not isinstance(x, jax.Array):
            raise TypeError("objects with value_and_grad take a single array point x.")
        _check_deterministic(f, np.asarray(x), name)
        obj = Objective(fun=bridge(f, tuple(x.shape)), n=n, unravel=unravel, is_jax=False)
    elif callable(f):
        quadratic = f if isinstance(f, Quadratic) else None
        if quadratic is not None and quadratic.A.shape[0] != n:
            raise ValueError(
                f"x has {n} coordinates but the quadratic has dimension {quadratic.A.shape[0]}."
            )
        if isinstance(f, FlatFunction) and f.n == n and isinstance(x, jax.Array):
            fun = f  # already an objective's flat function (callers pass obj.fun on)
        else:
            fun = _converted(f, x, unravel, flat, name)
        obj = Objective(fun=fun, n=n, unravel=unravel, is_jax=True, quadratic=quadratic,
                        source=f)
    else:
        raise TypeError(
            f"{name} must be a callable returning a scalar, or an object with a "
            f"value_and_grad(x) method; got {type(f).__name__}."
        )
    obj = replace(obj, **_precision(f, obj, flat, input_dtypes))
    check_value(obj, flat, name=name)
    return obj, flat


def _converted(f: Any, x: Any, unravel: Any, flat: Array, name: str) -> FlatFunction:
    """:func:`convert`, done once per point structure for an object holding a
    ``_conversions`` dict (flatminima's own objectives over fixed data, such as
    :class:`DatasetLoss`, whose function never changes): the result is kept in that dict,
    so it lives exactly as long as the object. Functions of the user are converted at each
    call, since what they close over may have changed."""
    memo = getattr(f, "_conversions", None)
    if not isinstance(memo, dict):
        return convert(f, unravel, flat, name)
    key = (jax.tree_util.tree_structure(x),
           tuple((a.shape, a.dtype) for a in jax.tree_util.tree_leaves(x)))
    if key not in memo:
        memo[key] = convert(f, unravel, flat, name, hold_f=False)
    return memo[key]


def _precision(f: Any, obj: Objective, flat: Array, input_dtypes: list) -> dict:
    """The precision f is computed in: the coarsest float type among the point's leaves
    as passed, f's output (traced abstractly) and a ``dtype`` attribute of an object with
    ``value_and_grad`` (a torch dtype is read by name). Integer leaves carry no precision."""
    dtypes = list(input_dtypes)
    if obj.is_jax:
        try:
            dtypes.append(jax.eval_shape(obj.fun, flat).dtype)
        except Exception:  # f's own error is reported by check_value with its message
            pass
    elif getattr(f, "dtype", None) is not None:
        dtypes.append(str(f.dtype).removeprefix("torch."))
    floats = []
    for dt in dtypes:
        try:
            dt = np.dtype(dt)
        except TypeError:
            continue
        if jnp.issubdtype(dt, jnp.inexact):  # bfloat16 included (numpy does not know it)
            floats.append(jnp.finfo(dt))
    if not floats:
        return {}
    coarsest = max(floats, key=lambda fi: float(fi.eps))
    return {"eps": float(coarsest.eps), "precision": str(coarsest.dtype)}


def check_value(obj: Objective, flat: Array, *, name: str = "f") -> float:
    """Evaluate ``f`` at ``flat`` eagerly and check it returns a finite scalar."""
    try:
        value = obj.fun(flat)
    except Exception as err:
        raise ValueError(
            f"{name} raised {type(err).__name__} at x: {err}. {name} must accept a point "
            f"shaped like x and return a scalar."
        ) from err
    value = np.asarray(value)
    if value.size != 1 or value.ndim > 1 or (value.ndim == 1 and obj.is_jax):
        raise ValueError(
            f"{name} must return a scalar, got an array of shape {value.shape}; "
            f"reduce it (e.g. with .sum() or .mean())."
        )
    value = float(value.reshape(()))
    if not np.isfinite(value):
        raise ValueError(
            f"{name}(x) = {value} is not finite; evaluate at a point where f is finite."
        )
    return value


def check_scalar(value: Any, name: str, *, positive: bool = False) -> float:
    """Check a radius-like argument: a finite real number, nonnegative (or positive)."""
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a real number, got {value!r}.") from err
    if not np.isfinite(v):
        raise ValueError(f"{name} = {v} is not finite; pass a finite number.")
    if positive and v <= 0:
        raise ValueError(f"{name} = {v} must be positive.")
    if v < 0:
        raise ValueError(f"{name} = {v} is negative; pass a radius >= 0.")
    return v
