"""The wrapped objective: compiled code keyed on code and shapes, never on the data, and
never keeping the user's data alive; the NumPy bridge's exact Hessian-vector products."""

import gc
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flatminima as fm
from flatminima import _flat
from flatminima._hessian import dense_hessian
from flatminima._objective import as_objective
from flatminima.solvers import ProjectedAscent
from flatminima.solvers._ascent import _ascend


def _quadratic_variation(X, r):
    """V(0, r) of f(w) = 1/2 |X w|^2 is r^2 lambda_max(X'X) / 2 (exact)."""
    return 0.5 * r**2 * np.linalg.eigvalsh(X.T @ X)[-1]


def test_new_closure_over_new_arrays_reuses_compiled_code_and_gives_its_own_value():
    rng = np.random.default_rng(0)
    Xs = [jnp.asarray(rng.standard_normal((6, 3))) for _ in range(3)]
    values, sizes = [], []
    for X in Xs:
        f = lambda w, X=X: 0.5 * jnp.sum((X @ w) ** 2)
        values.append(fm.max_variation(f, np.zeros(3), 0.5, solver=ProjectedAscent()).value)
        sizes.append((_ascend._cache_size(), _flat._evaluate._cache_size()))
    assert sizes[1] == sizes[0] and sizes[2] == sizes[0]  # no recompilation
    for X, v in zip(Xs, values):
        assert v == pytest.approx(_quadratic_variation(np.asarray(X), 0.5), rel=1e-9)
    assert len(set(values)) == 3


def test_integer_data_is_not_baked_into_shared_code():
    w0 = np.array([1.0, 2.0, 3.0])
    objs = [as_objective(lambda w, i=np.array(idx): jnp.sum(w[i] ** 2), w0)[0]
            for idx in ([0, 1], [1, 2])]
    assert objs[0].fun.code == objs[1].fun.code
    assert float(objs[0].fun(jnp.asarray(w0))) == 5.0
    assert float(objs[1].fun(jnp.asarray(w0))) == 13.0


def test_derivative_rules_that_close_over_arrays_are_not_shared():
    def make(X):
        @jax.custom_jvp
        def h(w):
            return jnp.sum(X @ w)

        h.defjvp(lambda p, t: (h(p[0]), 2.0 * jnp.sum(X @ t[0])))  # a deliberately odd rule
        return h

    X1, X2 = jnp.ones((2, 3)), jnp.arange(6.0).reshape(2, 3)
    g1 = jax.grad(as_objective(make(X1), np.ones(3))[0].fun)(jnp.ones(3))
    g2 = jax.grad(as_objective(make(X2), np.ones(3))[0].fun)(jnp.ones(3))
    np.testing.assert_allclose(g1, 2.0 * X1.sum(0))
    np.testing.assert_allclose(g2, 2.0 * X2.sum(0))


def test_library_rules_such_as_relu_share_code():
    X1, X2 = jnp.ones((4, 3)), -jnp.ones((4, 3))
    o1 = as_objective(lambda w: jnp.sum(jax.nn.relu(X1 @ w)), np.ones(3))[0]
    o2 = as_objective(lambda w: jnp.sum(jax.nn.relu(X2 @ w)), np.ones(3))[0]
    assert o1.fun.code == o2.fun.code
    assert float(o1.fun(jnp.ones(3))) == 12.0 and float(o2.fun(jnp.ones(3))) == 0.0


@pytest.mark.parametrize("wrap", [lambda g: g, jax.jit], ids=["plain", "jitted"])
def test_objectives_do_not_keep_the_data_alive(wrap):
    X = np.random.default_rng(1).standard_normal((50, 4))
    ref = weakref.ref(X)
    f = wrap(lambda w, X=X: jnp.mean(jnp.tanh(X @ w) ** 2))
    fm.max_variation(f, np.ones(4), 0.1)
    fm.sharpness.hessian_trace(f, np.ones(4))
    del f, X
    gc.collect()
    assert ref() is None


class _Cubic:
    """f(x) = sum x^3 with NumPy value_and_grad and an exact hvp; counts the calls."""

    def __init__(self, with_hvp):
        self.calls = {"vg": 0, "hvp": 0}
        if with_hvp:
            self.hvp = self._hvp

    def value_and_grad(self, x):
        self.calls["vg"] += 1
        return float(np.sum(x**3)), 3 * x**2

    def _hvp(self, x, v):
        self.calls["hvp"] += 1
        return 6 * x * v


def test_bridge_uses_the_objects_exact_hvp():
    cubic = _Cubic(with_hvp=True)
    obj, x = as_objective(cubic, np.array([1.0, -2.0, 0.5]))
    H = np.asarray(dense_hessian(obj, x))
    np.testing.assert_array_equal(H, np.diag([6.0, -12.0, 3.0]))  # exact, no rounding
    assert cubic.calls["hvp"] == 3


def test_bridge_without_hvp_falls_back_to_differences_of_the_gradient():
    obj, x = as_objective(_Cubic(with_hvp=False), np.array([1.0, -2.0, 0.5]))
    np.testing.assert_allclose(np.asarray(dense_hessian(obj, x)), np.diag([6.0, -12.0, 3.0]),
                               rtol=1e-8, atol=1e-8)


def test_bridged_object_is_released_and_code_is_shared():
    cubic = _Cubic(with_hvp=True)
    ref = weakref.ref(cubic)
    fm.max_variation(cubic, np.ones(3), 0.1)
    size = _ascend._cache_size()
    fm.max_variation(_Cubic(with_hvp=True), np.ones(3), 0.1)
    assert _ascend._cache_size() == size
    del cubic
    gc.collect()
    assert ref() is None


def test_passing_an_objectives_function_on_reuses_it():
    obj, x = as_objective(lambda w: jnp.sum(w**4), np.ones(2))
    again, _ = as_objective(obj.fun, x)
    assert again.fun is obj.fun
    assert fm.max_variation(obj.fun, np.zeros(2), 1.0).value == pytest.approx(1.0, rel=1e-9)


def test_untraceable_function_is_a_clear_error():
    def branchy(w):
        return w[0] if w[0] > 0 else -w[0]

    with pytest.raises(ValueError, match="traceable by JAX"):
        as_objective(branchy, np.ones(2))
