"""Upper bounds claimed only where proven: the jaxpr degree check, the dual bound of the
exact quadratic solver against mpmath, functions that are quadratic only near x, NaN
derivatives at x, and a property test against an independent search (dense grid plus
SLSQP) over random quadratics and kinked functions."""

import warnings

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

import flatminima as fm
from flatminima.solvers import ExactQuadratic, polynomial_degree

# ---------------------------------------------------------------- the degree check

A3 = np.array([[2.0, 1.0, 0.0], [1.0, -1.0, 0.5], [0.0, 0.5, 3.0]])
B3 = np.array([1.0, -2.0, 0.5])


@jax.custom_vjp
def _square_sum(y):
    return jnp.sum(y**2)


_square_sum.defvjp(lambda y: (_square_sum(y), y), lambda y, c: (2 * c * y,))


@pytest.mark.parametrize(
    "f, degree",
    [
        (lambda y: y @ A3 @ y + B3 @ y, 2),
        (lambda y: jnp.sum(y**2) + 100 * jax.nn.relu(y[0] - 0.05) ** 2, None),
        (lambda y: jnp.sum(y**3), 3),
        (lambda y: y[0] * y[1] * y[2] - 4.0, 3),
        (jax.jit(lambda y: 0.5 * y @ A3 @ y), 2),
        (jax.checkpoint(lambda y: jnp.dot(y, y) / 3.0), 2),
        (_square_sum, 2),
        (fm.Quadratic(A3, B3, 2.0), 2),
        (lambda y: jnp.mean(y) + jnp.exp(2.0) * y[0] + jnp.sin(A3).sum(), 1),
        (lambda y: jnp.sum(jnp.square(y)) + jnp.sum(y**2.0), 2),
        (lambda y: y[jnp.argmax(A3[0])] ** 2, 2),  # constant index
        (lambda y: y[jnp.argmax(y)] ** 2, None),  # index that depends on y
        (lambda y: jnp.linalg.norm(y) ** 2, None),  # a quadratic, but through sqrt
        (lambda y: jnp.sum(jnp.abs(y)), None),
        (lambda y: jnp.sum(jnp.maximum(y, 0.0)), None),
        (lambda y: jnp.sum(jnp.where(y > 0, y, 0.0)), None),
        (lambda y: y[0] / y[1], None),
        (lambda y: jnp.sum(y.astype(jnp.float32) ** 2), None),  # rounds to float32
        (lambda y: jax.lax.fori_loop(0, 2, lambda i, s: s + y[i] ** 2, 0.0), None),
    ],
)
def test_polynomial_degree_read_from_the_jaxpr(f, degree):
    assert polynomial_degree(f, jnp.ones(3)) == degree


def test_polynomial_degree_of_a_function_of_a_pytree():
    f = lambda p: jnp.sum(p["w"] ** 2) * p["b"] + p["b"]
    assert polynomial_degree(f, {"w": jnp.ones(2), "b": jnp.array(1.0)}) == 3


# ------------------------------------------------ the dual bound against mpmath


def mp_max_quadratic(A, g, r, dps=50):
    """max {g'd + 1/2 d'Ad : ||d|| <= r} in mpmath: by strong duality it is
    min over mu >= max(lambda_1, 0) of U(mu) = 1/2 sum beta_i^2/(mu - lam_i) + mu r^2/2,
    attained where ||(mu - Lam)^{-1} beta|| = r (bisection) or at mu = max(lambda_1, 0)."""
    with mp.workdps(dps):
        E, Q = mp.eigsy(mp.matrix(A.tolist()))
        lam = [E[i] for i in range(len(g))]
        beta = Q.T * mp.matrix(g.tolist())

        def step(mu):  # ||z(mu)||, terms with beta_i = 0 dropped
            return mp.sqrt(sum((beta[i] / (mu - lam[i])) ** 2 for i in range(len(g))
                               if beta[i] != 0))

        def U(mu):
            return sum(beta[i] ** 2 / (mu - lam[i]) for i in range(len(g)) if beta[i] != 0) / 2 \
                + mu * r**2 / 2

        lo = max(max(lam), 0)
        if all(beta[i] == 0 or lam[i] < lo for i in range(len(g))) and step(lo) <= r:
            return U(lo)
        hi = lo + mp.norm(beta) / r + 1
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if step(mid) < r else (mid, hi)
        return U(hi)


def quadratic_instance(seed, n, kind):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = rng.standard_normal(n)
    if kind == "hard_diagonal":  # exact hard case: top eigenvalue repeated, g orthogonal
        lam = np.sort(lam)[::-1]
        lam[1] = lam[0] = abs(lam[0]) + 1.0
        g = rng.standard_normal(n)
        g[:2] = 0.0
        return np.diag(lam), g, 10.0 * np.linalg.norm(g) + 1.0
    if kind == "near_hard":  # g nearly orthogonal to the top eigenvector
        g = rng.standard_normal(n)
        top = Q[:, np.argmax(lam)]
        g -= (1 - 1e-6) * (g @ top) * top
    else:
        g = rng.standard_normal(n)
    A = Q @ np.diag(lam) @ Q.T
    return 0.5 * (A + A.T), g, float(rng.choice([1e-3, 0.5, 5.0, 50.0]))


@pytest.mark.parametrize("kind", ["random", "near_hard", "hard_diagonal"])
@pytest.mark.parametrize("n", [2, 5, 12])
def test_dual_upper_bound_is_above_the_exact_maximum_and_tight(n, kind):
    for seed in range(3):
        A, g, r = quadratic_instance(seed + 10 * n, n, kind)
        res = fm.max_variation(fm.Quadratic(A, g), np.zeros(n), r)  # g = A 0 + b
        exact = mp_max_quadratic(A, g, r)
        assert res.method.startswith("exact_quadratic")
        assert res.upper >= exact and res.upper >= res.value
        assert float(res.upper - exact) <= 1e-12 * float(exact)
        assert float(exact - res.value) <= 1e-12 * float(exact)


def test_value_is_f_at_the_argmax_not_the_model():
    """.value = f(argmax) - f(x) evaluated, at a large radius where rounding shows."""
    A, g, _ = quadratic_instance(3, 6, "random")
    q = fm.Quadratic(A, g, c=1e3)
    x = np.full(6, 0.3)
    res = fm.max_variation(q, x, 1e3)
    assert res.value == float(q(jnp.asarray(res.argmax))) - float(q(jnp.asarray(x)))
    assert res.upper >= res.value


# ------------------------------------- quadratic near x only: no bound is proven


def test_function_quadratic_near_x_only_gets_no_upper_bound():
    """The sampled test takes sum(y^2) + 100 relu(y_0 - 0.05)^2 at 0 for a quadratic;
    V(0, 0.1) = r^2 + 100 (r - 0.05)^2 = 0.26 at y = r e_0, not the model's 0.01."""
    f = lambda y: jnp.sum(y**2) + 100 * jax.nn.relu(y[0] - 0.05) ** 2
    res = fm.max_variation(f, np.zeros(10), 0.1)
    assert res.method == "quadratic_model(sampled)+projected_ascent"
    assert res.upper is None
    assert res.value == pytest.approx(0.26, rel=1e-12)
    forced = fm.max_variation(f, np.zeros(10), 0.1, solver=ExactQuadratic())
    assert forced.upper is None and forced.method.startswith("quadratic_model(unproven)")


def test_structural_quadratic_is_proven_and_beyond_dense_size_falls_back_to_ascent(
        monkeypatch):
    f = lambda y: 0.5 * y @ A3 @ y + B3 @ y
    res = fm.max_variation(f, np.zeros(3), 0.5)
    assert res.method.startswith("exact_quadratic:") and res.upper >= res.value
    # above the dense-Hessian size (lowered here to 3 to keep the test fast) the dense
    # solver is not used: ascent, and no upper bound
    monkeypatch.setattr(fm._variation, "DENSE_HESSIAN_MAX_N", 3)
    big = fm.max_variation(lambda y: jnp.sum(y**2) + jnp.sum(y), np.zeros(5), 0.3)
    assert big.method == "projected_ascent" and big.upper is None
    assert big.value == pytest.approx(0.3 * np.sqrt(5) + 0.09, rel=1e-12)


# ------------------------------------------------------- NaN derivatives at x


def norm_squared_plus_sum(y):
    return jnp.linalg.norm(y) ** 2 + jnp.sum(y)  # autodiff gives NaN derivatives at 0


def test_nan_gradient_at_x_is_named_and_the_value_is_right():
    """V(0, r) = sqrt(3) r + r^2 for ||y||^2 + sum(y) in R^3; D(0, delta) inverts it."""
    with pytest.warns(RuntimeWarning, match="gradient of f at x is NaN"):
        res = fm.max_variation(norm_squared_plus_sum, np.zeros(3), 0.1)
    assert res.value == pytest.approx(0.1 * np.sqrt(3) + 0.01, rel=1e-10)
    with pytest.warns(RuntimeWarning, match="gradient of f at x is NaN"):
        d = fm.level_distance(norm_squared_plus_sum, np.zeros(3), 0.05)
    assert d.value == pytest.approx((np.sqrt(3 + 0.2) - np.sqrt(3)) / 2, rel=1e-8)
    with warnings.catch_warnings(), pytest.raises(ValueError, match="NaN"):
        warnings.simplefilter("ignore")
        fm.max_variation(norm_squared_plus_sum, np.zeros(3), 0.1, smoothness=2.0)
    with warnings.catch_warnings(), pytest.raises(ValueError, match="NaN"):
        warnings.simplefilter("ignore")
        fm.max_variation(norm_squared_plus_sum, np.zeros(3), 0.1, solver=ExactQuadratic())


# ------------------------------------------- property: upper >= independent search


def independent_max(fun_np, x, r, seed=0):
    """max of f over the ball minus f(x), by a dense grid (polar in 2-d, random points
    and a sphere net in 3-d) polished by SLSQP from the three best grid points."""
    n = x.size
    rng = np.random.default_rng(seed)
    if n == 2:
        rho, phi = np.meshgrid(np.sqrt(np.linspace(0, 1, 120)), np.linspace(0, 2 * np.pi, 360))
        pts = np.stack([rho.ravel() * np.cos(phi.ravel()), rho.ravel() * np.sin(phi.ravel())], 1)
    else:
        u = rng.standard_normal((20000, n))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        pts = np.concatenate([u * rng.uniform(0, 1, (20000, 1)) ** (1 / n), u])
    ys = x + r * pts
    vals = fun_np(ys)
    best = float(vals.max())
    cons = {"type": "ineq", "fun": lambda y: r**2 - np.sum((y - x) ** 2)}
    for i in np.argsort(-vals)[:3]:
        sol = minimize(lambda y: -fun_np(y[None])[0], ys[i], method="SLSQP", constraints=cons,
                       options={"ftol": 1e-15, "maxiter": 200})
        y = sol.x
        if np.linalg.norm(y - x) > r:
            y = x + (y - x) * (r / np.linalg.norm(y - x)) * (1 - 1e-15)
        if np.linalg.norm(y - x) <= r:
            best = max(best, float(fun_np(y[None])[0]))
    return best - float(fun_np(x[None])[0])


class Kinked:
    """1/2 y'Ay + b'y + c1 relu(a1'y - t1) + c2 |a2'y - t2| + c3 max(a3'y, a4'y)
    + c4 relu(a5'y - t5)^2, with random coefficients; evaluated by JAX for flatminima
    and by NumPy (rows of points) for the independent search."""

    def __init__(self, seed, n):
        rng = np.random.default_rng(seed)
        A = rng.standard_normal((n, n))
        self.A, self.b = A + A.T, rng.standard_normal(n)
        self.a = rng.standard_normal((5, n))
        self.t = rng.uniform(-0.3, 0.3, 5)
        self.c = rng.uniform(0.5, 20.0, 4)

    def __call__(self, y):
        a, t, c = self.a, self.t, self.c
        return (0.5 * y @ self.A @ y + self.b @ y + c[0] * jax.nn.relu(a[0] @ y - t[0])
                + c[1] * jnp.abs(a[1] @ y - t[1]) + c[2] * jnp.maximum(a[2] @ y, a[3] @ y)
                + c[3] * jax.nn.relu(a[4] @ y - t[4]) ** 2)

    def numpy(self, Y):
        a, t, c = self.a, self.t, self.c
        s = Y @ a.T
        return (0.5 * np.einsum("ki,ij,kj->k", Y, self.A, Y) + Y @ self.b
                + c[0] * np.maximum(s[:, 0] - t[0], 0) + c[1] * np.abs(s[:, 1] - t[1])
                + c[2] * np.maximum(s[:, 2], s[:, 3]) + c[3] * np.maximum(s[:, 4] - t[4], 0) ** 2)


def _relu_bump(y):
    return jnp.sum(y**2) + 100.0 * jax.nn.relu(y[0] - 0.05) ** 2


def _relu_bump_np(Y):
    return np.sum(Y**2, axis=1) + 100.0 * np.maximum(Y[:, 0] - 0.05, 0) ** 2


# a fixed family (each compiled once), hypothesis draws the function, the point, the radius
FUNCTIONS = [(Kinked(3, 3), Kinked(3, 3).numpy), (_relu_bump, _relu_bump_np)]


@settings(max_examples=12, deadline=None)
@given(k=st.integers(0, len(FUNCTIONS) - 1), seed=st.integers(0, 2**16),
       r=st.floats(0.02, 0.5))
def test_property_kinked_functions_never_get_a_false_upper_bound(k, seed, r):
    f, f_np = FUNCTIONS[k]
    x = np.random.default_rng(seed).uniform(-0.3, 0.3, 3)
    res = fm.max_variation(f, x, r)
    indep = independent_max(f_np, x, r, seed)
    tol = 1e-12 * (1 + abs(float(f_np(x[None])[0])))
    assert res.upper is None or res.upper >= indep - tol
    # these f are not polynomials and no constant is given: nothing is proven, even when
    # the sampled test takes f for a quadratic (kinks outside its samples)
    assert res.upper is None
    assert res.value >= 0 and np.linalg.norm(res.argmax - x) <= r


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.sampled_from([2, 3]),
       kind=st.sampled_from(["random", "near_hard", "hard_diagonal"]))
def test_property_quadratic_upper_is_valid_and_tight(seed, n, kind):
    A, g, r = quadratic_instance(seed, n, kind)
    r = min(r, 5.0)
    x = np.random.default_rng(seed).uniform(-1, 1, n)
    q = fm.Quadratic(A, g - A @ x)  # gradient g at x
    res = fm.max_variation(q, x, r)
    q_np = lambda Y: 0.5 * np.einsum("ki,ij,kj->k", Y, q.A, Y) + Y @ q.b
    indep = independent_max(q_np, x, r, seed)
    scale = 1 + abs(float(q(jnp.asarray(x))))
    assert res.upper >= indep - 1e-12 * scale
    assert res.upper - indep <= 1e-8 * (scale + res.upper)
    assert res.upper >= res.value


def test_quadratic_of_a_list_of_layer_pairs_is_proven_through_the_objective():
    """The structural check sees through the objective's own flattening (split, jit):
    sum ||W||^2 + ||b||^2 over [(W, b), ...] is proven quadratic, V = r^2 + 2 r ||x||."""
    pairs = [(np.ones((3, 2)), np.zeros(3)), (np.ones((1, 3)), np.zeros(1))]
    f = lambda p: sum(jnp.sum(W**2) + jnp.sum(b**2) for W, b in p)
    res = fm.max_variation(f, pairs, 0.1)
    norm_x = np.sqrt(9.0)
    assert res.method.startswith("exact_quadratic")
    assert res.value == pytest.approx(0.01 + 2 * 0.1 * norm_x, rel=1e-12)
    assert res.value <= res.upper <= res.value * (1 + 1e-12)
    assert isinstance(res.argmax, list) and res.argmax[0][0].shape == (3, 2)
