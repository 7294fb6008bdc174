"""Gradient methods against closed forms, and the Figure 1 recipe."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import flatminima as fm
from flatminima.flows import flatness_along, gradient_descent, gradient_flow, sam


def test_gradient_descent_matches_closed_form_iterates_on_a_quadratic():
    """f = 1/2 x'Ax: x_k = prod_j (I - a_j A) x0 for the schedule a_j = 0.1 (j+1)^-0.5."""
    A = np.array([[2.0, 0.5], [0.5, 1.0]])
    x0 = np.array([1.0, -2.0])
    traj = gradient_descent(lambda y: 0.5 * y @ A @ y, x0, 50, step=lambda k: 0.1 * (k + 1.0) ** -0.5)
    x = x0.copy()
    for k in range(50):
        x = (np.eye(2) - 0.1 * (k + 1.0) ** -0.5 * A) @ x
        np.testing.assert_allclose(traj.points[k + 1], x, rtol=1e-12, atol=1e-14)
    assert traj.points.shape == (51, 2) and traj.reason == "completed all steps"


def test_normalized_steps_have_the_requested_length_and_stop_at_zero_gradient():
    traj = gradient_descent(lambda y: jnp.sum(y**2), [3.0, 4.0], 4, step=1.0, normalized=True)
    np.testing.assert_allclose(np.linalg.norm(np.diff(traj.points, axis=0), axis=1), 1.0)
    zero = gradient_descent(lambda y: jnp.sum(y**2), [0.0, 0.0], 5, step=1.0, normalized=True)
    assert zero.steps_taken == 0 and "zero gradient" in zero.reason


def test_divergence_stops_with_a_reason_instead_of_nan():
    traj = gradient_descent(lambda y: y[0] ** 4, [10.0], 100, step=1.0)
    assert "non-finite" in traj.reason
    assert np.all(np.isfinite(traj.points)) and traj.steps_taken < 100


def test_gradient_flow_matches_matrix_exponential():
    A = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
    x0 = np.array([1.0, 0.5, -1.0])
    flow = gradient_flow(lambda y: 0.5 * y @ A @ y, x0, 2.0)
    for t, x in zip(flow.times[::40], flow.points[::40]):
        np.testing.assert_allclose(x, scipy.linalg.expm(-t * A) @ x0, rtol=1e-8, atol=1e-10)
    assert flow.max_increase <= 1e-12  # f nonincreasing along the flow
    np.testing.assert_allclose(flow.at(1.0), scipy.linalg.expm(-A) @ x0, rtol=1e-8)


def test_sam_reaches_the_minimum_of_a_bowl():
    traj = sam(lambda y: jnp.sum(y**2), [1.0, 1.0], 200, rho=0.01, step=0.1)
    assert np.linalg.norm(traj.points[-1]) < 0.02  # SAM hovers within about rho of 0


def test_figure1_recipe_drifts_toward_the_flat_minimum():
    """1000 normalized steps of length (k+1)^(-1/6) from (3.2, 0.6): the iterates stay
    bounded, approach the line x2 = 0 (within the step length), drift toward (0, 0),
    and the last point is flatter than the first."""
    f = fm.examples.figure1
    traj = gradient_descent(f, [3.2, 0.6], 1000, step=lambda k: (k + 1.0) ** (-1 / 6),
                            normalized=True)
    assert np.max(np.abs(traj.points)) <= 3.2 + 1e-12
    last_step = 1000 ** (-1 / 6)
    assert np.min(np.abs(traj.points[-10:, 1])) <= last_step
    assert abs(traj.points[-1, 0]) < 0.1  # from x1 = 3.2 to near the flat minimum x1 = 0
    assert np.all(np.diff(np.abs(traj.points[::100, 0])) < 0)  # steady drift in |x1|
    assert fm.compare(f, traj.points[-1], traj.points[0]).verdict == "flatter"
    ks, vs = flatness_along(f, traj, 0.1, iterations=[0, 999])
    assert vs[1] < vs[0]


def test_plain_steps_of_figure1_diverge_from_that_start():
    """Documented behaviour: without normalization, step 1 at k = 0 overshoots the steep
    x2 direction (gradient about 10 there) and the iterates blow up; the run stops."""
    traj = gradient_descent(fm.examples.figure1, [3.2, 0.6], 1000,
                            step=lambda k: (k + 1.0) ** (-1 / 6))
    assert "non-finite" in traj.reason and traj.steps_taken < 20


def test_figure1_command_writes_png_and_json(tmp_path):
    import json

    from flatminima.cli import run_figure1

    summary = run_figure1(tmp_path, steps=200)
    data = json.loads((tmp_path / "figure1.json").read_text())
    assert (tmp_path / "figure1.png").stat().st_size > 10_000
    assert data["last_point"] == summary["last_point"] and data["V_last"] < data["V_first"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="steps"):
        gradient_descent(lambda y: y @ y, [1.0], 0)
    with pytest.raises(ValueError, match="step"):
        gradient_descent(lambda y: y @ y, [1.0], 3, step=-1.0)
