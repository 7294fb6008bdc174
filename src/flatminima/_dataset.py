"""Objectives over a data set given in batches: the full-data average loss

    f(params) = (1 / N) sum_b n_b loss(params, batch_b),    N = sum_b n_b,

with its exact gradient and Hessian-vector products, computed one batch at a time.

The batch size ``n_b`` is read from the leading axis of the batch's leaves, and
``loss(params, batch)`` is the mean loss over that batch, so ``f`` is the mean loss over
the whole data set whatever the sizes of the batches. Batches of equal size are stacked
and reduced by a ``lax.scan``, one batch per step, so the working memory of a value, a
gradient (reverse mode inside the step) or a Hessian-vector product (forward over reverse
inside the step) is that of one batch. With several JAX devices the stacked batches are
sharded across them (``jax.shard_map`` over a one-axis mesh): each device scans its own
batches and the partial sums are added with ``psum``. The same code runs on one CPU, one
GPU or several.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ._objective import torch_to_numpy
from ._x64 import float64_methods

Array = jax.Array
_AXIS = "batches"


# --- the computation: weighted sums over stacked batches --------------------------------


@dataclass(frozen=True, eq=False)
class _Spec:
    """What the compiled code needs besides arrays: the loss on the parameter pytree and
    the device mesh (None on one device). Compared by identity, so code is compiled once
    per objective and batch shape."""

    loss: Callable[[Any, Any], Array]
    mesh: Mesh | None


def _scan_sum(fn: Callable, params: Any, data: Any, weights: Array, varying: bool) -> Any:
    """``sum_k weights[k] fn(params, data[k])`` over the leading axis of ``data``, one ``fn``
    call per step (``params``: any pytree of arrays); terms of zero weight (padding) are
    skipped, even when infinite."""
    out = jax.eval_shape(fn, params, jax.tree_util.tree_map(lambda a: a[0], data))
    zero = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), out)
    if varying:  # inside shard_map: make the arguments per-device, so that derivatives
        # taken inside a step stay local (of a replicated input they would be summed over
        # devices), and the accumulator per-device like the terms added to it
        vary = lambda tree: jax.tree_util.tree_map(
            lambda a: jax.lax.pcast(a, (_AXIS,), to="varying"), tree)
        params, zero = vary(params), vary(zero)

    def step(acc, item):
        batch, w = item
        term = fn(params, batch)
        add = lambda a, t: a + jnp.where(w > 0, w * t, 0.0)
        return jax.tree_util.tree_map(add, acc, term), None

    return jax.lax.scan(step, zero, (data, weights))[0]


def _weighted_sum(spec: _Spec, fn: Callable, groups: tuple, params: Any) -> Any:
    """Sum of ``_scan_sum`` over the groups of equal-size batches, sharded when a mesh is set."""
    total = None
    for data, weights in groups:
        if spec.mesh is None:
            part = _scan_sum(fn, params, data, weights, False)
        else:
            local = lambda p, d, w: jax.lax.psum(_scan_sum(fn, p, d, w, True), _AXIS)
            part = jax.shard_map(local, mesh=spec.mesh, in_specs=(P(), P(_AXIS), P(_AXIS)),
                                 out_specs=P())(params, data, weights)
        total = part if total is None else jax.tree_util.tree_map(jnp.add, total, part)
    return total


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _mean_loss(spec: _Spec, groups: tuple, params: Any) -> Array:
    return _weighted_sum(spec, spec.loss, groups, params)


@_mean_loss.defjvp
def _mean_loss_jvp(spec, primals, tangents):
    # The data are constants: their tangents are ignored. The gradient is accumulated batch
    # by batch, so reverse mode never stores more than one batch's residuals; a Hessian-
    # vector product differentiates this accumulation forward (memory of one batch too).
    groups, params = primals
    value, grad = _weighted_sum(spec, jax.value_and_grad(spec.loss), groups, params)
    dot = sum(jnp.vdot(g, t) for g, t in zip(jax.tree_util.tree_leaves(grad),
                                               jax.tree_util.tree_leaves(tangents[1])))
    return value, dot


_jit_mean_loss = jax.jit(_mean_loss, static_argnums=0)


def _hvp(spec: _Spec, groups: tuple, params: Any, v: Any) -> Any:
    def hv(args, batch):  # forward over reverse on one batch
        p, u = args
        return jax.jvp(lambda q: jax.grad(spec.loss)(q, batch), (p,), (u,))[1]

    return _weighted_sum(spec, hv, groups, (params, v))


@partial(jax.jit, static_argnums=0)
def _jit_value_and_grad(spec, groups, params):
    return _weighted_sum(spec, jax.value_and_grad(spec.loss), groups, params)


@partial(jax.jit, static_argnums=0)
def _jit_hvp(spec, groups, params, v):
    return _hvp(spec, groups, params, v)


# --- reading batches -----------------------------------------------------------------------


def _to_numpy(leaf: Any) -> np.ndarray:
    arr = np.asarray(torch_to_numpy(leaf))
    return arr.astype(np.float64) if np.issubdtype(arr.dtype, np.floating) else arr


class _Reader:
    """Checks batches as they come: one structure, examples on the leading axis, finite."""

    def __init__(self):
        self.treedef, self.trailing, self.count, self.total = None, None, 0, 0

    def read(self, batch: Any) -> tuple[list[np.ndarray], int]:
        i = self.count
        leaves, treedef = jax.tree_util.tree_flatten(batch)
        leaves = [_to_numpy(leaf) for leaf in leaves]
        if not leaves or any(leaf.ndim == 0 for leaf in leaves):
            raise ValueError(f"batch {i} has no array with a leading axis of examples; a batch is "
                             f"a tuple, list or dict of arrays shaped (batch_size, ...).")
        sizes = {leaf.shape[0] for leaf in leaves}
        if len(sizes) > 1:
            raise ValueError(f"batch {i} has leaves with leading sizes {sorted(sizes)}; put the "
                             f"examples on the first axis of every array of a batch.")
        size = sizes.pop()
        if size == 0:
            raise ValueError(f"batch {i} is empty; drop empty batches from the data.")
        for k, leaf in enumerate(leaves):
            if np.issubdtype(leaf.dtype, np.inexact) and not np.all(np.isfinite(leaf)):
                raise ValueError(f"batch {i} holds NaN or infinite values (array {k} of the "
                                 f"batch); remove or impute them before measuring.")
        trailing = [(leaf.shape[1:], leaf.dtype) for leaf in leaves]
        if self.treedef is None:
            self.treedef, self.trailing = treedef, trailing
        elif treedef != self.treedef or trailing != self.trailing:
            raise ValueError(f"batch {i} differs from batch 0 in structure or in the shapes "
                             f"past the first axis; every batch must hold the same arrays.")
        self.count += 1
        self.total += size
        return leaves, size


def _iterate(batches: Any) -> Iterable:
    if batches is None or isinstance(batches, (np.ndarray, jax.Array)) or not hasattr(
            batches, "__iter__"):
        raise TypeError(f"batches must be an iterable of batches (a list, a data loader), got "
                        f"{type(batches).__name__}; cut arrays into a list of batches.")
    return batches


def _mesh(devices: Any) -> Mesh | None:
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.array(devices), (_AXIS,)) if len(devices) > 1 else None


def _stack(batches: list[list[np.ndarray]], weights: list[float], treedef: Any,
           mesh: Mesh | None) -> tuple[Any, Array]:
    """Stack equal-size batches on a new leading axis, padded with zero-weight copies to a
    multiple of the device count, and place them (sharded on that axis with a mesh)."""
    d = 1 if mesh is None else mesh.devices.size
    pad = (-len(batches)) % d
    batches = batches + [batches[0]] * pad
    weights = list(weights) + [0.0] * pad
    leaves = [np.stack(column) for column in zip(*batches)]
    data = jax.tree_util.tree_unflatten(treedef, leaves)
    w = np.asarray(weights, dtype=np.float64)
    if mesh is None:
        return jax.device_put(data), jax.device_put(w)
    sharding = NamedSharding(mesh, P(_AXIS))
    return jax.device_put(data, sharding), jax.device_put(w, sharding)


# --- parameters: pytrees, Equinox and Flax NNX modules -------------------------------------


def _split(model: Any) -> tuple[Any, Callable[[Any], Any]]:
    """``(params, merge)``: the trainable arrays and the map back to what ``loss`` takes."""
    eqx = sys.modules.get("equinox")
    if eqx is not None and isinstance(model, eqx.Module):
        params, static = eqx.partition(model, eqx.is_inexact_array)
        return params, lambda p: eqx.combine(p, static)
    nnx = sys.modules.get("flax.nnx")
    if nnx is not None and isinstance(model, nnx.Module):
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        return params, lambda p: nnx.merge(graphdef, p, rest)
    return model, lambda p: p


@float64_methods()
class _DatasetBase:
    """Shared by :class:`DatasetLoss` and :class:`StreamedDatasetLoss`: the parameters, the
    loss on them and the checks of a point."""

    def _setup_params(self, loss: Callable, params: Any) -> None:
        if not callable(loss):
            raise TypeError(f"loss must be a function loss(params, batch) -> mean loss over the "
                            f"batch, got {type(loss).__name__}.")
        self._model_type = type(params)
        tree, merge = _split(params)
        leaves = jax.tree_util.tree_leaves(tree)
        if not leaves or not all(np.issubdtype(np.asarray(a).dtype, np.inexact) for a in leaves):
            raise ValueError("params has no floating-point arrays to measure; pass the model's "
                             "parameters (a pytree of float arrays, an Equinox or NNX module).")
        self.params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype=jnp.float64), tree)
        flat, self._unravel = ravel_pytree(self.params)
        self.n = int(flat.shape[0])
        self._treedef = jax.tree_util.tree_structure(self.params)
        self._shapes = [a.shape for a in jax.tree_util.tree_leaves(self.params)]
        self._loss = lambda p, batch: loss(merge(p), batch)

    def _check_loss(self, batch: Any) -> None:
        try:
            out = jax.eval_shape(self._loss, self.params, batch)
        except Exception as err:
            raise ValueError(f"loss(params, batch) failed on the first batch ({type(err).__name__}: "
                             f"{err}); it must be JAX-traceable and take (params, batch).") from err
        if not (isinstance(out, jax.ShapeDtypeStruct) and out.shape == ()):
            shape = getattr(out, "shape", type(out).__name__)
            raise ValueError(f"loss(params, batch) must return a scalar, got {shape}; return "
                             f"the mean over the batch (e.g. with .mean()).")

    def point(self) -> Array:
        """The parameters as one flat float64 vector of ``n`` entries."""
        return ravel_pytree(self.params)[0]

    def _as_params(self, x: Any) -> Any:
        """``x`` as the parameter pytree: the same structure as :attr:`params`, a module
        of the same type, or a flat vector of ``n`` entries."""
        if isinstance(x, self._model_type) and self._model_type not in (list, tuple, dict):
            x = _split(x)[0]
        leaves, treedef = jax.tree_util.tree_flatten(x)
        if treedef == self._treedef and [jnp.shape(a) for a in leaves] == self._shapes:  # type: ignore[operator]
            return x
        if len(leaves) == 1 and jnp.ndim(leaves[0]) == 1 and jnp.shape(leaves[0])[0] == self.n:
            return self._unravel(jnp.asarray(leaves[0]))
        count = sum(int(np.prod(jnp.shape(a))) for a in leaves)
        raise ValueError(f"x has {count} parameters but the model has {self.n}; pass "
                         f"the objective's .params or a flat vector of {self.n} entries (.point()).")


@float64_methods("__call__")
class DatasetLoss(_DatasetBase):
    """The mean loss over a data set held in device memory, as a JAX function of the
    parameters: ``f(params) = (1/N) sum_b n_b loss(params, batch_b)``.

    A callable every flatminima function accepts (``max_variation(f, f.params, r)``,
    ``sharpness.hessian_eigmax(f, f.params)``, ...). Values, gradients and Hessian-vector
    products are exact full-data averages, computed one batch at a time (working memory
    of one batch per device; see the module docstring); with several JAX devices the
    batches are sharded across them.

    Args:
        loss: ``loss(params, batch)``, JAX-traceable, returning the mean loss over the
            batch (a scalar). When ``params`` is an Equinox module (split with
            ``eqx.partition(model, eqx.is_inexact_array)``) or a Flax NNX module (split
            with ``nnx.split(model, nnx.Param, ...)``), ``loss`` takes the module itself.
        batches: an iterable of batches, read once: a list of ``(X, y)`` tuples, a torch
            ``DataLoader``, ... Each batch is a pytree of arrays (NumPy, JAX or torch) with
            the examples on the leading axis, from which ``n_b`` is read. Floating arrays
            are converted to float64. Batches may differ in size (each distinct size is
            compiled once).
        params: the parameters at which the shapes are read (a pytree of float arrays,
            or an Equinox or NNX module).
        devices: the devices to shard the batches across (default ``jax.devices()``).

    Attributes:
        params: the trainable parameters (float64 pytree), a valid point ``x``.
        n: their number; ``num_examples`` (N) and ``num_batches``.

    Calling the object on ``x`` (the pytree :attr:`params`, a module of the same type, or
    a flat vector of ``n`` entries) returns ``f(x)``.

    Raises:
        ValueError: before any computation (``TypeError`` for a wrong kind of argument):
            ``batches`` is not an iterable or is empty; a batch holds NaN or infinite
            values, has leaves of different leading sizes or differs in structure from the
            first; ``loss`` does not return a scalar; ``params`` holds no float arrays; a
            point ``x`` has a different number of parameters.

    >>> import jax.numpy as jnp, numpy as np
    >>> X = np.arange(10.0).reshape(5, 2); y = np.ones(5)
    >>> batches = [(X[:3], y[:3]), (X[3:], y[3:])]
    >>> f = DatasetLoss(lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2), batches, jnp.zeros(2))
    >>> float(f(jnp.zeros(2))), f.num_examples, f.num_batches
    (1.0, 5, 2)
    """

    def __init__(self, loss: Callable, batches: Iterable, params: Any, *, devices: Any = None):
        self._setup_params(loss, params)
        reader = _Reader()
        by_size: dict = {}
        for batch in _iterate(batches):
            leaves, size = reader.read(batch)
            by_size.setdefault(size, []).append(leaves)
        if reader.count == 0:
            raise ValueError("batches is empty; pass at least one batch (a DataLoader over a "
                             "non-empty data set, or a non-empty list of arrays).")
        first = jax.tree_util.tree_unflatten(reader.treedef, next(iter(by_size.values()))[0])
        self._check_loss(first)
        self.num_examples, self.num_batches = reader.total, reader.count
        self._spec = _Spec(self._loss, _mesh(devices))
        self._conversions: dict = {}  # as_objective's conversions of this fixed function
        self._groups = tuple(
            _stack(group, [size / reader.total] * len(group), reader.treedef, self._spec.mesh)
            for size, group in sorted(by_size.items()))

    def __call__(self, x: Any) -> Array:
        return _jit_mean_loss(self._spec, self._groups, self._as_params(x))

    def hvp(self, x: Any, v: Any) -> Any:
        """The Hessian-vector product ``H(x) v`` (exact, one batch at a time), as a pytree
        like :attr:`params`, or a flat vector when ``v`` is one."""
        params = self._as_params(x)
        flat = isinstance(v, (np.ndarray, jax.Array)) and v.ndim == 1
        hv = _jit_hvp(self._spec, self._groups, params, self._as_params(v))
        return ravel_pytree(hv)[0] if flat else hv


@float64_methods()
class StreamedDatasetLoss(_DatasetBase):
    """The mean loss over a data set read batch by batch at every evaluation, for data that
    do not fit in device memory: the same ``f`` as :class:`DatasetLoss`, presented as an
    object with NumPy ``value_and_grad(x)`` and ``hvp(x, v)`` on flat vectors (the form
    every flatminima function accepts, with ``x = f.point()``).

    Each evaluation iterates over ``batches`` again, so it must be re-iterable (a list,
    a torch ``DataLoader``; a one-shot generator is refused) and yield the same examples
    each time (their order and grouping may change: shuffling is fine). Up to one batch
    per device and batch size is held at a time. A first pass at construction checks
    every batch and counts the examples, before any computation.

    Args: as for :class:`DatasetLoss`.

    Raises: as for :class:`DatasetLoss`; also ``TypeError`` for a one-shot iterator and,
    at evaluation, ``ValueError`` when a pass yields a different number of examples.

    >>> import jax.numpy as jnp, numpy as np
    >>> X = np.arange(10.0).reshape(5, 2); y = np.ones(5)
    >>> batches = [(X[:3], y[:3]), (X[3:], y[3:])]
    >>> f = StreamedDatasetLoss(lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2), batches,
    ...                         jnp.zeros(2))
    >>> value, grad = f.value_and_grad(np.zeros(2)); value, grad.tolist()
    (1.0, [-8.0, -10.0])
    """

    def __init__(self, loss: Callable, batches: Iterable, params: Any, *, devices: Any = None):
        self._setup_params(loss, params)
        batches = _iterate(batches)
        if iter(batches) is batches:
            raise TypeError("batches is a one-shot iterator (a generator); pass a list or a "
                            "re-iterable loader, since every evaluation reads the data again.")
        self._batches, self._mesh = batches, _mesh(devices)
        reader, first = _Reader(), None
        for batch in batches:
            leaves, _ = reader.read(batch)
            first = leaves if first is None else first
        if reader.count == 0:
            raise ValueError("batches is empty; pass at least one batch (a DataLoader over a "
                             "non-empty data set, or a non-empty list of arrays).")
        self._check_loss(jax.tree_util.tree_unflatten(reader.treedef, first))  # type: ignore[arg-type]
        self.num_examples, self.num_batches = reader.total, reader.count
        self._treedef_data = reader.treedef
        self._spec = _Spec(self._loss, self._mesh)

    def _chunks(self):
        """Groups of equal-size batches, one batch per device, with their weights."""
        d = 1 if self._mesh is None else self._mesh.devices.size
        reader, pending = _Reader(), {}
        for batch in self._batches:
            leaves, size = reader.read(batch)
            pending.setdefault(size, []).append(leaves)
            if len(pending[size]) == d:
                yield self._group(pending.pop(size), size)
        for size, group in pending.items():
            yield self._group(group, size)
        if reader.total != self.num_examples:
            raise ValueError(f"a pass over batches gave {reader.total} examples, not the "
                             f"{self.num_examples} of the first; pass data that yield the same "
                             f"examples at every pass.")

    def _group(self, group, size):
        return (_stack(group, [size / self.num_examples] * len(group), self._treedef_data,
                       self._mesh),)

    def value_and_grad(self, x: Any) -> tuple[float, np.ndarray]:
        """``(f(x), grad f(x))`` for a flat ``x`` of ``n`` entries, in float64 NumPy."""
        params = self._as_params(jnp.asarray(x, dtype=jnp.float64).reshape(-1))
        value = 0.0
        grad: Any = 0.0
        for groups in self._chunks():
            v, g = _jit_value_and_grad(self._spec, groups, params)
            value, grad = value + float(v), grad + np.asarray(ravel_pytree(g)[0])
        return value, grad

    def hvp(self, x: Any, v: Any) -> np.ndarray:
        """The Hessian-vector product ``H(x) v`` (exact) for flat ``x`` and ``v``."""
        params = self._as_params(jnp.asarray(x, dtype=jnp.float64).reshape(-1))
        tangent = self._as_params(jnp.asarray(v, dtype=jnp.float64).reshape(-1))
        hv: Any = 0.0
        for groups in self._chunks():
            hv = hv + np.asarray(ravel_pytree(_jit_hvp(self._spec, groups, params, tangent))[0])
        return hv
