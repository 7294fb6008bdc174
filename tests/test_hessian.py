"""Lanczos on Hessians with few distinct eigenvalues, NaN derivatives, and the sublevel
volume in log space, against dense eigendecompositions and closed forms."""

import math
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import gammaln

from flatminima import sharpness
from flatminima._hessian import hessian_operator, lanczos_top, top_eigenpairs
from flatminima._objective import as_objective
from flatminima.factorization import DeepLinearNetwork, MatrixFactorization


def least_squares(N, d, seed):
    """``1/(2N) ||A w - b||^2`` with ``N < d``: the Hessian ``A'A / N`` has rank N."""
    rng = np.random.default_rng(seed)
    A, b = rng.normal(size=(N, d)), rng.normal(size=N)
    f = lambda w: 0.5 * jnp.mean((jnp.asarray(A) @ w - jnp.asarray(b)) ** 2)
    return f, np.linalg.eigvalsh(A.T @ A / N)


@pytest.mark.parametrize("N, d, method", [(3, 450, "auto"), (8, 600, "auto"), (40, 420, "auto"),
                                          (1, 30, "lanczos"), (5, 50, "lanczos")])
def test_eigmax_after_lanczos_breakdown_matches_dense(N, d, method):
    """Low rank: the Krylov space is invariant after N + 1 steps; the value must be the
    top eigenvalue of A'A/N, and stderr the verified residual that brackets it."""
    f, lam = least_squares(N, d, seed=N + d)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = sharpness.hessian_eigmax(f, np.zeros(d), method=method, rtol=1e-8)
    assert res.method.startswith("lanczos")
    assert res.value == pytest.approx(lam[-1], rel=1e-8)
    assert abs(res.value - lam[-1]) <= res.stderr + 1e-12 * lam[-1]
    assert res.stderr <= 1e-8 * lam[-1]


def test_eigmax_on_a_symmetric_saddle():
    """Spectrum {+-a_i} (and zeros): the top is max a_i, the bottom -max a_i."""
    a = np.array([3.0, 3.0, 1.5, 0.5])
    f = lambda y: 0.5 * jnp.sum(a * y[:4] ** 2) - 0.5 * jnp.sum(a * y[4:8] ** 2)
    res = sharpness.hessian_eigmax(f, np.zeros(40), method="lanczos")
    assert res.value == pytest.approx(3.0, rel=1e-12)
    neg = sharpness.hessian_eigmax(lambda y: -f(y), np.zeros(40), method="lanczos")
    assert neg.value == pytest.approx(3.0, rel=1e-12)


def test_top_eigenpairs_find_every_copy_of_a_repeated_eigenvalue():
    """diag(5, 5, 5, 2, 2, 0, ...) in R^450: one Krylov space holds one copy of each
    eigenvalue, so the copies come from the fresh vectors after each breakdown."""
    d = np.zeros(450)
    d[:3], d[3:5] = 5.0, 2.0
    obj, x = as_objective(lambda y: 0.5 * jnp.sum(d * y**2), np.zeros(450))
    vals, vecs = top_eigenpairs(obj, x, 5)
    np.testing.assert_allclose(np.asarray(vals), [5, 5, 5, 2, 2], rtol=1e-12)
    V = np.asarray(vecs)
    np.testing.assert_allclose(V @ V.T, np.eye(5), atol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(V[:3, :3], axis=1), 1.0, rtol=1e-10)


def test_restarted_lanczos_converges_with_a_small_krylov_space():
    """diag(1..500): five steps a cycle cannot resolve the top; the restarts from the
    Ritz vector must, and the residual must bracket the true eigenvalue."""
    d = np.linspace(1.0, 500.0, 500)
    obj, x = as_objective(lambda y: 0.5 * jnp.sum(d * y**2), np.zeros(500))
    op = hessian_operator(obj, x)
    top = lanczos_top(op, num_matvecs=8, rtol=1e-6, max_matvecs=4000, seed=3)
    assert top.converged and top.n_matvecs > 9
    assert abs(top.value - 500.0) <= top.residual
    assert top.residual <= 1e-6 * 500.0


def test_unconverged_lanczos_warns_and_its_residual_still_brackets_an_eigenvalue():
    d = np.linspace(1.0, 500.0, 500)
    f = lambda y: 0.5 * jnp.sum(d * y**2)
    with pytest.warns(RuntimeWarning, match="did not reach the residual"):
        res = sharpness.hessian_eigmax(f, np.zeros(500), num_matvecs=4, max_matvecs=12)
    assert res.message
    assert np.min(np.abs(d - res.value)) <= res.stderr


def test_tolerance_is_floored_at_what_the_products_resolve():
    """rtol = 0 cannot be met in floating point: the target is floored at 100 eps ||H||."""
    f, lam = least_squares(6, 80, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = sharpness.hessian_eigmax(f, np.zeros(80), method="lanczos", rtol=0.0)
    assert res.stderr <= 100 * np.finfo(float).eps * lam[-1]
    assert res.value == pytest.approx(lam[-1], rel=1e-13)


def test_hessian_product_is_compiled_once_per_call():
    traces = []

    def f(y):
        traces.append(1)
        return 0.5 * jnp.sum(jnp.arange(1.0, 61.0) * y**2) + jnp.sum(jnp.cos(y))

    res = sharpness.hessian_eigmax(f, np.zeros(60), method="lanczos", num_matvecs=60)
    assert int(res.method[len("lanczos("):-1]) >= 20
    assert len(traces) <= 4  # check of f(x), shape of f, one trace of the product


@pytest.mark.parametrize("sigma", [[3.0, 1.0], [2.0, 2.0, 0.5]])
def test_factorization_at_the_origin_top_eigenvalue_is_sigma1(sigma):
    """At X = Y = 0 the Hessian of 1/2 ||XY' - M||^2 is [[0, -M], [-M', 0]] per column
    of the factors: eigenvalues +-sigma_i(M) (each k times) and zeros."""
    rng = np.random.default_rng(len(sigma))
    U, _ = np.linalg.qr(rng.normal(size=(6, len(sigma))))
    V, _ = np.linalg.qr(rng.normal(size=(5, len(sigma))))
    mf = MatrixFactorization(U @ np.diag(sigma) @ V.T, 3)
    assert mf.hessian_eigmax(np.zeros((6, 3)), np.zeros((5, 3))) == pytest.approx(max(sigma),
                                                                                  rel=1e-10)


def test_factorization_at_an_unbalanced_exact_fit():
    """Exact fit X Y' = M: top eigenvalue sigma_1(X)^2 + sigma_1(Y)^2."""
    rng = np.random.default_rng(7)
    X, Y = rng.normal(size=(7, 2)), rng.normal(size=(5, 2))
    G = np.diag([2.0, 0.5])
    X, Y = X @ G, Y @ np.linalg.inv(G)
    mf = MatrixFactorization(X @ Y.T, 2)
    assert mf.hessian_eigmax(X, Y) == pytest.approx(mf.hessian_eigmax_closed_form(X, Y), rel=1e-10)


def test_deep_linear_network_at_zero_has_zero_hessian():
    """Three zero layers: every second derivative of the loss vanishes at 0."""
    net = DeepLinearNetwork(np.eye(3), (3, 3, 3, 3))
    Ws = [np.zeros((3, 3))] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert net.hessian_eigmax(Ws) == 0.0


@pytest.mark.parametrize("N, d", [(5, 50), (3, 120), (12, 60)])
def test_spectrum_nodes_lie_in_the_spectrum_at_low_rank(N, d):
    f, lam = least_squares(N, d, seed=d)
    nodes, weights = sharpness.hessian_spectrum(f, np.zeros(d), num_matvecs=40, num_samples=10)
    assert np.all(np.isfinite(nodes))
    span = lam[-1] - lam[0]
    assert np.all(nodes >= lam[0] - 1e-10 * span) and np.all(nodes <= lam[-1] + 1e-10 * span)
    assert weights.sum() == pytest.approx(1.0, rel=1e-12)


def test_spectrum_is_exact_with_three_distinct_eigenvalues():
    """H = diag(a on a third, b on a third, c on a third): for every Rademacher probe z,
    z'H^p z / n = (a^p + b^p + c^p) / 3, so each probe's Gauss rule (exact after its
    breakdown) puts mass 1/3 on each of a, b, c."""
    d = np.repeat([-1.0, 2.0, 7.0], 20)
    nodes, weights = sharpness.hessian_spectrum(lambda y: 0.5 * jnp.sum(d * y**2),
                                                np.zeros(60), num_samples=5)
    for value in (-1.0, 2.0, 7.0):
        near = np.abs(nodes - value) <= 1e-10
        assert weights[near].sum() == pytest.approx(1 / 3, rel=1e-10)


nan_at_zero = lambda y: jnp.linalg.norm(y) ** 2 + jnp.sum(y)


@pytest.mark.parametrize("call", [
    lambda: sharpness.hessian_eigmax(nan_at_zero, np.zeros(3)),
    lambda: sharpness.hessian_eigmax(nan_at_zero, np.zeros(3), method="lanczos"),
    lambda: sharpness.hessian_trace(nan_at_zero, np.zeros(3)),
    lambda: sharpness.hessian_trace(nan_at_zero, np.zeros(3), method="hutchinson"),
    lambda: sharpness.hessian_spectrum(nan_at_zero, np.zeros(3)),
    lambda: sharpness.sam_sharpness(nan_at_zero, np.zeros(3), 0.1),
], ids=["eigmax", "eigmax-lanczos", "trace", "trace-hutchinson", "spectrum", "sam"])
def test_nan_derivative_is_named_with_its_fix(call):
    with pytest.raises(ValueError, match="NaN.*sum of squares"):
        call()


def test_sum_of_squares_form_gives_the_right_values():
    """The fix the error names: jnp.sum(y**2) has trace 6, top eigenvalue 2 and SAM
    value rho sqrt(3) + rho^2 at 0 (the gradient (1, 1, 1) is the ascent direction)."""
    f = lambda y: jnp.sum(y**2) + jnp.sum(y)
    assert sharpness.hessian_trace(f, np.zeros(3)).value == pytest.approx(6.0, rel=1e-12)
    assert sharpness.hessian_eigmax(f, np.zeros(3)).value == pytest.approx(2.0, rel=1e-12)
    sam = sharpness.sam_sharpness(f, np.zeros(3), 0.1).value
    assert sam == pytest.approx(0.1 * math.sqrt(3) + 0.01, rel=1e-12)


def log_ball(n, R):
    return 0.5 * n * math.log(math.pi) - gammaln(0.5 * n + 1) + n * math.log(R)


@pytest.mark.parametrize("n", [2, 50, 400])
def test_sublevel_volume_of_a_ball_in_log_space(n):
    """f = ||y||^2: the sublevel set in B(0, R) is the ball of radius sqrt(delta), a
    fraction (sqrt(delta) / R)^n of B(0, R); delta is chosen so that it is 0.3."""
    R = 0.5
    delta = R**2 * 0.3 ** (2 / n)
    res = sharpness.sublevel_volume(lambda y: y @ y, np.zeros(n), delta, R, seed=0)
    true_log = log_ball(n, math.sqrt(delta))
    assert res.log_interval[0] <= true_log <= res.log_interval[1]
    assert res.fraction_interval[0] <= 0.3 <= res.fraction_interval[1]
    assert res.log_value == pytest.approx(math.log(res.fraction) + log_ball(n, R), rel=1e-12)
    assert np.isfinite(res.log_value) and res.message == ""
    if n == 2:
        assert res.interval[0] <= math.pi * delta <= res.interval[1]


def test_sublevel_volume_with_no_sample_inside_reports_an_upper_end():
    """fraction 1e-40 cannot be seen in 1000 samples: log_value is the log of the 95%
    upper end (about 3.8 / N), which holds the true volume, and the result says so."""
    n, R = 20, 1.0
    delta = 1e-4  # fraction (1e-2)^20
    with pytest.warns(RuntimeWarning, match="no sample"):
        res = sharpness.sublevel_volume(lambda y: y @ y, np.zeros(n), delta, R, num_samples=1000)
    assert res.num_inside == 0 and "upper end" in res.message
    assert res.log_interval[0] == -math.inf
    assert res.log_value == res.log_interval[1]
    assert res.fraction == pytest.approx(1.96**2 / 1000 / (1 + 1.96**2 / 1000), rel=1e-12)
    assert log_ball(n, math.sqrt(delta)) <= res.log_value


def test_identity_hessian_breaks_down_at_the_first_step():
    """sum(cosh(y)) at 0 in R^450: H = I, one distinct eigenvalue; the first Krylov space
    is invariant and the value exact."""
    res = sharpness.hessian_eigmax(lambda y: jnp.sum(jnp.cosh(y)), np.zeros(450))
    assert isinstance(res.value, float) and isinstance(res.stderr, float)
    assert res.value == pytest.approx(1.0, rel=1e-14) and res.method == "lanczos(2)"


@pytest.mark.parametrize("call, name", [
    (lambda f: sharpness.hessian_eigmax(f, np.zeros(3), num_matvecs=0), "num_matvecs"),
    (lambda f: sharpness.hessian_spectrum(f, np.zeros(3), num_samples=2.5), "num_samples"),
    (lambda f: sharpness.sublevel_volume(f, np.zeros(3), 0.1, 1.0, num_samples=0), "num_samples"),
    (lambda f: sharpness.sam_sharpness(f, np.zeros(3), steps=-1), "steps"),
])
def test_bad_counts_are_named_at_the_boundary(call, name):
    with pytest.raises(ValueError, match=name):
        call(lambda y: jnp.sum(y**2))
