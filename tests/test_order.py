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
