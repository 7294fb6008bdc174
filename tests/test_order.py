"""Profiles, the germ preorder, ranking and flat minima against known answers."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import flatminima as fm
from flatminima.examples import GALLERY, figure1


def test_figure1_verdicts_and_flat_minimum():
    """SPEC section 5: (0,0) flatter than (1,0); (2,0) sharper than (1,0); (1,0) ~ (-1,0)."""
    assert fm.compare(figure1, [0.0, 0.0], [1.0, 0.0]).verdict == "flatter"
    assert fm.compare(figure1, [2.0, 0.0], [1.0, 0.0]).verdict == "sharper"
    c = fm.compare(figure1, [1.0, 0.0], [-1.0, 0.0])
    assert c.verdict == "equivalent"
    assert c.leading == "equivalent"  # both r^2: the leading order cannot separate them
    assert bool(fm.is_flat_minimum(figure1, [0.0, 0.0]))
    not_flat = fm.is_flat_minimum(figure1, [1.0, 0.0])
    assert not bool(not_flat) and not_flat.local_min and "flatter" in not_flat.reason


def test_comparison_evidence_resolves_the_r4_term():
    """The difference V((0,0), r) - V((1,0), r) = -r^4 + O(r^8) is carried as evidence."""
    c = fm.compare(figure1, [0.0, 0.0], [1.0, 0.0])
    assert np.all(np.abs(c.difference + c.radii**4) <= 2 * c.radii**8 + 1e-18)
    assert np.all(np.abs(c.difference) > c.tolerance)


def test_not_a_local_minimizer():
    res = fm.is_flat_minimum(figure1, [1.0, 0.5])
    assert not res.local_min and not bool(res)


def test_given_neighbours_are_used():
    res = fm.is_flat_minimum(figure1, [0.5, 0.0], neighbours=[[0.2, 0.0], [0.9, 0.0]])
    assert res.verdicts == ["sharper", "flatter"] and not bool(res)


@pytest.mark.parametrize(
    "ex, point, alpha, c",
    [(ex, p, a, c) for ex in GALLERY for (p, a, c) in ex.orders],
    ids=lambda v: getattr(v, "name", None) or str(v),
)
def test_order_of_flatness_matches_known_value(ex, point, alpha, c):
    prof = fm.flatness_profile(ex.f, point)
    assert abs(prof.order - alpha) <= max(prof.order_uncertainty, 1e-6)
    assert abs(prof.coefficient - c) <= max(prof.coefficient_uncertainty, 1e-6 * c)


def test_degenerate_orders_are_estimated_not_assumed():
    """x^4 and y1^2 y2^2 have zero Hessians: the order comes from the fit, and is 4."""
    for f, x, c in ((fm.examples.quartic, [0.0], 1.0), (fm.examples.product_square, [0.0, 0.0], 0.25)):
        prof = fm.flatness_profile(f, x)
        assert prof.basis == "fit"
        assert prof.order == pytest.approx(4.0, abs=1e-6)
        assert prof.coefficient == pytest.approx(c, rel=1e-6)


def test_dual_profile_is_the_generalized_inverse():
    """D(x, delta) ~ sqrt(2 delta / lambda_max) at a C^2 critical point."""
    deltas, dist = fm.distance_profile(fm.examples.quadratic_bowl, [0.0, 0.0], [1e-2, 1e-4])
    np.testing.assert_allclose(dist, np.sqrt(2 * deltas / 6.0), rtol=1e-8)


@given(st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3))
def test_preorder_is_reflexive_and_transitive(a_values):
    """On Figure 1's minimizers (a, 0) the germ preorder is |a| <= |b|: total, transitive."""
    pts = [[a, 0.0] for a in a_values]
    radii = np.logspace(-1, -2.5, 5)
    profiles = [fm.flatness_profile(figure1, p, radii) for p in pts]
    from flatminima._order import verdict_from_profiles

    v = lambda i, j: verdict_from_profiles(profiles[i], profiles[j]).verdict
    leq = lambda i, j: v(i, j) in ("flatter", "equivalent")
    for i in range(3):
        assert v(i, i) == "equivalent"
        for j in range(3):
            for k in range(3):
                if leq(i, j) and leq(j, k):
                    assert leq(i, k)


def test_rank_minima_groups_ties():
    ranking = fm.rank_minima(figure1, [[2.0, 0.0], [0.0, 0.0], [-2.0, 0.0], [1.0, 0.0]])
    assert ranking.groups == [[1], [3], [0, 2]]


def two_bowls(y):
    """a(y1) + y2^2 with a(t) = (t^2 - 1)^2 (2 + t): minima (1, 0) with a'' = 24 and
    (-1, 0) with a'' = 8, both at f = 0."""
    t = y[0]
    return (t**2 - 1.0) ** 2 * (2.0 + t) + y[1] ** 2


def a(t):
    return (t**2 - 1.0) ** 2 * (2.0 + t)


def a_prime(t):
    return 4.0 * t * (t**2 - 1.0) * (2.0 + t) + (t**2 - 1.0) ** 2


def variation_on_circle(x1, r):
    """V(x, r) for two_bowls at (x1, 0), independently: the maximum lies on the circle
    (no local maximum of f within these balls); a dense angle grid, then a bounded
    scalar refinement."""
    from scipy.optimize import minimize_scalar

    g = lambda th: -(a(x1 + r * np.cos(th)) + (r * np.sin(th)) ** 2 - a(x1))
    grid = np.linspace(0.0, 2 * np.pi, 4001)
    k = int(np.argmin(g(grid)))
    res = minimize_scalar(g, bounds=(grid[max(k - 1, 0)], grid[min(k + 1, 4000)]),
                          method="bounded", options={"xatol": 1e-14})
    return -res.fun


def test_non_critical_points_plain_curvature_and_critical_verdicts():
    """x near the sharp minimum with a small gradient, y near the flat one with a larger
    gradient. The plain germ verdict follows the gradient norms (x flatter) and says so;
    the curvature verdict (V - ||grad f|| r) and the comparison of the critical points
    reached by BFGS follow the curvatures (x sharper)."""
    x, y = [1.0 + 1e-3, 0.0], [-1.0 + 1e-2, 0.0]
    radii = np.geomspace(2e-3, 5e-4, 4)
    with pytest.warns(RuntimeWarning, match="not a critical point"):
        c = fm.compare(two_bowls, x, y, radii, critical=True)
    assert c.verdict == "flatter" and "gradient norms" in c.reason
    assert c.first_order_dominates
    np.testing.assert_allclose(c.gradient_norms, [abs(a_prime(x[0])), abs(a_prime(y[0]))],
                               rtol=1e-12)
    # the curvature parts against V computed independently on the circle
    exact = np.array([(variation_on_circle(x[0], r) - abs(a_prime(x[0])) * r)
                      - (variation_on_circle(y[0], r) - abs(a_prime(y[0])) * r) for r in radii])
    np.testing.assert_allclose(c.curvature_difference, exact, rtol=1e-6, atol=1e-15)
    assert c.curvature_verdict == "sharper"
    crit = c.critical
    assert crit.verdict == "sharper" and crit.converged
    assert crit.moved_x == pytest.approx(1e-3, rel=1e-6)
    assert crit.moved_y == pytest.approx(1e-2, rel=1e-6)
    assert crit.decrease_x == pytest.approx(a(x[0]), rel=1e-6)
    assert crit.decrease_y == pytest.approx(a(y[0]), rel=1e-6)
    np.testing.assert_allclose(crit.point_x, [1.0, 0.0], atol=1e-8)
    # at the minima V = a''(t) r^2 / 2 + a'''(t) r^3 / 6 + O(r^4) (the ascent follows the
    # y1 axis, where a'' is largest): 12 r^2 + 16 r^3 at t = 1, 4 r^2 + 0 r^3 at t = -1
    r = radii[-1]
    assert crit.comparison.profile_x.values[-1] == pytest.approx(12 * r**2 + 16 * r**3, rel=1e-3)
    assert crit.comparison.profile_y.values[-1] == pytest.approx(4 * r**2, rel=1e-3)
    assert not crit.comparison.first_order_dominates


def test_curvature_part_of_a_quadratic_is_the_curvature_along_the_gradient():
    """f(y) = g'y + 1/2 y'Ay (exact trust-region solver): V(0, r) - ||g|| r =
    (1/2) u'Au r^2 + O(r^3), u = g / ||g||. With A = diag(1, 10): the gradient e1 sees
    curvature 1, the gradient e2 curvature 10, whatever the gradient norms."""
    A = np.diag([1.0, 10.0])
    fx = fm.Quadratic(A, b=[0.5, 0.0])   # at 0: gradient (0.5, 0), curvature along it 1
    # the same f seen from a point where the gradient is (0, 0.05): y = (-0.5, 0.005)
    y = [-0.5, 0.005]
    radii = np.geomspace(1e-4, 1e-5, 3)
    with pytest.warns(RuntimeWarning):
        c = fm.compare(fx, [0.0, 0.0], y, radii)
    assert c.verdict == "sharper"  # ||g(x)|| = 0.5 > ||g(y)|| = 0.05
    assert c.curvature_verdict == "flatter"
    # both gradients are eigenvectors of A, so V = ||g|| r + (1/2) u'Au r^2 exactly (for
    # r < ||g|| / 9): the curvature parts differ by (1/2)(1 - 10) r^2
    np.testing.assert_allclose(c.curvature_difference / radii**2, -4.5, rtol=1e-6)


def test_critical_points_compare_like_the_plain_verdict():
    """At critical points the curvature part is V itself and no warning is raised."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        c = fm.compare(figure1, [0.0, 0.0], [1.0, 0.0])
    assert not c.first_order_dominates and c.curvature_verdict == c.verdict == "flatter"
