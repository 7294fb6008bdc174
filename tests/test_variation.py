"""max_variation and level_distance on non-quadratic functions, against closed forms,
the SPEC asymptotics and the Galois connection."""

import jax.numpy as jnp
import numpy as np
import pytest

import flatminima as fm


def figure1(y):
    return y[1] ** 2 + y[0] ** 2 * y[1] ** 4


@pytest.mark.parametrize("a", [0.0, 0.5, 1.0, -2.0])
@pytest.mark.parametrize("r", [0.1, 0.03, 0.01])
def test_figure1_profile_matches_closed_form_to_order_r8(a, r):
    """SPEC section 5: V((a, 0), r) = r^2 + a^2 r^4 + O(r^8)."""
    res = fm.max_variation(figure1, [a, 0.0], r)
    closed = r**2 + a**2 * r**4
    # the O(r^8) remainder is at most a^4 r^8 here (maximizer moves by O(a r^4) along x1)
    assert abs(res.value - closed) <= 2 * (a**4 + 1) * r**8 + 1e-15
    assert np.linalg.norm(res.argmax - np.array([a, 0.0])) <= r


def test_basic_facts_zero_radius_nonnegative_monotone():
    f = lambda y: jnp.sin(3 * y[0]) * jnp.cos(2 * y[1]) + 0.3 * y[0] * y[1]
    x = [0.2, -0.4]
    assert fm.max_variation(f, x, 0.0).value == 0.0
    values = [fm.max_variation(f, x, r).value for r in (0.01, 0.05, 0.1, 0.3, 0.6)]
    assert all(v >= 0 for v in values)
    assert all(b >= a - 1e-15 for a, b in zip(values, values[1:]))


def test_gradient_term_of_the_expansion():
    """Nonzero gradient: V(x, r) = ||g||_* r + o(r), checked for l2 (dual l2) and linf
    (dual l1): (V(r) - ||g||_* r) / r -> 0 linearly in r for C^2 f."""
    f = lambda y: jnp.exp(y[0]) + y[0] * y[1] ** 2 - jnp.sin(y[1])
    x = jnp.array([0.3, 0.7])
    g = np.array([np.exp(0.3) + 0.49, 2 * 0.3 * 0.7 - np.cos(0.7)])
    for norm, dual in (("l2", np.linalg.norm(g)), ("linf", np.abs(g).sum())):
        errs = [abs(fm.max_variation(f, x, r, norm=norm).value / r - dual) for r in (1e-2, 1e-3)]
        assert errs[1] < 0.2 * errs[0] and errs[1] < 1e-2


def test_hessian_term_of_the_expansion():
    """Critical point of a C^2 f: V(x, r) = 1/2 max(lambda_max, 0) r^2 + o(r^2)."""
    f = lambda y: 1.5 * y[0] ** 2 + 0.5 * y[1] ** 2 - y[0] ** 3 + y[1] ** 4
    for r in (1e-2, 1e-3):
        assert fm.max_variation(f, [0.0, 0.0], r).value / r**2 == pytest.approx(1.5, rel=3 * r)


@pytest.mark.parametrize(
    "f, x",
    [
        (figure1, [1.0, 0.0]),
        (lambda y: jnp.sin(y[0]) + jnp.cos(y[1]) * y[2], [0.1, 0.2, 0.3]),
        (lambda y: jnp.sum(y**4) - jnp.sum(y**2), np.linspace(-0.5, 0.5, 6)),
    ],
)
def test_galois_connection_level_distance_inverts_max_variation(f, x):
    """SPEC section 2: D(x, V(x, r)) = r."""
    for r in (0.05, 0.2):
        v = fm.max_variation(f, x, r).value
        d = fm.level_distance(f, x, v)
        assert d.value == pytest.approx(r, rel=1e-6)
        assert f(jnp.asarray(d.point)) >= f(jnp.asarray(x, dtype=float)) + v * (1 - 1e-12)


def test_level_distance_quadratic_asymptotic_and_unreachable():
    """At a C^2 critical point, D(x, delta) ~ sqrt(2 delta / lambda_max); a bounded f
    never rises by more than its range, so D is infinite beyond it."""
    f = lambda y: 2.0 * y[0] ** 2 + 0.5 * y[1] ** 2
    d = fm.level_distance(f, [0.0, 0.0], 1e-4)
    assert d.value == pytest.approx(np.sqrt(2e-4 / 4.0), rel=1e-8)
    bounded = lambda y: jnp.tanh(jnp.sum(y**2))
    far = fm.level_distance(bounded, [0.0, 0.0], 2.0, max_radius=10.0)
    assert far.value == np.inf and far.point is None


def test_linf_ball_on_separable_function_matches_vertex_value():
    """f = sum(c_i y_i^2) with c_i > 0 on the box |y_i| <= r attains its max at a vertex:
    V = sum(c_i) r^2 at x = 0."""
    c = jnp.array([1.0, 2.0, 0.5, 3.0])
    res = fm.max_variation(lambda y: jnp.sum(c * y**2) + 0.1 * jnp.sum(y**4), jnp.zeros(4), 0.2,
                           norm="linf")
    assert res.value == pytest.approx(float(jnp.sum(c)) * 0.04 + 0.1 * 4 * 0.2**4, rel=1e-12)
    assert np.max(np.abs(res.argmax)) <= 0.2


def test_lipschitz_and_smoothness_upper_bounds_bracket_the_value():
    f = lambda y: jnp.sin(y[0]) + jnp.sin(y[1])  # 1-Lipschitz per coordinate: L2 const sqrt 2
    res = fm.max_variation(f, [0.3, -0.2], 0.5, lipschitz=np.sqrt(2), smoothness=1.0)
    assert res.value <= res.upper <= np.sqrt(2) * 0.5
    with pytest.raises(ValueError, match="too small"):
        fm.max_variation(f, [0.3, -0.2], 0.5, lipschitz=0.1)


class NumpyObjective:
    """The shape in which a PyTorch loss comes in: value_and_grad in NumPy."""

    def __init__(self):
        self.calls = 0

    def value_and_grad(self, x):
        self.calls += 1
        return float(x[1] ** 2 + x[0] ** 2 * x[1] ** 4), np.array(
            [2 * x[0] * x[1] ** 4, 2 * x[1] + 4 * x[0] ** 2 * x[1] ** 3]
        )


def test_numpy_value_and_grad_objective_gives_the_same_answer_as_jax():
    obj = NumpyObjective()
    res = fm.max_variation(obj, np.array([1.0, 0.0]), 0.1)
    assert res.value == pytest.approx(fm.max_variation(figure1, [1.0, 0.0], 0.1).value, rel=1e-9)
    assert obj.calls > 0


def test_pytree_point():
    """A function of a dict of arrays; the argmax comes back flat, in ravel order."""
    f = lambda p: jnp.sum(p["w"] ** 2) + 3.0 * p["b"] ** 2
    res = fm.max_variation(f, {"w": jnp.zeros(3), "b": jnp.array(0.0)}, 0.1)
    assert res.value == pytest.approx(3.0 * 0.01, rel=1e-12)


def test_ascent_starts_separate_a_clustered_top_of_the_spectrum():
    """n = 500 (the Lanczos path for the starting directions), f = y'Hy / 2 with top
    eigenvalues 1 and 1 - 1e-3: V(0, r) = r^2 / 2 exactly. A start that mixes the two top
    eigenvectors (a Ritz vector with a small residual but a small gap) falls short by
    about the gap times the mixing, and the ascent separates them only slowly."""
    rng = np.random.default_rng(1)
    n = 500
    Q = np.linalg.qr(rng.normal(size=(n, n)))[0]
    lam = np.concatenate([[1.0, 1.0 - 1e-3], rng.uniform(-1.0, 0.99, n - 2)])
    H = jnp.asarray((Q * lam) @ Q.T)
    f = lambda y: 0.5 * y @ H @ y
    for r in (0.1, 0.01):
        res = fm.max_variation(f, np.zeros(n), r)
        assert res.value == pytest.approx(0.5 * r**2, rel=1e-10)
