"""Which of two trained MLPs is flatter, once the rescaling symmetry is factored out?

Trains two MLPs 64-32-10 on scikit-learn's digits (small and large batches, the same
initialization), balances each with ``flatminima.balance_network`` (the point of its
rescaling orbit where every conserved quantity ||w_in||^2 + b^2 - ||w_out||^2 vanishes;
the function is unchanged), and compares them by the maximal variation of the training
loss, next to the Hessian's top eigenvalue and test accuracy. The full study with more
networks, SAM, a CNN, plots and tables: ``flatminima study [--quick] --out DIR``.

    python examples/study_mlp.py
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from sklearn.datasets import load_digits

import flatminima as fm
from flatminima.networks import mlp_forward

digits = load_digits()
order = np.random.default_rng(0).permutation(len(digits.target))
x, y = jnp.asarray(digits.data[order] / 16.0), jnp.asarray(digits.target[order])
x_train, y_train, x_test, y_test = x[:1200], y[:1200], x[1200:], y[1200:]


def cross_entropy(params, xb, yb):
    return optax.softmax_cross_entropy_with_integer_labels(mlp_forward(params, xb), yb).mean()


def train(batch, steps=600, seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = [(jax.random.normal(keys[0], (32, 64)) * jnp.sqrt(2 / 64), jnp.zeros(32)),
              (jax.random.normal(keys[1], (10, 32)) * jnp.sqrt(2 / 32), jnp.zeros(10))]
    opt = optax.sgd(0.05, momentum=0.9)

    @jax.jit
    def step(carry, key):
        p, state = carry
        idx = jax.random.choice(key, len(y_train), (batch,), replace=False)
        updates, state = opt.update(jax.grad(cross_entropy)(p, x_train[idx], y_train[idx]), state)
        return (optax.apply_updates(p, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(keys[2], steps))
    return params


nets = {"batch 32": train(32), "batch 600": train(600)}
unravel = ravel_pytree(nets["batch 32"])[1]
loss = jax.jit(lambda v: cross_entropy(unravel(v), x_train, y_train))  # one compiled loss
radius = 0.01
balanced = {}
for name, params in nets.items():
    res = fm.balance_network(params, inputs=x_test)
    flat, flat_b = ravel_pytree(params)[0], ravel_pytree(res.params)[0]
    balanced[name] = flat_b
    acc = float(jnp.mean(jnp.argmax(mlp_forward(params, x_test), 1) == y_test))
    print(f"{name}: test accuracy {100 * acc:.1f}%, loss {float(loss(flat)):.4g}; balancing: "
          f"outputs changed by {res.output_change:.1e}, max |q_j| {res.imbalance_before:.3g} -> "
          f"{res.imbalance_after:.1e}")
    for tag, point in (("as trained", flat), ("balanced  ", flat_b)):
        print(f"   {tag}: V(x, {radius}) >= {fm.max_variation(loss, point, radius).value:.6g}, "
              f"Hessian top eigenvalue {fm.sharpness.hessian_eigmax(loss, point).value:.6g}")

verdict = fm.compare(loss, balanced["batch 32"], balanced["batch 600"],
                     radius * np.logspace(0, -1, 3)).verdict
print(f"balanced batch-32 network relative to the balanced batch-600 network: {verdict}")
