"""Symmetry discovery against SPEC section 9's dimensions, the symbolic path, a hidden
(conjugated) symmetry, and the flattening flow's invariants."""

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import flatminima as fm
from flatminima.examples import _rotated_invariant


def factorization(m, n, k, rho, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((m, rho)) @ rng.standard_normal((rho, n))
    f = lambda p: 0.5 * jnp.sum((p["X"] @ p["Y"].T - M) ** 2)
    return f, {"X": jnp.ones((m, k)), "Y": jnp.ones((n, k))}, M


def expected_dim(m, n, k, rho):
    return k * k + (m - rho) * (m - rho - 1) // 2 + (n - rho) * (n - rho - 1) // 2


def span_rank(rows):
    return np.linalg.matrix_rank(np.asarray(rows), tol=1e-8)


@pytest.mark.parametrize("m, n, k, rho, space", [(4, 3, 2, 2, "dense"), (4, 3, 2, 1, "dense"),
                                                 (3, 3, 2, 3, "dense"), (6, 5, 3, 2, "leaves"),
                                                 (8, 7, 3, 3, "leaves")])
def test_factorization_algebra_dimension_and_conserved_span(m, n, k, rho, space):
    f, x, _ = factorization(m, n, k, rho)
    alg = fm.linear_symmetries(f, x, space=space)
    assert alg.dim == expected_dim(m, n, k, rho)
    assert alg.residuals.max() < 1e-12
    cq = fm.conserved_quantities(alg)
    assert cq.dim == k * (k + 1) // 2
    # the conserved values span exactly the entries of X'X - Y'Y
    rng = np.random.default_rng(5)
    rows_q, rows_both = [], []
    for _ in range(3 * k * k):
        X, Y = rng.standard_normal((m, k)), rng.standard_normal((n, k))
        D = X.T @ X - Y.T @ Y
        q = np.asarray(cq({"X": jnp.asarray(X), "Y": jnp.asarray(Y)}))
        d = D[np.triu_indices(k)]
        rows_q.append(q)
        rows_both.append(np.concatenate([q, d]))
    assert span_rank(np.array(rows_q).T) == k * (k + 1) // 2
    assert span_rank(np.array(rows_both).T) == k * (k + 1) // 2  # same span


def test_symbolic_path_agrees_with_sampled_algebra():
    X = sp.Matrix(3, 2, sp.symbols("x0:6"))
    Y = sp.Matrix(2, 2, sp.symbols("y0:4"))
    M = sp.Matrix([[1, 0], [0, 2], [0, 0]])  # rank 2, m = 3: one rotation fixing M
    f = sum(e**2 for e in (X * Y.T - M)) / 2
    sym = fm.symbolic_symmetries(f, list(X) + list(Y))
    assert sym.dim == expected_dim(3, 2, 2, 2) == 4
    assert len(sym.conserved) == 3
    Mn = np.array(M, dtype=float)
    fn = lambda p: 0.5 * jnp.sum((p["X"] @ p["Y"].T - Mn) ** 2)
    alg = fm.linear_symmetries(fn, {"X": jnp.ones((3, 2)), "Y": jnp.ones((2, 2))})
    assert alg.dim == sym.dim


def test_deep_linear_network_conserved_quantities():
    """W3 W2 W1 with widths 3 -> 2 -> 2 -> 3: hidden widths 2 and 2 give 3 + 3 conserved
    quantities, spanning W_{j+1}'W_{j+1} - W_j W_j'."""
    rng = np.random.default_rng(0)
    M = rng.standard_normal((3, 2)) @ rng.standard_normal((2, 3))
    f = lambda p: 0.5 * jnp.sum((p[2] @ p[1] @ p[0] - M) ** 2)
    x = [jnp.ones((2, 3)), jnp.ones((2, 2)), jnp.ones((3, 2))]
    cq = fm.conserved_quantities(f, x, space="leaves")
    assert cq.dim == 6
    rows = []
    for _ in range(20):
        W = [rng.standard_normal(w.shape) for w in x]
        D1 = W[1].T @ W[1] - W[0] @ W[0].T
        D2 = W[2].T @ W[2] - W[1] @ W[1].T
        q = np.asarray(cq([jnp.asarray(w) for w in W]))
        rows.append(np.concatenate([q, D1[np.triu_indices(2)], D2[np.triu_indices(2)]]))
    assert span_rank(np.array(rows).T) == 6


def test_hidden_symmetry_of_a_conjugated_function():
    """f = g o T with g invariant under rotations of (z1, z2): g_f = T^-1 (E12 - E21) T."""
    f, T = _rotated_invariant()
    alg = fm.linear_symmetries(f, jnp.ones(3))
    assert alg.dim == 1
    K = np.zeros((3, 3))
    K[0, 1], K[1, 0] = 1.0, -1.0
    expected = np.linalg.solve(T, K @ T)
    found = alg.basis[0]
    cos = abs(np.sum(found * expected)) / (np.linalg.norm(found) * np.linalg.norm(expected))
    assert cos == pytest.approx(1.0, abs=1e-10)


def test_no_symmetry_gives_an_empty_algebra_and_symbolic_agrees():
    x1, x2, x3 = sp.symbols("x1 x2 x3")
    expr = x1**4 + x1 * x2**3 + x3**2 * x1 + x2 * x3 + x3**3
    assert fm.symbolic_symmetries(expr, [x1, x2, x3]).dim == 0
    fn = sp.lambdify([[x1, x2, x3]], expr, "jax")
    alg = fm.linear_symmetries(lambda y: fn(y), jnp.ones(3))
    assert alg.dim == 0


def test_too_few_samples_is_an_error_that_says_how_many():
    with pytest.raises(ValueError, match="n_samples >= 16"):
        fm.linear_symmetries(lambda y: jnp.sum(y**4), jnp.ones(4), n_samples=5)


def test_gradient_flow_conserves_the_quantities():
    f, x, _ = factorization(4, 3, 2, 2)
    cq = fm.conserved_quantities(f, x)
    rng = np.random.default_rng(2)
    x0 = {"X": jnp.asarray(rng.standard_normal((4, 2))), "Y": jnp.asarray(rng.standard_normal((3, 2)))}
    flat = jnp.concatenate([x0["X"].ravel(), x0["Y"].ravel()])
    unravel = lambda v: {"X": v[:8].reshape(4, 2), "Y": v[8:].reshape(3, 2)}
    check = fm.verify_conserved(lambda v: f(unravel(v)), cq, flat, t1=0.5)
    assert check.success and np.max(check.drift) < 1e-9


def test_flattening_flow_keeps_f_and_reaches_the_target():
    f = lambda z: (z[0] * z[1] - 1.0) ** 2
    cq = fm.conserved_quantities(f, jnp.ones(2))
    res = fm.flattening_flow(f, cq, jnp.array([3.0, 1.0 / 3.0]), t1=30.0)
    assert res.f_drift < 1e-9
    assert res.target_distance[-1] < 1e-6 * res.target_distance[0]
    np.testing.assert_allclose(np.abs(res.points[-1]), [1.0, 1.0], atol=1e-5)
    assert res.verdict_end_vs_start == "flatter"
