"""Gradient methods against closed forms, and the Figure 1 recipe."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import flatminima as fm
from flatminima.flows import (
    flatness_along,
    flattening_flow,
    gradient_descent,
    gradient_flow,
    sam,
    verify_conserved,
)


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


def test_gradient_flow_returns_points_in_the_users_structure():
    """f = 1/2 (|a|^2 + 3 |B|^2): each leaf decays as exp(-c t); tree_points, point(i) and
    at(t) come back as the dict passed in."""
    x0 = {"a": jnp.array([1.0, -2.0]), "B": jnp.array([[0.5, 1.0], [2.0, -1.0]])}
    flow = gradient_flow(lambda p: 0.5 * (p["a"] @ p["a"] + 3.0 * jnp.sum(p["B"] ** 2)), x0, 1.0,
                         n_save=11)
    tree = flow.tree_points
    assert flow.points.shape == (11, 6) and tree["a"].shape == (11, 2) and tree["B"].shape == (11, 2, 2)
    decay = np.exp(-flow.times)
    np.testing.assert_allclose(tree["a"], decay[:, None] * np.asarray(x0["a"]), rtol=1e-8)
    np.testing.assert_allclose(tree["B"], decay[:, None, None] ** 3 * np.asarray(x0["B"]), rtol=1e-8)
    np.testing.assert_array_equal(flow.point(4)["B"], tree["B"][4])
    np.testing.assert_allclose(flow.at(0.37)["B"], np.exp(-1.11) * np.asarray(x0["B"]), rtol=1e-8)
    assert flow.status == "t1" and flow.success and not flow.converged


def test_gradient_flow_stops_at_the_steady_state_when_asked():
    """1/2 y'Ay with the steady-state stop: the end is y0 exp(-t A) at the reported time
    t_final, and the distance to the minimizer 0 is below the stop rule's bound."""
    A = np.diag([4.0, 1.0])
    x0 = np.array([1.0, 2.0])
    f = lambda y: 0.5 * y @ A @ y
    flow = gradient_flow(f, x0, 1e3, steady_state=1e-8)
    assert flow.converged and flow.status == "steady_state" and flow.t_final < 1e3
    np.testing.assert_allclose(flow.points[-1], scipy.linalg.expm(-flow.t_final * A) @ x0,
                               rtol=1e-7, atol=1e-12)  # the solver's atol
    assert np.linalg.norm(flow.points[-1]) <= 2e-12  # tol * ||y|| + atol, for a limit at 0
    assert flow.times[-1] == flow.t_final and np.all(np.isfinite(flow.points))
    with pytest.warns(RuntimeWarning, match="raise t1"):
        capped = gradient_flow(f, x0, 1.0, steady_state=1e-8)
    assert capped.status == "t1" and capped.success and not capped.converged
    np.testing.assert_allclose(capped.points[-1], scipy.linalg.expm(-A) @ x0, rtol=1e-8)


def test_stiff_gradient_flow_switches_to_the_implicit_solver():
    """1/2 (1e8 x^2 + y^2): explicit steps are capped near 3.5e-8 by stability, so Tsit5
    runs out of steps long before t1 = 10; the implicit Kvaerno5 finishes, matching the
    closed form (x0 exp(-1e8 t), y0 exp(-t))."""
    f = lambda z: 0.5 * (1e8 * z[0] ** 2 + z[1] ** 2)
    flow = gradient_flow(f, [1.0, 2.0], 10.0, n_save=6, max_steps=2000)
    assert flow.success and flow.status == "t1" and flow.solver.startswith("Kvaerno5")
    np.testing.assert_allclose(flow.points[:, 1], 2.0 * np.exp(-flow.times), rtol=1e-7)
    np.testing.assert_allclose(flow.points[1:, 0], 0.0, atol=1e-12)
    with pytest.warns(RuntimeWarning, match="max_steps"):
        explicit = gradient_flow(f, [1.0, 2.0], 10.0, n_save=6, max_steps=2000, solver="tsit5")
    assert not explicit.success and explicit.t_final < 1e-3 and np.all(np.isfinite(explicit.points))


def relu_net(seed=0):
    """One hidden layer of 3 ReLU units on 8 points; ||W_j||^2 - a_j^2 is conserved by
    the gradient flow (positive homogeneity of ReLU)."""
    rng = np.random.default_rng(seed)
    data, labels = jnp.asarray(rng.standard_normal((8, 2))), jnp.asarray(rng.standard_normal(8))
    f = lambda p: 0.5 * jnp.mean((jax.nn.relu(data @ p["W"].T) @ p["a"] - labels) ** 2)
    quantities = lambda p: jnp.sum(p["W"] ** 2, axis=1) - p["a"] ** 2
    v = rng.standard_normal(9)
    return f, quantities, {"W": v[:6].reshape(3, 2), "a": v[6:]}


def test_relu_flow_stalls_at_a_kink_with_a_warning_and_euler_is_the_fix():
    """From this start the flow reaches a kink of the ReLU loss (at t = 3.39) where the
    adaptive steps shrink without passing. The result says so, keeps only the finite
    part, and warns with the fix; Euler with dt is gradient descent with step dt, and the
    drift it reports is that of those iterates."""
    f, quantities, p0 = relu_net()
    with pytest.warns(RuntimeWarning, match="solver='euler'"):
        check = verify_conserved(f, quantities, p0, t1=5.0, max_steps=2000)
    assert not check.success and check.flow.status == "discontinuous"
    assert 3.0 < check.flow.t_final < 4.0 and check.flow.times[-1] == check.flow.t_final
    assert np.all(np.isfinite(check.drift)) and np.max(check.drift) < 1e-9
    assert "kink" in check.reason
    euler = verify_conserved(f, quantities, p0, t1=5.0, solver="euler", dt=1e-3, n_save=11)
    assert euler.success and euler.flow.t_final == 5.0
    gd = gradient_descent(f, p0, 5000, step=1e-3)
    q = np.asarray(jax.vmap(quantities)(gd.tree_points))[::500]
    np.testing.assert_allclose(euler.flow.points, gd.points[::500], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(euler.drift, np.max(np.abs(q - q[0]), axis=0), rtol=1e-6)
    assert 0 < np.max(euler.drift) < 1e-3  # O(dt) drift of Euler steps, finite


def test_nan_in_the_vector_field_is_reported_not_padded():
    """f is NaN below y1 = 0.5, which the flow y' = -y from (1, 1) reaches at t = ln 2:
    the result ends at the last saved time before (spacing 2 / 199), with status
    non_finite and finite points; a NaN gradient at the start is an error before any
    step."""
    f = lambda y: jnp.where(y[0] > 0.5, 0.5 * y @ y, jnp.nan)
    with pytest.warns(RuntimeWarning, match="NaN"):
        flow = gradient_flow(f, [1.0, 1.0], 2.0, max_steps=500)
    assert flow.status == "non_finite" and not flow.success
    assert np.log(2.0) - 2.0 / 199 <= flow.t_final < np.log(2.0)
    assert np.all(np.isfinite(flow.points)) and np.all(np.isfinite(flow.values))
    with pytest.raises(ValueError, match="not differentiable"):
        gradient_flow(lambda y: jnp.linalg.norm(y) ** 2, [0.0, 0.0], 1.0)


@pytest.mark.parametrize("x0", [(2.0, 0.5), (3.0, 1.0 / 3.0)])
def test_flattening_flow_arrives_at_the_balanced_point(x0):
    """(xy - 1)^2 with phi = 1/2 (x^2 - y^2)^2: the flow keeps xy = 1 and ends where
    x = y, at (1, 1), because it runs to its steady state (at a fixed t1 = 10 it stopped
    at 1.000027)."""
    f = lambda z: (z[0] * z[1] - 1.0) ** 2
    quantities = lambda z: jnp.array([z[0] ** 2 - z[1] ** 2])
    res = flattening_flow(f, quantities, jnp.array(x0), n_flatness=2)
    assert res.converged and res.flow.status == "steady_state" and "steady state" in res.reason
    np.testing.assert_allclose(res.points[-1], [1.0, 1.0], atol=1e-8)
    assert res.f_drift < 1e-10 and res.target_distance[-1] < 1e-8
    assert res.verdict_end_vs_start == "flatter"


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
    with pytest.raises(ValueError, match="dt="):
        gradient_flow(lambda y: y @ y, [1.0], 1.0, solver="euler")
    with pytest.raises(ValueError, match="solver must be"):
        gradient_flow(lambda y: y @ y, [1.0], 1.0, solver="rk4")
    with pytest.raises(ValueError, match="dt"):
        gradient_flow(lambda y: y @ y, [1.0], 1.0, solver="euler", dt=-0.1)
    with pytest.raises(ValueError, match="steps"):
        gradient_descent(lambda y: y @ y, [1.0], 0)
    with pytest.raises(ValueError, match="step"):
        gradient_descent(lambda y: y @ y, [1.0], 3, step=-1.0)
