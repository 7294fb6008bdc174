"""Every public function takes the user's point structure and returns points in it."""

import jax.numpy as jnp
import numpy as np
import pytest

import flatminima as fm


def bowl(p):
    """sum(W^2) + 3 sum(b^2) on {"W": (3, 2), "b": (3,)}: V(0, r) = 3 r^2, D(0, d) = sqrt(d/3)."""
    return jnp.sum(p["W"] ** 2) + 3.0 * jnp.sum(p["b"] ** 2)


def tuple_bowl(p):
    W, b = p
    return jnp.sum(W ** 2) + 3.0 * jnp.sum(b ** 2)


def figure1_tree(p):
    """Figure 1 on a dict: s + ||W||^2 s^2 with s = ||b||^2. Minimizers b = 0; at (W, 0)
    V(r) = r^2 + ||W||^2 r^4 + O(r^6), so a smaller ||W|| is flatter (SPEC 5)."""
    s = jnp.sum(p["b"] ** 2)
    return s + jnp.sum(p["W"] ** 2) * s ** 2


def zeros():
    return {"W": np.zeros((3, 2)), "b": np.zeros(3)}


def with_W(scale):
    return {"W": scale * np.ones((3, 2)) / np.sqrt(6.0), "b": np.zeros(3)}


def dist(p, q):
    return np.sqrt(sum(np.sum((np.asarray(p[k]) - np.asarray(q[k])) ** 2) for k in p))


def test_max_variation_argmax_in_dict_structure():
    x, r = zeros(), 0.1
    res = fm.max_variation(bowl, x, r)
    assert res.value == pytest.approx(3 * r**2, rel=1e-12)
    assert set(res.argmax) == {"W", "b"}
    assert res.argmax["W"].shape == (3, 2) and res.argmax["b"].shape == (3,)
    assert dist(res.argmax, x) <= r * (1 + 1e-12)
    assert float(bowl(res.argmax)) - float(bowl(x)) == pytest.approx(res.value, rel=1e-12)
    # the flat copy is the same point in ravel order (sorted keys: "W" < "b")
    np.testing.assert_array_equal(res.argmax_flat, np.concatenate(
        [res.argmax["W"].ravel(), res.argmax["b"]]))


def test_max_variation_at_zero_radius_and_tuple_points():
    x = (np.ones((3, 2)), np.zeros(3))
    res0 = fm.max_variation(tuple_bowl, x, 0.0)
    assert isinstance(res0.argmax, tuple) and np.array_equal(res0.argmax[0], x[0])
    res = fm.max_variation(tuple_bowl, x, 0.1)
    W, b = res.argmax
    assert W.shape == (3, 2) and b.shape == (3,)
    assert float(tuple_bowl(res.argmax)) - float(tuple_bowl(x)) == pytest.approx(res.value,
                                                                                rel=1e-12)


def test_array_points_keep_their_shape():
    res = fm.max_variation(lambda M: jnp.sum(M ** 2), np.zeros((2, 2)), 0.5)
    assert res.argmax.shape == (2, 2) and res.argmax_flat.shape == (4,)
    assert res.value == pytest.approx(0.25, rel=1e-12)


def test_level_distance_point_in_dict_structure():
    delta = 0.03
    res = fm.level_distance(bowl, zeros(), delta)
    assert res.value == pytest.approx(np.sqrt(delta / 3.0), rel=1e-8)
    assert res.point["W"].shape == (3, 2)
    assert float(bowl(res.point)) >= delta * (1 - 1e-12)
    assert dist(res.point, zeros()) == pytest.approx(res.value, rel=1e-12)


def test_profile_point_in_user_structure():
    x = with_W(1.0)
    prof = fm.flatness_profile(figure1_tree, x, [0.1, 0.05])
    assert prof.point["W"].shape == (3, 2)
    np.testing.assert_array_equal(prof.point["W"], x["W"])


def test_rank_minima_on_dict_points():
    """Minimizers (W, 0) ranked by ||W||: ties for equal norms."""
    points = [with_W(2.0), zeros(), with_W(1.0),
              {"W": -2.0 * np.ones((3, 2)) / np.sqrt(6.0), "b": np.zeros(3)}]
    ranking = fm.rank_minima(figure1_tree, points, [0.3, 0.2, 0.1])
    assert ranking.groups == [[1], [2], [0, 3]]


def test_is_flat_minimum_takes_and_returns_dict_neighbours():
    res = fm.is_flat_minimum(figure1_tree, with_W(1.0), radii=[0.3, 0.2, 0.1],
                             neighbours=[with_W(0.5), with_W(1.5)])
    assert res.verdicts == ["sharper", "flatter"] and not bool(res)
    assert res.neighbours[0]["W"].shape == (3, 2)
    np.testing.assert_allclose(res.neighbours[1]["W"], with_W(1.5)["W"])
    assert res.neighbours_flat.shape == (2, 9)


def test_mismatched_neighbour_structure_is_a_clear_error():
    with pytest.raises(ValueError, match=r"neighbours\[0\]"):
        fm.is_flat_minimum(figure1_tree, zeros(), neighbours=[{"W": np.zeros((3, 2))}])
