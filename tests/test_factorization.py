"""Matrix factorization and deep linear networks against SPEC section 9's closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flatminima as fm
from flatminima._study import test_matrix as make_matrix
from flatminima.factorization import DeepLinearNetwork, MatrixFactorization


@pytest.fixture(scope="module")
def mf():
    return MatrixFactorization(make_matrix(6, 5, 2, seed=3), 2)


def test_balanced_minimizer_top_eigenvalue_is_twice_sigma1(mf):
    X, Y = mf.global_minimizer()
    assert mf.loss(X, Y) == pytest.approx(0.0, abs=1e-24)
    assert mf.hessian_eigmax_closed_form(X, Y) == pytest.approx(2 * mf.s[0], rel=1e-12)
    assert mf.hessian_eigmax(X, Y) == pytest.approx(2 * mf.s[0], rel=1e-8)
    dense = np.linalg.eigvalsh(np.asarray(jax.hessian(
        lambda v: mf.objective({"X": v[:12].reshape(6, 2), "Y": v[12:].reshape(5, 2)}))(
            jnp.concatenate([jnp.ravel(X), jnp.ravel(Y)]))))
    assert dense[-1] == pytest.approx(2 * mf.s[0], rel=1e-10)
    assert mf.hessian_trace(X, Y) == pytest.approx(dense.sum(), rel=1e-10)


@pytest.mark.parametrize("s", [0.5, 2.0, 3.0])
def test_unbalanced_minimizer_is_sharper(mf, s):
    X, Y = mf.global_minimizer(np.diag([s, 1.0]))
    Xb, Yb = mf.global_minimizer()
    assert mf.hessian_eigmax(X, Y) >= mf.s[0] * (s**2 + s**-2) * (1 - 1e-10)
    assert mf.max_variation(X, Y, 1e-3).value > mf.max_variation(Xb, Yb, 1e-3).value
    assert fm.compare(mf.objective, mf.point(X, Y), mf.point(Xb, Yb)).verdict == "sharper"


def test_balanced_minimizers_are_equivalent_and_flat(mf):
    rng = np.random.default_rng(0)
    Xb, Yb = mf.global_minimizer()
    rotation, _ = np.linalg.qr(rng.standard_normal((2, 2)))
    Xo, Yo = mf.global_minimizer(rotation)
    assert mf.is_balanced(Xo, Yo)
    assert fm.compare(mf.objective, mf.point(Xo, Yo), mf.point(Xb, Yb)).verdict == "equivalent"
    orbit = [mf.point(*mf.global_minimizer(np.diag([1.0 + e, 1.0]))) for e in (0.1, -0.1, 0.3)]
    flat = lambda p: np.concatenate([np.ravel(p["X"]), np.ravel(p["Y"])])
    res = fm.is_flat_minimum(mf.objective, mf.point(Xb, Yb), neighbours=[flat(p) for p in orbit])
    assert bool(res)
    Xu, Yu = mf.global_minimizer(np.diag([2.0, 1.0]))
    res_u = fm.is_flat_minimum(mf.objective, mf.point(Xu, Yu),
                               neighbours=[flat(mf.point(Xb, Yb))])
    assert not bool(res_u) and res_u.verdicts == ["sharper"]


def test_spectrally_balanced_but_unbalanced_ties_with_balanced(mf):
    """The open case of SPEC section 9: G = diag(1, t) with t^4 = sigma_1 / sigma_2 keeps
    sigma_1(X)^2 = sigma_1(Y)^2 = sigma_1(M) but X'X != Y'Y. The profiles agree to
    rounding at every radius tested (0.3 down to 1e-3): compare says equivalent."""
    t = (mf.s[0] / mf.s[1]) ** 0.25
    X, Y = mf.global_minimizer(np.diag([1.0, t]))
    Xb, Yb = mf.global_minimizer()
    assert np.linalg.norm(X, 2) ** 2 == pytest.approx(mf.s[0], rel=1e-12)
    assert np.linalg.norm(Y, 2) ** 2 == pytest.approx(mf.s[0], rel=1e-12)
    assert mf.imbalance(X, Y) > 0.1
    c = fm.compare(mf.objective, mf.point(X, Y), mf.point(Xb, Yb), np.geomspace(0.3, 1e-3, 7))
    assert c.verdict == "equivalent"
    assert np.all(np.abs(c.difference) <= c.tolerance)


def test_trace_and_top_eigenvalue_prefer_different_minimizers():
    """m != n: the trace is minimal at n X'X = m Y'Y (G = (m/n)^(1/4) I), the top
    eigenvalue at the balanced point; the flatness preorder sides with the balanced one."""
    m, n = 6, 3
    mf = MatrixFactorization(make_matrix(m, n, 2, seed=1), 2)
    Xb, Yb = mf.global_minimizer()
    Xt, Yt = mf.global_minimizer((m / n) ** 0.25 * np.eye(2))
    assert mf.hessian_trace(Xt, Yt) < mf.hessian_trace(Xb, Yb)
    assert mf.hessian_eigmax_closed_form(Xt, Yt) > mf.hessian_eigmax_closed_form(Xb, Yb)
    assert fm.compare(mf.objective, mf.point(Xb, Yb), mf.point(Xt, Yt)).verdict == "flatter"


def test_flattening_flow_from_unbalanced_minimizer(mf):
    Xu, Yu = mf.global_minimizer(np.diag([2.5, 0.7]))
    res = mf.balance(Xu, Yu, method="flow")
    assert res.converged and "steady state" in res.reason
    assert res.loss_after <= 1e-9 and abs(res.loss_after - res.loss_before) <= 1e-9
    assert res.imbalance <= 1e-8
    assert fm.compare(mf.objective, mf.point(res.X, res.Y), mf.point(Xu, Yu)).verdict == "flatter"
    exact = mf.balance(Xu, Yu, method="exact")
    assert exact.imbalance <= 1e-10 and exact.loss_after <= 1e-20
    np.testing.assert_allclose(exact.X @ exact.Y.T, Xu @ Yu.T, atol=1e-10)


@pytest.mark.parametrize("G", [np.diag([1e3, 1.0]), np.diag([1e2, 1.0])])
def test_balancing_flow_from_a_huge_imbalance_arrives_balanced(mf, G):
    """Imbalance 1e6 (G = diag(1e3, 1)) and 1e5 (diag(1e2, 1), where a fixed-t1 flow used
    to run out of steps at t = 0): the flow converges, keeps X Y' = M, and ends balanced:
    X'X = Y'Y with eigenvalues the singular values of M (closed form)."""
    Xu, Yu = mf.global_minimizer(G)
    res = mf.balance(Xu, Yu, method="flow")
    assert res.converged and res.method == "flow"
    scale = np.linalg.norm(res.X) ** 2 + np.linalg.norm(res.Y) ** 2
    assert res.imbalance <= 1e-8 * scale
    np.testing.assert_allclose(res.X @ res.Y.T, Xu @ Yu.T, atol=1e-9 * np.linalg.norm(mf.M))
    np.testing.assert_allclose(np.linalg.eigvalsh(res.X.T @ res.X), np.sort(mf.s[:2]), rtol=1e-9)


def test_balance_path_keeps_the_product_and_comes_back_as_matrices(mf):
    Xu, Yu = mf.global_minimizer(np.diag([2.5, 0.7]))
    ts, Xs, Ys = mf.balance_path(Xu, Yu, 5.0, n_save=11)
    assert ts.shape == (11,) and Xs.shape == (11, 6, 2) and Ys.shape == (11, 5, 2)
    for X, Y in zip(Xs, Ys):
        np.testing.assert_allclose(X @ Y.T, Xu @ Yu.T, atol=1e-10)
    assert mf.imbalance(Xs[-1], Ys[-1]) < 1e-3 * mf.imbalance(Xu, Yu)


def test_flattening_flow_generic_on_factorization_keeps_f(mf):
    """The generic flattening_flow with the discovered conserved quantities."""
    Xu, Yu = mf.global_minimizer(np.diag([1.6, 0.8]))
    p0 = mf.point(Xu, Yu)
    cq = fm.conserved_quantities(mf.objective, p0)
    flat0 = jnp.concatenate([p0["X"].ravel(), p0["Y"].ravel()])
    unravel = lambda v: {"X": v[:12].reshape(6, 2), "Y": v[12:].reshape(5, 2)}
    res = fm.flattening_flow(lambda v: mf.objective(unravel(v)), cq, flat0, n_flatness=4)
    assert res.converged and res.f_drift <= 1e-9
    assert res.target_distance[-1] <= 1e-6 * res.target_distance[0]
    assert res.verdict_end_vs_start == "flatter"


def test_deep_linear_network_balanced_minimizer():
    M = make_matrix(4, 3, 2, seed=2)
    net = DeepLinearNetwork(M, (3, 2, 2, 4))
    Ws = net.balanced_minimizer()
    assert net.loss(Ws) == pytest.approx(0.0, abs=1e-24)
    assert net.imbalance(Ws) <= 1e-12
    flat, unravel = jax.flatten_util.ravel_pytree([jnp.asarray(W) for W in Ws])
    H = jax.hessian(lambda v: net.objective(unravel(v)))(flat)
    assert net.hessian_eigmax(Ws) == pytest.approx(np.linalg.eigvalsh(np.asarray(H))[-1], rel=1e-8)


def test_deep_linear_network_balancing_flow_keeps_the_loss_and_flattens():
    M = make_matrix(4, 3, 2, seed=2)
    net = DeepLinearNetwork(M, (3, 2, 2, 4))
    Ws = net.balanced_minimizer()
    G = np.array([[1.5, 0.3], [0.0, 0.8]])
    unbalanced = [G @ Ws[0], Ws[1] @ np.linalg.inv(G), Ws[2]]  # same product
    assert net.loss(unbalanced) <= 1e-20 and net.imbalance(unbalanced) > 0.5
    assert not net.is_balanced(unbalanced)
    res = net.balance(unbalanced)
    assert res.converged and res.loss_before <= 1e-20 and res.loss_after <= 1e-9
    assert res.imbalance <= 1e-8 and net.is_balanced(res.weights)
    end = res.weights
    assert [W.shape for W in end] == [W.shape for W in unbalanced]
    np.testing.assert_allclose(end[2] @ end[1] @ end[0], M, atol=1e-9)
    verdict = fm.compare(net.objective, [jnp.asarray(W) for W in end],
                         [jnp.asarray(W) for W in unbalanced]).verdict
    assert verdict == "flatter"


def test_bad_input():
    with pytest.raises(ValueError, match="exceeds"):
        MatrixFactorization(np.ones((3, 2)), 3)
    with pytest.raises(ValueError, match="NaN"):
        MatrixFactorization(np.array([[1.0, np.nan]]), 1)
    mf = MatrixFactorization(np.eye(3), 2)
    with pytest.raises(ValueError, match="X must be 3x2"):
        mf.loss(np.ones((3, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="widths"):
        DeepLinearNetwork(np.eye(3), (2, 3))
