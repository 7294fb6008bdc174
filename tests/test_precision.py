"""Tolerances follow the precision f is computed in (SPEC 4 and 12)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

import flatminima as fm
from flatminima._objective import as_objective
from flatminima.examples import figure1

EPS32 = float(np.finfo(np.float32).eps)

rng = np.random.default_rng(0)
DATA_X = rng.normal(size=(8, 2))
DATA_Y = np.sin(DATA_X[:, 0]) + 0.5 * DATA_X[:, 1]


def mlp_loss(p, dtype):
    """Mean squared error of a 2-3-1 tanh network computed in ``dtype``."""
    W1, b1, W2 = (jnp.asarray(p[k]).astype(dtype) for k in ("W1", "b1", "W2"))
    h = jnp.tanh(jnp.asarray(DATA_X, dtype) @ W1.T + b1)
    return jnp.mean((h @ W2 - jnp.asarray(DATA_Y, dtype)) ** 2)


def trained_point():
    """A local minimizer of the float64 loss (BFGS), as a dict of arrays."""
    shapes = {"W1": (3, 2), "b1": (3,), "W2": (3,)}
    sizes = np.cumsum([0] + [int(np.prod(s)) for s in shapes.values()])
    unravel = lambda v: {k: v[a:b].reshape(s) for (k, s), a, b in
                         zip(shapes.items(), sizes[:-1], sizes[1:])}
    loss = jax.jit(jax.value_and_grad(lambda v: mlp_loss(unravel(v), jnp.float64)))
    fg = lambda v: tuple(np.asarray(t, dtype=float) for t in loss(jnp.asarray(v)))
    res = minimize(fg, rng.normal(size=sizes[-1]), jac=True, method="BFGS",
                   options={"gtol": 1e-10})
    return unravel(res.x)


def mlp32(p):
    return mlp_loss(p, jnp.float32)


def mlp64(p):
    return mlp_loss(p, jnp.float64)


def figure1_float32(y):
    return figure1(jnp.asarray(y).astype(jnp.float32))


def permuted(p, perm):
    return {"W1": p["W1"][perm], "b1": p["b1"][perm], "W2": p["W2"][perm]}


def test_permuted_hidden_units_are_equivalent_in_float32_and_float64():
    """SPEC 12: points exchanged by a permutation of hidden units have the same profile."""
    p = trained_point()
    q = permuted(p, [2, 0, 1])
    radii = [0.1, 0.03, 0.01]
    c32 = fm.compare(mlp32, p, q, radii)
    assert c32.precision == "float32" and c32.profile_x.precision == "float32"
    assert c32.verdict == "equivalent", c32.reason
    assert c32.rtol == pytest.approx(4.5e5 * EPS32, rel=1e-3)
    c64 = fm.compare(mlp64, p, q, radii)
    assert c64.precision == "float64" and c64.rtol == pytest.approx(1e-10)
    assert c64.verdict == "equivalent", c64.reason


def test_a_sharper_pair_is_still_resolved_in_float32():
    """Figure 1 in float32: V((0,0), r) = r^2 and V((2,0), r) = r^2 + 4 r^4 + O(r^6); the
    difference, 16-40% of V at these radii, is far above float32 rounding."""
    radii = [0.4, 0.3, 0.2]
    c = fm.compare(figure1_float32, [0.0, 0.0], [2.0, 0.0], radii)
    assert c.precision == "float32" and c.verdict == "flatter"
    c64 = fm.compare(figure1, [0.0, 0.0], [2.0, 0.0], radii)
    # the float32 difference agrees with the float64 one within the stated tolerance
    assert np.all(np.abs(c.difference - c64.difference) <= c.tolerance)
    np.testing.assert_allclose(c64.profile_x.values, np.square(radii), rtol=1e-12)


@pytest.mark.parametrize("make, expected", [
    (lambda: (lambda y: jnp.sum(y.astype(jnp.float32) ** 2), np.ones(3)), "float32"),
    (lambda: (lambda y: jnp.sum(y ** 2), np.ones(3, dtype=np.float32)), "float32"),
    (lambda: (lambda y: jnp.sum(y ** 2), np.ones(3)), "float64"),
    (lambda: (lambda y: jnp.sum(y ** 2), [1, 2, 3]), "float64"),
    (lambda: (lambda y: jnp.sum(y.astype(jnp.bfloat16) ** 2), np.ones(3)), "bfloat16"),
    (lambda: (lambda p: jnp.sum(p["a"] ** 2) + p["b"],
              {"a": np.ones(2), "b": np.float32(1.0)}), "float32"),
])
def test_precision_is_the_coarsest_of_output_and_leaves(make, expected):
    f, x = make()
    obj, _ = as_objective(f, x)
    assert obj.precision == expected
    assert obj.eps == float(jnp.finfo(jnp.dtype(expected)).eps)


class Float32ValueAndGrad:
    """An object objective (the form PyTorch models come in) that states its dtype."""

    dtype = "torch.float32"

    def value_and_grad(self, x):
        return float(np.sum(x ** 2)), 2.0 * np.asarray(x)


def test_value_and_grad_objects_state_their_precision():
    obj, _ = as_objective(Float32ValueAndGrad(), np.ones(2))
    assert obj.precision == "float32"
