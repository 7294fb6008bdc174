"""Small networks trained on scikit-learn's digits, for the network study.

Models are lists of ``(W, b)`` pairs (``W`` of shape ``(out, in, ...)``, the layout of
:mod:`flatminima.networks`): an MLP with ReLU hidden layers, and a CNN (two valid 3x3
convolutions with ReLU, NCHW, then a linear layer on the channel-major flattened maps).
Training is minibatch SGD or SAM (Foret et al., 2021) with optax, compiled once per
architecture and batch size, in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax


@dataclass(frozen=True)
class Digits:
    """The 8x8 digits (pixels scaled to [0, 1]) split into train and test sets."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split(n_train: int = 1200, seed: int = 0) -> Digits:
    """scikit-learn's digits (1797 images), shuffled with ``seed`` and split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError("the network study needs scikit-learn: pip install scikit-learn") from err
    data = load_digits()
    order = np.random.default_rng(seed).permutation(len(data.target))
    x, y = data.data[order] / 16.0, data.target[order]
    return Digits(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def init_mlp(key, widths) -> list:
    """He-initialized ``(W, b)`` pairs for layer widths ``(in, hidden..., out)``."""
    keys = jax.random.split(key, len(widths) - 1)
    return [(jax.random.normal(k, (o, i)) * jnp.sqrt(2.0 / i), jnp.zeros(o))
            for k, i, o in zip(keys, widths[:-1], widths[1:])]


def init_cnn(key, channels=(4, 8), n_classes: int = 10) -> list:
    """Two valid 3x3 convolutions on 1x8x8 images, then a linear layer (4x4 maps)."""
    k1, k2, k3 = jax.random.split(key, 3)
    c1, c2 = channels
    return [(jax.random.normal(k1, (c1, 1, 3, 3)) * jnp.sqrt(2.0 / 9), jnp.zeros(c1)),
            (jax.random.normal(k2, (c2, c1, 3, 3)) * jnp.sqrt(2.0 / (9 * c1)), jnp.zeros(c2)),
            (jax.random.normal(k3, (n_classes, c2 * 16)) * jnp.sqrt(1.0 / (c2 * 16)),
             jnp.zeros(n_classes))]


def mlp_logits(params, x):
    z = x
    for k, (W, b) in enumerate(params):
        z = z @ W.T + b
        if k < len(params) - 1:
            z = jax.nn.relu(z)
    return z


def cnn_logits(params, x):
    z = x.reshape(-1, 1, 8, 8)
    for W, b in params[:-1]:
        z = jax.lax.conv_general_dilated(z, W, (1, 1), "VALID",
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
        z = jax.nn.relu(z + b[None, :, None, None])
    W, b = params[-1]
    return z.reshape(z.shape[0], -1) @ W.T + b


ARCHITECTURES = {"mlp": mlp_logits, "cnn": cnn_logits}


def cross_entropy(logits_fn, params, x, y):
    """Mean cross-entropy of the softmax of the logits against integer labels."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits_fn(params, x), y))


def accuracy(logits_fn, params, x, y) -> float:
    return float(jnp.mean(jnp.argmax(logits_fn(params, x), axis=1) == y))


@partial(jax.jit, static_argnames=("arch", "batch", "steps", "lr"))
def _train(params, x, y, key, rho, *, arch, batch, steps, lr):
    logits_fn = ARCHITECTURES[arch]
    loss = lambda p, xb, yb: cross_entropy(logits_fn, p, xb, yb)
    opt = optax.sgd(lr, momentum=0.9)
    n = x.shape[0]

    def step(carry, k):
        p, state = carry
        idx = jax.random.choice(k, n, (batch,), replace=False)
        xb, yb = x[idx], y[idx]
        g = jax.grad(loss)(p, xb, yb)
        # SAM: the gradient at the ascent point p + rho g / ||g|| (rho = 0: plain SGD; one
        # compiled program serves both)
        norm = optax.global_norm(g)
        p_adv = jax.tree_util.tree_map(lambda a, d: a + rho * d / (norm + 1e-12), p, g)
        g = jax.grad(loss)(p_adv, xb, yb)
        updates, state = opt.update(g, state, p)
        return (optax.apply_updates(p, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(key, steps))
    return params


def train(arch: str, data: Digits, *, batch: int, optimizer: str, steps: int, seed: int,
          lr: float = 0.05, rho: float = 0.05, chunks: int = 1, tick=None) -> list:
    """Train a fresh network of architecture ``arch`` ("mlp" or "cnn") by SGD with
    momentum 0.9 or SAM; ``chunks`` splits the steps for progress reporting."""
    if arch not in ARCHITECTURES or optimizer not in ("sgd", "sam"):
        raise ValueError(f"arch must be 'mlp' or 'cnn' and optimizer 'sgd' or 'sam', got "
                         f"{arch!r}, {optimizer!r}.")
    key = jax.random.PRNGKey(seed)
    k_init, k_train = jax.random.split(key)
    params = init_mlp(k_init, (64, 32, 10)) if arch == "mlp" else init_cnn(k_init)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    per = steps // chunks
    for k in jax.random.split(k_train, chunks):
        params = _train(params, x, y, k, rho if optimizer == "sam" else 0.0, arch=arch,
                        batch=batch, steps=per, lr=lr)
        if tick is not None:
            tick()
    return params
