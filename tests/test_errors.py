"""Bad input raises at the public boundary with a message naming the argument."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import flatminima as fm

f = lambda y: jnp.sum(y**2)


@pytest.mark.parametrize("r, match", [(-1.0, "negative"), (np.nan, "not finite"),
                                      (np.inf, "not finite"), ("a", "real number")])
def test_bad_radius(r, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fm.max_variation(f, [0.0, 0.0], r)


@pytest.mark.parametrize("delta", [0.0, -1.0, np.nan])
def test_bad_delta(delta):
    with pytest.raises(ValueError, match="delta"):
        fm.level_distance(f, [0.0, 0.0], delta)


def test_point_with_nan():
    with pytest.raises(ValueError, match="x contains NaN"):
        fm.max_variation(f, [np.nan, 0.0], 0.1)


def test_non_scalar_output():
    with pytest.raises(ValueError, match="must return a scalar"):
        fm.max_variation(lambda y: y**2, [1.0, 2.0], 0.1)


def test_non_finite_value_at_x():
    with pytest.raises(ValueError, match="not finite"):
        fm.max_variation(lambda y: jnp.log(y[0]), [0.0, 1.0], 0.1)


def test_function_that_raises():
    def bad(y):
        raise RuntimeError("boom")

    with pytest.raises(ValueError, match="raised RuntimeError"):
        fm.max_variation(bad, [1.0], 0.1)


def test_mismatched_shapes():
    with pytest.raises(ValueError, match="raised"):
        fm.max_variation(lambda y: y @ jnp.ones(3), [1.0, 2.0], 0.1)
    with pytest.raises(ValueError, match="dimension"):
        fm.max_variation(fm.Quadratic(np.eye(3)), [1.0, 2.0], 0.1)


def test_not_callable():
    with pytest.raises(TypeError, match="callable"):
        fm.max_variation(3.0, [1.0], 0.1)


def test_bad_norm_and_weights():
    with pytest.raises(ValueError, match="norm must be"):
        fm.max_variation(f, [1.0, 2.0], 0.1, norm="l3")
    with pytest.raises(ValueError, match="weights"):
        fm.max_variation(f, [1.0, 2.0], 0.1, norm="weighted_l2", weights=[1.0, -1.0])


def test_nan_inside_the_ball_is_reported_not_ignored():
    """log(y) is NaN for y < 0: the ball around 0.05 of radius 0.1 contains such points."""
    g = lambda y: -jnp.log(y[0]) + y[1] ** 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fm.max_variation(g, [0.05, 0.0], 0.1)
    assert res.nonfinite
    assert "NaN or infinite" in res.message
    assert any("NaN or infinite" in str(w.message) for w in caught)


def test_warnings_name_the_callers_line_from_threads_too():
    """A warning of flatminima names the line of the caller's code (not a line inside the
    package), and issuing it changes no process-wide state, so calls from several
    threads at once leave the warning filters as they were."""
    import threading

    f = lambda y: jnp.linalg.norm(y) + 0.1 * y[0] ** 2  # autodiff gives NaN at 0
    with pytest.warns(RuntimeWarning, match="NaN") as record:
        fm.max_variation(f, jnp.zeros(3), 0.1)
    assert record[0].filename == __file__
    filters, show = list(warnings.filters), warnings.showwarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        threads = [threading.Thread(target=lambda i=i: [fm.max_variation(
            f, jnp.zeros(3), 0.1 + 0.01 * i + 0.001 * k) for k in range(3)]) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert warnings.filters == filters and warnings.showwarning is show


def test_a_negative_seed_and_a_module_as_the_point_are_named():
    f = lambda y: jnp.sum(y**2)
    for call in (lambda: fm.max_variation(f, jnp.ones(2), 0.1, seed=-3),
                 lambda: fm.sharpness.hessian_eigmax(f, jnp.ones(2), seed=1.5),
                 lambda: fm.flatness_profile(f, jnp.ones(2), seed=-1)):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            call()
    eqx = pytest.importorskip("equinox")
    import jax

    model = eqx.nn.MLP(2, 1, 4, 1, key=jax.random.PRNGKey(0))  # holds its activation functions
    with pytest.raises(TypeError, match=r"eqx.filter\(model, eqx.is_inexact_array\)"):
        fm.max_variation(lambda m: jnp.sum(m(jnp.ones(2)) ** 2), model, 0.1)
