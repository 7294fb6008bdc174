"""The exact solver against an independent dense reference: scipy's eigendecomposition
plus a bracketed root of the secular equation (brentq), hard cases built on purpose."""

import numpy as np
import pytest
import scipy.linalg
from scipy.optimize import brentq

import flatminima as fm


def reference_max_quadratic(A, b, x, r):
    """max {q(y) : ||y - x|| <= r} - q(x), q = 1/2 y'Ay + b'y, by scipy (independent)."""
    g = A @ x + b
    lam, Q = scipy.linalg.eigh(A)
    beta = Q.T @ g
    q = lambda z: beta @ z + 0.5 * np.sum(lam * z**2)
    candidates = [0.0]
    lam1 = lam.max()
    if lam1 < 0:
        z = -beta / lam
        if np.linalg.norm(z) <= r:
            candidates.append(q(z))
    # boundary: mu > max(lam1, 0) with ||beta / (mu - lam)|| = r
    lo = max(lam1, 0.0)
    phi = lambda mu: np.linalg.norm(beta / (mu - lam)) - r
    hi = lo + np.linalg.norm(beta) / r + 1.0
    if np.linalg.norm(beta) > 0 and phi(lo + 1e-14 * (1 + abs(lo))) > 0:
        mu = brentq(phi, lo + 1e-14 * (1 + abs(lo)), hi, xtol=1e-15, rtol=1e-15, maxiter=500)
        candidates.append(q(beta / (mu - lam)))
    # hard case: mu = lam1 >= 0, fill the top eigendirection to the sphere
    if lam1 >= 0:
        top = np.isclose(lam, lam1, rtol=0, atol=1e-10 * max(1, abs(lam1)))
        z = np.zeros_like(beta)
        z[~top] = beta[~top] / (lam1 - lam[~top])
        small = np.linalg.norm(beta[top]) < 1e-12 * (1 + np.linalg.norm(beta))
        if np.linalg.norm(z) <= r and small:
            z[np.flatnonzero(top)[0]] = np.sqrt(r**2 - z @ z)
            candidates.append(q(z))
    return max(candidates)


def random_symmetric(rng, n, spectrum="indefinite"):
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = rng.standard_normal(n)
    if spectrum == "definite":
        lam = np.abs(lam) + 0.1
    elif spectrum == "negative":
        lam = -np.abs(lam) - 0.1
    return Q @ np.diag(lam) @ Q.T, Q, lam


@pytest.mark.parametrize("n", [2, 3, 10, 50, 200])
@pytest.mark.parametrize("spectrum", ["indefinite", "definite", "negative"])
def test_exact_solver_matches_dense_reference(n, spectrum):
    rng = np.random.default_rng(n)
    A, _, _ = random_symmetric(rng, n, spectrum)
    b = rng.standard_normal(n)
    x = rng.standard_normal(n)
    for r in (1e-3, 0.3, 3.0, 30.0):
        res = fm.max_variation(fm.Quadratic(A, b), x, r)
        ref = reference_max_quadratic(A, b, x, r)
        assert res.method.startswith("exact_quadratic")
        assert res.value == pytest.approx(ref, rel=1e-10, abs=1e-14)
        # the dual bound is above the value and the reference (up to the reference's own
        # error, up to 6e-13 rel. against mpmath), and above them by rounding only
        # (measured: <= 2.3e-12 rel.); tests/test_bounds.py checks it against mpmath
        assert res.upper >= max(ref * (1 - 1e-12), res.value)
        assert res.upper - ref <= 1e-11 * ref + 1e-15
        assert np.linalg.norm(res.argmax - x) <= r  # feasible in floating point


@pytest.mark.parametrize("n", [2, 5, 40, 200])
def test_hard_case_gradient_orthogonal_to_top_eigenspace(n):
    """b chosen so that g = Ax + b is orthogonal to the top eigenvector: the secular
    equation has no root beyond lambda_1 and the solution fills the top direction."""
    rng = np.random.default_rng(100 + n)
    A, Q, lam = random_symmetric(rng, n)
    top = Q[:, np.argmax(lam)]
    x = rng.standard_normal(n)
    g = rng.standard_normal(n)
    g -= (g @ top) * top
    b = g - A @ x
    r = 10.0 * np.linalg.norm(g) / max(np.ptp(lam), 1e-3) + 1.0
    res = fm.max_variation(fm.Quadratic(A, b), x, r)
    assert res.method == "exact_quadratic:hard_case"
    assert res.value == pytest.approx(reference_max_quadratic(A, b, x, r), rel=1e-10)


def test_stationary_point_of_quadratic_gives_half_top_eigenvalue():
    """At a critical point, V(x, r) = 1/2 max(lambda_max, 0) r^2 exactly (g = 0)."""
    A = np.diag([3.0, 1.0, -2.0])
    res = fm.max_variation(fm.Quadratic(A), np.zeros(3), 0.7)
    assert res.value == pytest.approx(0.5 * 3.0 * 0.49, rel=1e-14)
    concave = fm.max_variation(fm.Quadratic(-np.eye(3)), np.zeros(3), 0.7)
    assert concave.value == 0.0


def test_quadratic_is_detected_from_a_plain_function():
    rng = np.random.default_rng(7)
    A, _, _ = random_symmetric(rng, 6)
    b = rng.standard_normal(6)
    f = lambda y: 0.5 * y @ A @ y + b @ y + 4.0
    x = rng.standard_normal(6)
    res = fm.max_variation(f, x, 0.5)
    assert res.method.startswith("exact_quadratic")
    assert res.value == pytest.approx(reference_max_quadratic(A, b, x, 0.5), rel=1e-10)
    # a quartic perturbation is not mistaken for a quadratic
    res4 = fm.max_variation(lambda y: f(y) + 1e-3 * y[0] ** 4, x, 0.5)
    assert res4.method == "projected_ascent"


def test_weighted_l2_ball_is_exact_after_change_of_variables():
    """||u||_w = ||u / w||: with z = u / w the problem is a Euclidean TRS for W A W."""
    rng = np.random.default_rng(3)
    A, _, _ = random_symmetric(rng, 5)
    b = rng.standard_normal(5)
    x = rng.standard_normal(5)
    w = rng.uniform(0.5, 2.0, 5)
    res = fm.max_variation(fm.Quadratic(A, b), x, 0.4, norm="weighted_l2", weights=w)
    W = np.diag(w)
    # q(x + W z) - q(x) = (W g)'z + 1/2 z'(W A W) z with g = Ax + b
    ref = reference_max_quadratic(W @ A @ W, W @ (A @ x + b), np.zeros(5), 0.4)
    assert res.value == pytest.approx(ref, rel=1e-10)
    assert np.linalg.norm((res.argmax - x) / w) <= 0.4
