"""Property-based checks of the calculus rules of SPEC section 6 on random quadratics
(exact solver) and polynomials (ascent solver)."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flatminima as fm

seeds = st.integers(0, 2**31 - 1)
radii = st.floats(0.05, 2.0)


def random_quadratic(seed, n):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((n, n))
    return fm.Quadratic(0.5 * (B + B.T), rng.standard_normal(n), rng.standard_normal()), rng


@given(seeds, radii, st.floats(0.0, 10.0))
def test_positive_scaling(seed, r, lam):
    q, rng = random_quadratic(seed, 4)
    x = rng.standard_normal(4)
    scaled = fm.Quadratic(lam * q.A, lam * q.b, lam * q.c + 5.0)  # constant drops out
    v = fm.max_variation(q, x, r).value
    assert fm.max_variation(scaled, x, r).value == pytest.approx(
        fm.scaled_variation(v, lam), rel=1e-9, abs=1e-12)


@settings(max_examples=8)  # each example compiles a new function: sized for make test
@given(seeds, radii)
def test_monotone_composition(seed, r):
    """phi(t) = t^3 + t is increasing: V[phi o q] = phi(q(x) + V[q]) - phi(q(x))."""
    q, rng = random_quadratic(seed, 3)
    x = rng.standard_normal(3)
    phi = lambda t: t**3 + t
    v = fm.max_variation(q, x, r).value
    expected = fm.composed_variation(phi, float(q(x)), v)
    got = fm.max_variation(lambda y: phi(q(y)), x, r, solver=fm.solvers.ProjectedAscent(n_random=8))
    assert got.value == pytest.approx(expected, rel=1e-7, abs=1e-12)


@given(seeds, radii)
def test_sum_is_subadditive(seed, r):
    q1, rng = random_quadratic(seed, 5)
    q2, _ = random_quadratic(seed + 1, 5)
    x = rng.standard_normal(5)
    total = fm.Quadratic(q1.A + q2.A, q1.b + q2.b)
    v_sum = fm.max_variation(total, x, r).value
    assert v_sum <= fm.max_variation(q1, x, r).value + fm.max_variation(q2, x, r).value + 1e-12


@settings(max_examples=8)  # each example compiles a new function: sized for make test
@given(seeds, radii)
def test_separable_sum_identity(seed, r):
    """f(u, v) = g(u) + h(v): the 1-D maximization of the profiles equals V[f]."""
    g, rng = random_quadratic(seed, 2)
    h, _ = random_quadratic(seed + 7, 3)
    u, v = rng.standard_normal(2), rng.standard_normal(3)
    A = np.zeros((5, 5))
    A[:2, :2], A[2:, 2:] = g.A, h.A
    f = fm.Quadratic(A, np.concatenate([g.b, h.b]))
    direct = fm.max_variation(f, np.concatenate([u, v]), r).value
    value, s = fm.separable_sum_variation(lambda s: fm.max_variation(g, u, s).value,
                                          lambda t: fm.max_variation(h, v, t).value, r)
    assert value == pytest.approx(direct, rel=1e-9, abs=1e-12)
    assert 0 <= s <= r


@settings(max_examples=8)  # each example compiles a new function: sized for make test
@given(seeds, radii)
def test_pointwise_max_identity(seed, r):
    f1, rng = random_quadratic(seed, 2)
    f2, _ = random_quadratic(seed + 3, 2)
    x = rng.standard_normal(2)
    v1, v2 = fm.max_variation(f1, x, r).value, fm.max_variation(f2, x, r).value
    expected = fm.max_of_variations(float(f1(x)), v1, float(f2(x)), v2)
    got = fm.max_variation(lambda y: jnp.maximum(f1(y), f2(y)), x, r,
                           solver=fm.solvers.ProjectedAscent(n_random=16))
    assert got.value == pytest.approx(expected, rel=1e-8, abs=1e-12)


@given(seeds, radii)
def test_isometry_invariance(seed, r):
    """V[f o T](x, r) = V[f](Tx, r) for T orthogonal (an l2 isometry)."""
    q, rng = random_quadratic(seed, 4)
    T, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    x = rng.standard_normal(4)
    composed = fm.Quadratic(T.T @ q.A @ T, T.T @ q.b, q.c)
    assert fm.max_variation(composed, x, r).value == pytest.approx(
        fm.max_variation(q, T @ x, r).value, rel=1e-10, abs=1e-12)


@settings(max_examples=8)  # each example compiles a new function: sized for make test
@given(seeds, st.floats(0.05, 0.5))
def test_polynomial_lipschitz_bound(seed, r):
    """V(x, r) <= L r with L the max of ||grad f|| on the ball, bounded crudely above."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal(3)
    f = lambda y: c[0] * y[0] ** 3 + c[1] * y[0] * y[1] + c[2] * y[1] ** 2
    x = rng.uniform(-1, 1, 2)
    R = np.linalg.norm(x) + r
    L = 3 * abs(c[0]) * R**2 + abs(c[1]) * R * np.sqrt(2) + 2 * abs(c[2]) * R + abs(c[1]) * R
    res = fm.max_variation(f, x, r, lipschitz=L)
    assert 0 <= res.value <= res.upper == pytest.approx(L * r)
