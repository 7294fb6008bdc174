"""Rescaling symmetries of ReLU networks and their balanced representatives (SPEC 12).

A network whose hidden layers are affine maps followed by a positively homogeneous
activation (ReLU, leaky ReLU, identity; max pooling too) computes the same function after
hidden unit j of layer l is rescaled: its incoming weights and bias times ``a > 0``, its
outgoing weights divided by ``a``. With log-scales ``s`` (``s = 0`` on the input and the
output) the parameters move as ``W_l[j, i] -> W_l[j, i] exp(s_l[j] - s_{l-1}[i])`` and
``b_l[j] -> b_l[j] exp(s_l[j])``, so the total squared norm on the orbit is

    F(s) = sum_l sum_{j,i} W_l[j, i]^2 exp(2 (s_l[j] - s_{l-1}[i])) + sum_l sum_j b_l[j]^2 exp(2 s_l[j]),

a sum of exponentials of linear forms: convex, and strictly convex and coercive when no
unit is dead. Its half-gradient in ``s_l[j]`` is the conserved quantity of the unit,
``q_j = ||W_l[j, :]||^2 + b_l[j]^2 - ||W_{l+1}[:, j]||^2``, so the minimizer is the point
of the orbit where every ``q_j`` vanishes: the balanced representative. It is found by
Newton's method on ``s`` with a backtracking line search (quadratic convergence).

Layers are given as a PyTorch ``nn.Sequential`` (Linear and Conv layers between ReLU,
LeakyReLU, Identity, Flatten, pooling and Dropout modules) or as a list of ``(W, b)``
pairs with ``W`` of shape ``(out, in, ...)`` (convolution kernels keep their extra axes).
A layer whose input width is a multiple ``g`` of the previous layer's width takes a
channel-major flattened input (``nn.Flatten`` on NCHW): columns ``i g ... (i + 1) g - 1``
belong to unit ``i``.

Reference: L. Dinh, R. Pascanu, S. Bengio, Y. Bengio, "Sharp minima can generalize for deep
nets", ICML 2017; S. Du, W. Hu, J. Lee, "Algorithmic regularization in learning deep
homogeneous models: layers are automatically balanced", NeurIPS 2018.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np

from ._report import result_type
from ._warn import warn
from ._x64 import float64

__all__ = ["BalanceResult", "balance_network", "mlp_forward", "neuron_imbalance",
           "rescale_network"]

_TORCH_LAYERS = ("Linear", "Conv1d", "Conv2d", "Conv3d")
_TORCH_HOMOGENEOUS = ("ReLU", "LeakyReLU", "Identity", "Flatten", "MaxPool1d", "MaxPool2d",
                      "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "Dropout")


def _torch_layers(model) -> list:
    mods = list(model.children())
    if not mods:
        raise TypeError("pass an nn.Sequential of Linear/Conv layers and activations.")
    layers = []
    for i, m in enumerate(mods):
        name = type(m).__name__
        if name in _TORCH_LAYERS:
            layers.append(m)
        elif name not in _TORCH_HOMOGENEOUS:
            raise ValueError(f"module {i} ({name}) is not positively homogeneous; the rescaling "
                             f"symmetry needs {', '.join(_TORCH_HOMOGENEOUS[:3])} activations "
                             "between Linear/Conv layers (no BatchNorm, Tanh, ...).")
    return layers


def _unpack(params) -> tuple[list, Any]:
    """``(layers, rebuild)``: float64 NumPy ``(W, b or None)`` pairs, and a function that
    puts new pairs back into the user's structure (never modifying the original)."""
    if hasattr(params, "children") and hasattr(params, "parameters"):
        mods = _torch_layers(params)
        pairs = [(m.weight.detach().cpu().double().numpy().copy(),
                  None if m.bias is None else m.bias.detach().cpu().double().numpy().copy())
                 for m in mods]

        def rebuild(new):
            import torch

            model = copy.deepcopy(params)
            with torch.no_grad():
                for m, (W, b) in zip(_torch_layers(model), new):
                    m.weight.copy_(torch.as_tensor(W, dtype=m.weight.dtype))
                    if b is not None:
                        m.bias.copy_(torch.as_tensor(b, dtype=m.bias.dtype))
            return model
    elif isinstance(params, (list, tuple)) and all(
            isinstance(p, (list, tuple)) and len(p) == 2 for p in params):
        pairs = [(np.array(W, dtype=float), None if b is None else np.array(b, dtype=float))
                 for W, b in params]
        kind = type(params)
        rebuild = lambda new: kind(tuple(jnp.asarray(a) if a is not None else None for a in p)
                                   for p in new)
    else:
        raise TypeError("params must be an nn.Sequential or a list of (W, b) pairs with W of "
                        f"shape (out, in), got {type(params).__name__}.")
    _check_pairs(pairs)
    return pairs, rebuild


def _check_pairs(pairs) -> None:
    if len(pairs) < 2:
        raise ValueError("a network with a rescaling symmetry needs at least two layers "
                         "(one hidden layer); got one.")
    for k, (W, b) in enumerate(pairs):
        if W.ndim < 2:
            raise ValueError(f"layer {k}: W must have shape (out, in, ...), got {W.shape}.")
        if b is not None and b.shape != (W.shape[0],):
            raise ValueError(f"layer {k}: b has shape {b.shape}, expected ({W.shape[0]},).")
        if not np.all(np.isfinite(W)) or (b is not None and not np.all(np.isfinite(b))):
            raise ValueError(f"layer {k} has NaN or infinite entries.")
        if k and W.shape[1] % pairs[k - 1][0].shape[0]:
            raise ValueError(f"layer {k} takes {W.shape[1]} inputs, not a multiple of the "
                             f"{pairs[k - 1][0].shape[0]} units of layer {k - 1}.")


def _group(pairs, k: int) -> int:
    """Input columns of layer k per unit of layer k - 1 (1, or H*W after a flatten)."""
    return pairs[k][0].shape[1] // pairs[k - 1][0].shape[0]


def _squares(pairs) -> tuple[list, list, np.ndarray]:
    """``P[h]`` (units of hidden layer h by units of hidden layer h - 1) squared weights;
    ``A[h]`` the squared weights from fixed scales into hidden layer h (input weights for
    h = 0, and biases); ``C`` squared weights from the last hidden layer to the output."""
    H = len(pairs) - 1
    A, P = [], []
    for h in range(H):
        W, b = pairs[h]
        sq = (W**2).reshape(W.shape[0], W.shape[1], -1).sum(axis=2)
        a = np.zeros(W.shape[0]) if b is None else b**2
        if h == 0:
            a = a + sq.sum(axis=1)
            P.append(np.zeros((W.shape[0], 0)))
        else:
            g = _group(pairs, h)
            P.append(sq.reshape(W.shape[0], -1, g).sum(axis=2))
        A.append(a)
    W = pairs[H][0]
    g = _group(pairs, H)
    C = (W**2).reshape(W.shape[0], W.shape[1], -1).sum(axis=2).reshape(W.shape[0], -1, g).sum(
        axis=(0, 2))
    return A, P, C


def _in_out(A, P, C, s) -> tuple[list, list]:
    """Incoming and outgoing squared norms of every hidden unit at log-scales ``s``."""
    H = len(A)
    ins = [A[h] * np.exp(2 * s[h]) for h in range(H)]
    outs = [np.zeros_like(A[h]) for h in range(H)]
    for h in range(1, H):
        E = P[h] * np.exp(2 * (s[h][:, None] - s[h - 1][None, :]))
        ins[h] = ins[h] + E.sum(axis=1)
        outs[h - 1] = outs[h - 1] + E.sum(axis=0)
    outs[H - 1] = outs[H - 1] + C * np.exp(-2 * s[H - 1])
    return ins, outs


def _objective(A, P, C, s) -> float:
    ins, outs = _in_out(A, P, C, s)
    return float(sum(i.sum() for i in ins) + outs[-1].sum())


def _hessian(A, P, C, s, sizes) -> np.ndarray:
    """Hessian of ``F`` in the log-scales (a weighted graph Laplacian plus a diagonal)."""
    off = np.concatenate([[0], np.cumsum(sizes)])
    Hm = np.zeros((off[-1], off[-1]))
    ins, outs = _in_out(A, P, C, s)
    diag = np.concatenate([i + o for i, o in zip(ins, outs)])
    Hm[np.diag_indices_from(Hm)] = 4 * diag
    for h in range(1, len(A)):
        E = P[h] * np.exp(2 * (s[h][:, None] - s[h - 1][None, :]))
        Hm[off[h]:off[h + 1], off[h - 1]:off[h]] = -4 * E
        Hm[off[h - 1]:off[h], off[h]:off[h + 1]] = -4 * E.T
    return Hm


def _newton(A, P, C, alive, tol, max_iter):
    """Minimize ``F`` over the log-scales of the live units (dead ones stay at 0)."""
    sizes = [a.size for a in A]
    off = np.concatenate([[0], np.cumsum(sizes)])
    split = lambda v: [v[off[h]:off[h + 1]] for h in range(len(sizes))]
    mask = np.concatenate(alive)
    x = np.zeros(off[-1])
    for it in range(max_iter + 1):
        ins, outs = _in_out(A, P, C, split(x))
        q = np.concatenate(ins) - np.concatenate(outs)
        rel = np.abs(q[mask]) / (np.concatenate(ins) + np.concatenate(outs))[mask]
        if rel.size == 0 or rel.max() <= tol:
            return split(x), it, True
        if it == max_iter:
            break
        g = np.where(mask, 2 * q, 0.0)
        Hm = _hessian(A, P, C, split(x), sizes)
        Hm[~mask, :] = 0.0
        Hm[:, ~mask] = 0.0
        Hm[~mask, ~mask] = 1.0
        step = -np.linalg.solve(Hm, g)
        f0, slope, t = _objective(A, P, C, split(x)), float(g @ step), 1.0
        while t > 1e-12 and _objective(A, P, C, split(x + t * step)) > f0 + 1e-4 * t * slope:
            t *= 0.5
        x = x + t * step
    return split(x), max_iter, False


def _apply(pairs, scales) -> list:
    """The pairs rescaled by per-unit factors ``scales[h]`` of hidden layer h."""
    H = len(pairs) - 1
    out = []
    for k, (W, b) in enumerate(pairs):
        row = scales[k] if k < H else np.ones(W.shape[0])
        col = np.ones(W.shape[1]) if k == 0 else np.repeat(1.0 / scales[k - 1], _group(pairs, k))
        shape = (W.shape[0], W.shape[1]) + (1,) * (W.ndim - 2)
        out.append((W * (row[:, None] * col[None, :]).reshape(shape),
                    None if b is None else b * row))
    return out


@float64
def neuron_imbalance(params) -> list[np.ndarray]:
    """The conserved quantities ``q_j = ||w_in,j||^2 + b_j^2 - ||w_out,j||^2`` of the
    hidden units, one array per hidden layer (SPEC section 12).

    >>> import numpy as np
    >>> W1, b1, W2 = np.array([[1.0, 2.0]]), np.array([2.0]), np.array([[3.0]])
    >>> neuron_imbalance([(W1, b1), (W2, np.zeros(1))])
    [array([0.])]
    """
    pairs, _ = _unpack(params)
    A, P, C = _squares(pairs)
    ins, outs = _in_out(A, P, C, [np.zeros(a.size) for a in A])
    return [i - o for i, o in zip(ins, outs)]


@float64
def rescale_network(params, scales) -> Any:
    """The point ``scales`` along the rescaling orbit: hidden unit j of hidden layer h has
    its incoming weights and bias multiplied by ``scales[h][j] > 0`` and its outgoing
    weights divided by it. The function computed is unchanged (positively homogeneous
    activations). Returns the same structure as ``params`` (a new object).

    >>> import numpy as np
    >>> p = [(np.array([[1.0, 2.0]]), np.array([0.5])), (np.array([[3.0]]), np.array([0.0]))]
    >>> [np.asarray(a).tolist() for a in rescale_network(p, [np.array([2.0])])[1]]
    [[[1.5]], [0.0]]
    """
    pairs, rebuild = _unpack(params)
    scales = list(scales) if isinstance(scales, (list, tuple)) else [scales]
    if len(scales) != len(pairs) - 1:
        raise ValueError(f"scales needs one array per hidden layer ({len(pairs) - 1}), got "
                         f"{len(scales)}.")
    checked = []
    for h, a in enumerate(scales):
        a = np.asarray(a, dtype=float).reshape(-1)
        if a.size != pairs[h][0].shape[0]:
            raise ValueError(f"scales[{h}] has {a.size} entries; hidden layer {h} has "
                             f"{pairs[h][0].shape[0]} units.")
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise ValueError(f"scales[{h}] must be finite and positive.")
        checked.append(a)
    return rebuild(_apply(pairs, checked))


def mlp_forward(params, inputs, activation: str = "relu", negative_slope: float = 0.01):
    """Outputs of the MLP ``x -> W_L sigma(... sigma(W_1 x + b_1) ...) + b_L`` for
    ``inputs`` of shape ``(batch, in)``, with ``sigma`` one of ``"relu"``,
    ``"leaky_relu"`` (slope ``negative_slope``) or ``"identity"``."""
    acts = {"relu": lambda z: jnp.maximum(z, 0.0),
            "leaky_relu": lambda z: jnp.where(z > 0, z, negative_slope * z),
            "identity": lambda z: z}
    if activation not in acts:
        raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}.")
    z = jnp.asarray(inputs)
    for k, (W, b) in enumerate(params):
        z = z @ jnp.asarray(W).T + (0.0 if b is None else jnp.asarray(b))
        if k < len(params) - 1:
            z = acts[activation](z)
    return z


@result_type()
@dataclass(frozen=True)
class BalanceResult:
    """The balanced representative of a network's rescaling orbit and its evidence.

    ``params``: the balanced network, in the structure passed in; ``scales``: the factors
    applied (``params == rescale_network(original, scales)``); ``imbalance_before`` and
    ``imbalance_after``: ``max_j |q_j|`` over the live units, measured on the parameters as
    returned (a float32 model keeps rounding errors of order 1e-7 relative);
    ``squared_norm_before/after``: total squared norm of the weights and biases (the
    after value is the minimum over the orbit); ``dead_neurons``: ``(hidden layer, unit)``
    with zero incoming or outgoing weights, left unscaled; ``output_change``: largest
    ``|out_after - out_before| / max |out_before|`` on ``inputs`` (None without inputs);
    ``loss_before/after``, ``flatness_before/after`` (``V(x, radius)``, lower bounds) and
    ``eigmax_before/after`` (Hessian top eigenvalue) when a loss was given.
    """

    params: Any
    scales: list
    imbalance_before: float
    imbalance_after: float
    squared_norm_before: float
    squared_norm_after: float
    dead_neurons: list
    n_iter: int
    converged: bool
    message: str
    output_change: float | None = None
    radius: float | None = None
    loss_before: float | None = None
    loss_after: float | None = None
    flatness_before: float | None = None
    flatness_after: float | None = None
    eigmax_before: float | None = None
    eigmax_after: float | None = None


def _sq_norm(pairs) -> float:
    return float(sum((W**2).sum() + (0.0 if b is None else (b**2).sum()) for W, b in pairs))


def _max_imbalance(pairs, alive) -> float:
    A, P, C = _squares(pairs)
    ins, outs = _in_out(A, P, C, [np.zeros(a.size) for a in A])
    q = np.concatenate(ins) - np.concatenate(outs)
    mask = np.concatenate(alive)
    return float(np.abs(q[mask]).max()) if mask.any() else 0.0


@float64
def balance_network(params, *, loss: Any = None, radius: float = 1e-2, inputs: Any = None,
                    forward: Any = None, activation: str = "relu", tol: float = 1e-12,
                    max_iter: int = 100, seed: int = 0) -> BalanceResult:
    """The balanced representative of the rescaling orbit of ``params`` (SPEC section 12):
    the rescaling ``a`` of the hidden units minimizing the total squared norm, where every
    conserved quantity ``q_j = ||w_in,j||^2 + b_j^2 - ||w_out,j||^2`` vanishes.

    Args:
        params: an ``nn.Sequential`` or a list of ``(W, b)`` pairs (``W`` of shape
            ``(out, in, ...)``, ``b`` of shape ``(out,)`` or None).
        loss: optional objective of the parameters (for a list: ``loss(pairs)``, JAX; for
            a model: ``loss(model)`` returning a scalar tensor); then ``V(x, radius)`` and
            the Hessian top eigenvalue are reported before and after.
        inputs, forward: optional data on which the outputs before and after are
            compared; ``forward(params, inputs)`` defaults to ``model(inputs)`` for a
            model and to :func:`mlp_forward` with ``activation`` for a list.
        tol: stop when ``|q_j| <= tol (||w_in,j||^2 + b_j^2 + ||w_out,j||^2)`` for all
            live units (Newton's method on the log-scales, at most ``max_iter`` steps).

    Raises ``ValueError`` for inconsistent shapes, non-homogeneous torch modules or
    non-finite entries. Units with zero incoming or outgoing weights are dead: listed in
    ``dead_neurons`` with a warning, and left as they are.

    >>> import numpy as np
    >>> p = [(np.array([[4.0, 0.0]]), np.array([0.0])), (np.array([[1.0]]), np.array([0.5]))]
    >>> res = balance_network(p)
    >>> [round(float(np.asarray(W)[0, 0]), 12) for W, _ in res.params], res.imbalance_after < 1e-12
    ([2.0, 2.0], True)
    """
    pairs, rebuild = _unpack(params)
    A, P, C = _squares(pairs)
    ins, outs = _in_out(A, P, C, [np.zeros(a.size) for a in A])
    alive = [(i > 0) & (o > 0) for i, o in zip(ins, outs)]
    dead = [(h, int(j)) for h, a in enumerate(alive) for j in np.flatnonzero(~a)]
    if dead:
        warn(f"{len(dead)} dead hidden unit(s) (zero incoming or outgoing weights), "
                      f"left unscaled: {dead[:5]}{' ...' if len(dead) > 5 else ''}")
    s, n_iter, converged = _newton(A, P, C, alive, tol, max_iter)
    scales = [np.exp(v) for v in s]
    new = _apply(pairs, scales)
    balanced = rebuild(new)
    if not converged:
        warn(f"not converged after {max_iter} Newton steps; raise max_iter")
    extra: dict = {}
    if inputs is not None:
        fwd = forward or ((lambda m, x: m(x).detach().double().numpy()) if hasattr(
            params, "parameters") else (lambda p, x: mlp_forward(p, x, activation)))
        before, after = np.asarray(fwd(params, inputs)), np.asarray(fwd(balanced, inputs))
        extra["output_change"] = float(np.abs(after - before).max() / max(np.abs(before).max(),
                                                                          1e-300))
    if loss is not None:
        extra.update(_flatness_pair(loss, params, balanced, radius, seed))
    stored = _unpack(balanced)[0]  # as stored: a float32 model rounds the balanced weights
    imbalance = _max_imbalance(stored, alive)
    message = (f"balanced: |q_j| <= {tol:g} (in + out) at every live unit after {n_iter} "
               f"Newton steps in float64; as stored, max |q_j| = {imbalance:.2g} (the parameters' "
               f"own precision rounds the scaled weights)" if converged else
               f"not converged after {max_iter} Newton steps; raise max_iter")
    return BalanceResult(balanced, scales, _max_imbalance(pairs, alive), imbalance,
                         _sq_norm(pairs), _sq_norm(stored), dead, n_iter, converged, message,
                         **extra)


def _flatness_pair(loss, before, after, radius, seed) -> dict:
    from jax.flatten_util import ravel_pytree

    from ._variation import max_variation
    from .sharpness import hessian_eigmax

    out: dict = {"radius": float(radius)}
    if hasattr(before, "parameters"):  # copies: TorchObjective writes into its model
        from .torch_adapter import TorchObjective

        points: dict = {}
        for tag, p in (("before", before), ("after", after)):
            f = TorchObjective(copy.deepcopy(p), loss)
            points[tag] = (f, f.point())
    else:  # one flat function for both points, so compiled solvers are shared
        unravel = ravel_pytree(before)[1]
        flat_loss = lambda v: loss(unravel(v))
        points = {tag: (flat_loss, ravel_pytree(p)[0]) for tag, p in (("before", before),
                                                                       ("after", after))}
    for tag, (f, x) in points.items():
        out[f"loss_{tag}"] = float(f.value_and_grad(x)[0] if hasattr(f, "value_and_grad")
                                   else f(x))
        out[f"flatness_{tag}"] = max_variation(f, x, radius, seed=seed).value
        out[f"eigmax_{tag}"] = hessian_eigmax(f, x, seed=seed).value
    return out
