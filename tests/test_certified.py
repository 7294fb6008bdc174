"""Certified maximal variation: interval enclosures, branch and bound, proven compare.

Exact values come from closed forms (SPEC and the gallery's docstrings) or from an
independent high-precision computation (mpmath, 40 digits, on the circle where the
maximum lies); the property tests compare with a dense grid of float evaluations.
"""

import math

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import sympy as sp
from flint import arb, ctx
from hypothesis import given, settings
from hypothesis import strategies as st

import flatminima as fm
from flatminima import examples as ex
from flatminima._interval import interval, interval_function, lower_float, upper_float
from flatminima.solvers import (
    Certified,
    CertifiedProgress,
    ProjectedAscent,
    SymbolicFunction,
    UnsupportedOperation,
)

FAST = Certified(ascent=False)
SOUNDNESS = Certified(ascent=False, rtol=1e-6, max_seconds=0.5)  # sound at any budget


def _on_circle_max(g, a, r, theta0):
    """max over theta of g(a + r cos theta, r sin theta), 40 digits, from near theta0."""
    mpmath.mp.dps = 40
    h = lambda t: g(a + r * mpmath.cos(t), r * mpmath.sin(t))
    t = mpmath.findroot(lambda t: mpmath.diff(h, t), theta0)
    return h(t)


def _contains(res, exact):
    return mpmath.mpf(res.value) <= exact <= mpmath.mpf(res.upper)


R = 0.1
GALLERY_CASES = [
    (ex.figure1, (0.0, 0.0), R**2),  # max t + (r^2 - t) t^2 over t = y2^2 is at t = r^2
    (ex.quadratic_bowl, (0.0, 0.0), 3 * R**2),
    (ex.separable_sum, (0.0, 0.0), R**2),
    (ex.pointwise_max, (0.0, 0.0), 2 * R**2),
    (ex.abs_plus_square, (0.0, 0.0), R),
    (ex.piecewise_linear_valley, (0.0, 0.0), R),
    (ex.piecewise_linear_valley, (1.0, 0.0), math.sqrt(2) * R),
    (ex.product_square, (0.0, 0.0), R**4 / 4),
    (ex.quartic, (0.0,), R**4),
    (ex.double_well, (-1.0,), 4 * R**2),
]


@pytest.mark.parametrize("f, x, exact", GALLERY_CASES,
                         ids=[f"{c[0].__name__}{c[1]}" for c in GALLERY_CASES])
def test_gallery_interval_contains_closed_form_and_is_narrow(f, x, exact):
    res = fm.max_variation(f, x, R, solver=FAST)
    assert res.method == "certified"
    assert res.value <= exact <= res.upper
    assert res.upper - res.value < 1e-8 * exact


@pytest.mark.parametrize("f, g, theta0", [
    (ex.figure1, lambda u, v: v**2 + u**2 * v**4, 1.5),
    (ex.product_square, lambda u, v: u**2 * v**2, 1.5),
], ids=["figure1", "product_square"])
def test_gallery_interval_contains_high_precision_value_off_origin(f, g, theta0):
    # f grows with |y2| at fixed y1, so the maximum over the disk lies on its circle
    exact = _on_circle_max(g, 1, R, theta0)
    res = fm.max_variation(f, (1.0, 0.0), R, solver=FAST)
    assert _contains(res, exact)
    assert res.upper - res.value < 1e-8 * res.value


def test_value_is_proven_lower_bound_at_a_point_of_the_ball():
    res = fm.max_variation(ex.figure1, (1.0, 0.0), R, solver="certified")
    y = res.argmax
    assert np.linalg.norm(y - np.array([1.0, 0.0])) <= R
    with ctx.workprec(106):
        fy = arb(float(y[1])) ** 2 + arb(float(y[0])) ** 2 * arb(float(y[1])) ** 4
        assert res.value <= lower_float(fy)  # f(x) = 0


def test_linf_and_weighted_balls_match_closed_forms():
    # max of y1^2 + 3 y2^2 over |y_i| <= r is at a corner: 4 r^2
    res = fm.max_variation(ex.quadratic_bowl, (0.0, 0.0), R, norm="linf", solver=FAST)
    assert res.value <= 4 * R**2 <= res.upper and res.gap < 1e-9 * 4 * R**2
    # over ||y / w||_2 <= r: r^2 max(w1^2, 3 w2^2)
    w = np.array([2.0, 0.5])
    res = fm.max_variation(ex.quadratic_bowl, (0.0, 0.0), R, norm="weighted_l2", weights=w,
                           solver=FAST)
    exact = R**2 * max(w[0] ** 2, 3 * w[1] ** 2)
    assert res.value <= exact <= res.upper and res.gap < 1e-9 * exact


def test_linf_face_maximum_of_smooth_function():
    # f = sin(y1) + y2^2 - y2 over |y_i - x_i| <= r at x = 0: y1 = r, y2 = -r
    f = lambda y: jnp.sin(y[0]) + y[1] ** 2 - y[1]
    exact = math.sin(R) + R**2 + R
    res = fm.max_variation(f, (0.0, 0.0), R, norm="linf", solver=FAST)
    assert res.value <= exact <= res.upper and res.gap < 1e-9 * exact


def test_maximum_at_the_centre_gives_zero_lower_bound_and_small_upper():
    f = lambda y: jnp.cos(y[1]) - y[0] ** 2  # local max at 0: V = 0
    res = fm.max_variation(f, (0.0, 0.0), R, solver=Certified(ascent=False, atol=1e-12))
    assert res.value == 0.0 and 0.0 <= res.upper <= 1e-12


def _spike(y):
    bump = jnp.exp(-((y[0] - 0.3) ** 2 + (y[1] + 0.2) ** 2) / 1e-4)
    return y[0] ** 2 + y[1] ** 2 + 3.0 * bump


def test_narrow_spike_missed_by_ascent_is_covered_by_certified_bound():
    ascent = fm.max_variation(_spike, (0.0, 0.0), 1.0, solver=ProjectedAscent())
    res = fm.max_variation(_spike, (0.0, 0.0), 1.0, solver=Certified(ascent=False, rtol=1e-10))
    # independent value: Newton on the gradient from the spike's centre, 40 digits
    mpmath.mp.dps = 40
    g = lambda u, v: u**2 + v**2 + 3 * mpmath.exp(-((u - 0.3) ** 2 + (v + 0.2) ** 2) / 1e-4)
    peak = mpmath.findroot([lambda u, v: mpmath.diff(g, (u, v), (1, 0)),
                            lambda u, v: mpmath.diff(g, (u, v), (0, 1))], (0.3, -0.2))
    exact = g(*peak)
    assert abs(ascent.value - 1.0) < 1e-9  # the ascent stays on the bowl's rim
    assert _contains(res, exact) and res.gap < 1e-9 * exact
    assert res.upper > ascent.value + 2.0


def _grid_max(f, x, r, n=301, n_circle=4000):
    t = np.linspace(-r, r, n)
    U, V = np.meshgrid(t, t)
    keep = U**2 + V**2 <= r**2
    th = np.linspace(0, 2 * np.pi, n_circle, endpoint=False)
    pts = np.concatenate([np.stack([U[keep], V[keep]]), r * np.stack([np.cos(th), np.sin(th)])],
                         axis=1) + np.asarray(x)[:, None]
    return float(np.max(np.asarray(f(jnp.asarray(pts))))) - float(f(jnp.asarray(x)))


monomials = [(i, j) for i in range(5) for j in range(5 - i) if i + j > 0]


@settings(max_examples=8)
@given(coef=st.lists(st.integers(-3, 3), min_size=len(monomials), max_size=len(monomials)),
       x=st.tuples(st.integers(-4, 4), st.integers(-4, 4)), r=st.sampled_from([0.3, 1.0]))
def test_certified_interval_contains_grid_value_on_random_polynomials(coef, x, r):
    f = lambda y: sum(c * y[0] ** i * y[1] ** j for c, (i, j) in zip(coef, monomials))
    x = np.asarray(x, dtype=float) / 4
    res = fm.max_variation(f, x, r, solver=SOUNDNESS)
    grid = _grid_max(f, x, r)
    slack = 1e-12 * (1 + abs(grid))  # float rounding of the grid evaluations
    assert res.value <= res.upper
    assert grid <= res.upper + slack


@settings(max_examples=8)
@given(a=st.lists(st.integers(-3, 3), min_size=6, max_size=6), r=st.sampled_from([0.3, 1.0]))
def test_certified_interval_contains_grid_value_on_random_kinked_functions(a, r):
    def f(y):
        kink = jnp.abs(a[0] * y[0] + a[1] * y[1] + 0.25)
        return kink + jnp.maximum(a[2] * y[0] ** 2, a[3] * y[1] + a[4] * y[0] * y[1]) \
            + jnp.minimum(jax.nn.relu(y[0] - 0.1), a[5] * y[1] ** 2)

    x = np.array([0.1, -0.2])
    res = fm.max_variation(f, x, r, solver=SOUNDNESS)
    grid = _grid_max(f, x, r)
    assert res.value <= res.upper
    assert grid <= res.upper + 1e-12 * (1 + abs(grid))


def test_compare_certified_proves_figure1_origin_flatter():
    res = fm.compare(ex.figure1, (0.0, 0.0), (1.0, 0.0), [0.1, 0.05], certified=True,
                     solver=FAST)
    assert res.verdict == "flatter"
    px, py = res.profile_x, res.profile_y
    assert np.all(px.uppers < py.values)  # proven at each radius
    np.testing.assert_allclose(-res.difference, res.radii**4, rtol=1e-3)  # V_y - V_x ~ r^4
    back = fm.compare(ex.figure1, (1.0, 0.0), (0.0, 0.0), [0.1], certified=True, solver=FAST)
    assert back.verdict == "sharper"


def test_compare_certified_leaves_symmetric_points_undetermined_with_gap():
    res = fm.compare(ex.figure1, (1.0, 0.0), (-1.0, 0.0), [0.1], certified=True, solver=FAST,
                     rtols=(1e-6,))
    assert res.verdict == "undetermined" and "gaps reached" in res.reason
    with pytest.raises(TypeError, match="Certified"):
        fm.compare(ex.figure1, (1.0, 0.0), (-1.0, 0.0), certified=True, solver=ProjectedAscent())


def test_step_between_constants_is_not_treated_as_constant():
    # where(y1 > 0, 1, 2) jumps on y1 = 0; from x = (0.01, 0) with r = 0.1 the best point
    # has y1 = 0 and y2^2 = r^2 - 0.01^2: V = 2 + 0.0099 - 1
    f = lambda y: jnp.where(y[0] > 0, 1.0, 2.0) + y[1] ** 2
    res = fm.max_variation(f, (0.01, 0.0), R, solver=SOUNDNESS)
    assert res.value <= 1.0099 <= res.upper


def test_unsupported_primitives_are_named():
    with pytest.raises(UnsupportedOperation, match="cumsum, floor"):
        fm.max_variation(lambda y: jnp.cumsum(y)[1] + jnp.floor(y[0]), (0.0, 0.0), 0.1,
                         solver=FAST)


def test_numpy_objective_is_refused_with_a_clear_error():
    class Loss:
        def value_and_grad(self, y):
            return float(y @ y), 2 * y

    with pytest.raises(TypeError, match="JAX function or a SymbolicFunction"):
        fm.max_variation(Loss(), np.zeros(2), 0.1, solver=FAST)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="rtol"):
        Certified(rtol=-1.0)
    with pytest.raises(ValueError, match="max_boxes"):
        Certified(max_boxes=0)


def test_budget_stop_reports_gap_and_stays_sound():
    seen = []
    res = fm.max_variation(ex.quadratic_bowl, (0.0, 0.0), R,
                           solver=Certified(ascent=False, max_boxes=5, progress=seen.append))
    assert res.value <= 3 * R**2 <= res.upper and res.gap > 0
    assert "budget ran out" in res.message
    assert seen and isinstance(seen[-1], CertifiedProgress)
    assert seen[-1].lower <= 3 * R**2 <= seen[-1].upper


def test_enclosures_contain_float_samples_of_values_and_gradients():
    def f(y):
        return (jnp.exp(0.3 * y[0]) * jnp.sin(y[1]) + jnp.log(2.0 + y[0] ** 2) + jnp.tanh(y[0] * y[1])
                + jnp.abs(y[0] - 0.1) + jnp.maximum(y[0], y[1]) + jnp.minimum(y[0], -y[1])
                + jax.nn.relu(y[1]) + jnp.sqrt(1.0 + y @ y) + (1.5 + y[0]) ** 2.5
                + jnp.cos(y[0]) / (2.0 + y[1]) + jnp.sum(jnp.dot(jnp.ones((2, 2)), y) ** 3))

    fn = interval_function(f, 2)
    grad = jax.jit(jax.grad(f))
    rng = np.random.default_rng(0)
    for _ in range(5):
        c = rng.uniform(-0.5, 0.5, 2)
        lo, hi = c - 0.1, c + 0.1
        jet = fn.jet([interval(a, b) for a, b in zip(lo, hi)])
        for y in rng.uniform(lo, hi, (50, 2)):
            assert lower_float(jet.v) - 1e-12 <= float(f(jnp.asarray(y))) <= upper_float(jet.v) + 1e-12
            for G, gi in zip(jet.g, np.asarray(grad(jnp.asarray(y)))):
                assert lower_float(G) - 1e-12 <= gi <= upper_float(G) + 1e-12


def test_point_enclosure_contains_40_digit_value():
    f = lambda y: jnp.exp(y[0]) * jnp.cos(y[1]) - jnp.log1p(y[0] ** 2) + 0.1 * y[1] ** 3
    mpmath.mp.dps = 40
    exact = mpmath.exp(0.7) * mpmath.cos(-1.3) - mpmath.log1p(mpmath.mpf(0.7) ** 2) \
        + mpmath.mpf(0.1) * mpmath.mpf(-1.3) ** 3
    with ctx.workprec(106):
        ball = interval_function(f, 2).point([arb(0.7), arb(-1.3)])
        assert lower_float(ball) <= exact <= upper_float(ball)
        assert float(ball.rad()) < 1e-25


def test_symbolic_function_keeps_rationals_exact():
    u, v = sp.symbols("u v")
    f = SymbolicFunction((u - sp.Rational(1, 3)) ** 2 + 3 * v**2, [u, v])
    mpmath.mp.dps = 40
    d = mpmath.mpf(1 / 3) - mpmath.mpf(1) / 3  # the float 1/3 is off by d (about 1.9e-17)
    with ctx.workprec(106):
        ball = interval_function(f, 2).point([arb(1 / 3), arb(0)])
        assert 0 < lower_float(ball) <= d**2 <= upper_float(ball)  # float arithmetic gives 0
    # on the circle around (float(1/3), 0): max of 2 d r cos t + r^2 + 2 r^2 sin^2 t
    res = fm.max_variation(f, (1 / 3, 0.0), R, solver=FAST)
    assert _contains(res, 3 * R**2 + d**2 / 2) and res.gap < 1e-9 * 3 * R**2
    with pytest.raises(UnsupportedOperation, match="gamma"):
        SymbolicFunction(sp.gamma(u) + v, [u, v])
