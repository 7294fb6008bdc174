"""Gradient methods and flows (SPEC section 11): gradient descent with step schedules,
normalized steps, gradient flow by adaptive ODE integration, and SAM; the flattening
flow (SPEC section 8) and the check of conserved quantities along the gradient flow.

Every result keeps ``points`` as a ``(k + 1, n)`` array of flat coordinates (for plots
and arithmetic) and gives the same points in the structure of the start point the user
passed: ``tree_points`` (each leaf with a leading axis of length ``k + 1``) and
``point(i)``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._objective import as_objective, check_scalar
from ._ode import FlowTrajectory, GradientField, TreePoints, check_solver, integrate
from ._report import result_type
from ._x64 import float64, float64_methods

REASONS = {0: "completed all steps", 1: "zero gradient (a critical point was reached)",
           2: "overflow or NaN: the iterate or f became non-finite; reduce the step"}


@result_type()
@dataclass(frozen=True)
class Trajectory(TreePoints):
    """Iterates of a method. ``points`` has shape ``(k + 1, n)`` where ``k`` is the number
    of steps taken (``steps`` unless the run stopped early, see ``reason``); ``values``
    are f at the points; ``tree_points`` and ``point(i)`` give them in the structure of
    ``x0``."""

    points: np.ndarray
    values: np.ndarray
    reason: str
    steps_taken: int
    unravel: Callable = field(repr=False)


def _schedule(step: Any, steps: int) -> jnp.ndarray:
    """Step sizes for k = 0 .. steps-1 from a number or a function of k."""
    if callable(step):
        k = np.arange(steps)
        try:
            out = np.asarray(step(k), dtype=float)
            if out.shape != (steps,):
                raise ValueError
        except Exception:
            out = np.array([float(step(int(i))) for i in k])
    else:
        out = np.full(steps, check_scalar(step, "step", positive=True))
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ValueError("step must give finite, nonnegative step sizes for every k.")
    return jnp.asarray(out)


@partial(jax.jit, static_argnames=("normalized", "rho_mode"))
def _run(fun, x0, alphas, normalized, rho_mode, rho):
    grad = jax.grad(fun)

    def body(carry, alpha):
        x, code = carry
        g = grad(x + rho * _unit(grad(x))) if rho_mode else grad(x)
        gn = jnp.linalg.norm(g)
        direction = jnp.where(gn > 0, g / jnp.where(gn > 0, gn, 1.0), 0.0) if normalized else g
        x_new = x - alpha * direction
        bad = ~jnp.all(jnp.isfinite(x_new)) | ~jnp.isfinite(fun(x_new))
        new_code = jnp.where(code != 0, code,
                             jnp.where(bad, 2, jnp.where(normalized & (gn == 0), 1, 0)))
        x_next = jnp.where(new_code == 0, x_new, x)
        return (x_next, new_code), (x_next, new_code)

    (_, code), (xs, codes) = jax.lax.scan(body, (x0, jnp.int32(0)), alphas)
    return xs, codes


def _unit(g):
    gn = jnp.linalg.norm(g)
    return jnp.where(gn > 0, g / jnp.where(gn > 0, gn, 1.0), 0.0)


def _trajectory(obj, x0, xs, codes) -> Trajectory:
    codes = np.asarray(codes)
    stopped = np.flatnonzero(codes != 0)
    k = int(stopped[0]) if stopped.size else len(codes)
    code = int(codes[stopped[0]]) if stopped.size else 0
    points = np.concatenate([np.asarray(x0)[None], np.asarray(xs)[:k]])
    values = np.asarray(jax.vmap(obj.fun)(jnp.asarray(points)))
    return Trajectory(points, values, REASONS[code], k, obj.unravel)


@float64
def gradient_descent(f: Any, x0: Any, steps: int, *, step: float | Callable = 1e-2,
                     normalized: bool = False) -> Trajectory:
    """Gradient descent ``x_{k+1} = x_k - step(k) grad f(x_k)``, or with
    ``normalized=True`` the move of length ``step(k)``:
    ``x_{k+1} = x_k - step(k) grad f(x_k) / ||grad f(x_k)||``.

    Args:
        steps: number of iterations.
        step: a number, or a function of the iteration index k = 0, 1, ... (vectorized
            over a NumPy array of k when possible).

    Runs as one compiled ``lax.scan``. A zero gradient (normalized steps) or a
    non-finite iterate stops the run; ``points`` then holds the iterates computed.

    >>> traj = gradient_descent(lambda y: 0.5 * y @ y, [1.0, 2.0], 3, step=0.5)
    >>> traj.points[-1].tolist()
    [0.125, 0.25]
    """
    obj, xf = as_objective(f, x0, name="f")
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps = {steps} must be >= 1.")
    xs, codes = _run(obj.fun, xf, _schedule(step, steps), bool(normalized), False, 0.0)
    return _trajectory(obj, xf, xs, codes)


@float64
def sam(f: Any, x0: Any, steps: int, rho: float, step: float | Callable = 1e-2) -> Trajectory:
    """Sharpness-aware minimization: ``x_{k+1} = x_k - step(k) grad f(x_k + rho u_k)``
    with ``u_k = grad f(x_k) / ||grad f(x_k)||`` (Foret et al., 2021)."""
    obj, xf = as_objective(f, x0, name="f")
    rho = check_scalar(rho, "rho")
    xs, codes = _run(obj.fun, xf, _schedule(step, int(steps)), False, True, rho)
    return _trajectory(obj, xf, xs, codes)


@float64
def gradient_flow(f: Any, x0: Any, t1: float, *, n_save: int = 200, rtol: float = 1e-10,
                  atol: float = 1e-12, max_steps: int = 100_000, solver: Any = "auto",
                  dt: float | None = None, steady_state: float | None = None) -> FlowTrajectory:
    """Gradient flow ``x' = -grad f(x)``, ``x(0) = x0``, on ``[0, t1]``.

    Args:
        f: objective (a JAX function of an array or pytree, or an object with
            ``value_and_grad``); x0: start point, any structure f accepts.
        t1: final time (with ``steady_state``, the latest time).
        n_save: number of saved times, equally spaced on ``[0, t_final]``.
        rtol, atol: tolerances of the adaptive step-size (PID) controller.
        max_steps: most solver steps.
        solver: ``"auto"`` (Tsit5, an explicit 5th-order Runge-Kutta method; when it runs
            out of steps on a finite vector field, which is how stiffness shows, the
            implicit Kvaerno5 is run instead, and ``solver`` in the result says so),
            ``"tsit5"``, ``"kvaerno5"``, ``"euler"`` (fixed steps, needs ``dt``), or any
            diffrax solver instance.
        dt: fixed step size; with it the solver takes constant steps (explicit Euler with
            step ``dt`` is gradient descent with step ``dt``). The fix when f is not
            smooth (ReLU, abs, max): adaptive steps stall where the gradient jumps.
        steady_state: ``None`` (integrate to ``t1``) or a tolerance ``tol``: stop at the
            first step where ``||F||^2 / ||J F|| <= tol ||x(t)|| + atol``, with
            ``F = -grad f(x(t))`` and ``J F`` its derivative along F (a Hessian-vector
            product). The left side estimates the distance still to travel (exact for a
            linear flow moving along an eigenvector, as a converging flow does along its
            slowest mode); it does not change when f is scaled.

    Returns a :class:`FlowTrajectory`: ``times``, ``points`` (``(k + 1, n)``, flat),
    ``tree_points`` and ``at(t)`` in the structure of ``x0``, ``values``, and how the run
    ended (``status``, ``success``, ``converged``, ``reason``, ``t_final``, ``solver``).
    A failed run (step limit, NaN in the gradient) keeps the points up to where it
    stopped and warns with the cause and the fix (RuntimeWarning). Bad arguments raise
    ``ValueError``/``TypeError``. Reference: Hairer, Norsett and Wanner, Solving Ordinary
    Differential Equations I-II (Runge-Kutta methods, step-size control, stiffness).

    >>> flow = gradient_flow(lambda y: 0.5 * y @ y, [1.0], 1.0)
    >>> round(float(flow.points[-1, 0]), 8), flow.status  # exp(-1)
    (0.36787944, 't1')
    """
    obj, xf = as_objective(f, x0, name="f")
    t1 = check_scalar(t1, "t1", positive=True)
    options = _check_options(n_save, rtol, atol, max_steps, solver, dt, steady_state)
    return integrate(GradientField(obj.fun), obj.fun, xf, t1, unravel=obj.unravel, **options,
                     name="gradient flow")


def _check_options(n_save, rtol, atol, max_steps, solver, dt, steady_state) -> dict:
    if int(n_save) < 2:
        raise ValueError(f"n_save = {n_save} must be >= 2.")
    if int(max_steps) < 1:
        raise ValueError(f"max_steps = {max_steps} must be >= 1.")
    solver, dt = check_solver(solver, dt)
    if steady_state is not None:
        steady_state = check_scalar(steady_state, "steady_state", positive=True)
    return {"n_save": int(n_save), "rtol": check_scalar(rtol, "rtol", positive=True),
            "atol": check_scalar(atol, "atol", positive=True), "max_steps": int(max_steps),
            "solver": solver, "dt": dt, "steady_state": steady_state}


@float64
def flatness_along(f: Any, trajectory: Trajectory, r: float, iterations: Any = None) -> tuple:
    """``V(x_k, r)`` at the chosen iterations (default: 30 spread over the run).
    Returns ``(iterations, values)``."""
    from ._variation import max_variation

    k = len(trajectory.points)
    if iterations is None:
        iterations = np.unique(np.linspace(0, k - 1, min(30, k)).astype(int))
    iterations = np.asarray(iterations, dtype=int)
    return iterations, np.array([max_variation(f, trajectory.points[i], r).value
                                 for i in iterations])


@float64_methods()
@result_type()
@dataclass(frozen=True)
class FlatteningResult:
    """The flattening flow ``y' = -grad phi(y)``, ``phi = 1/2 ||Q(y) - q*||^2``.

    ``flow``: the :class:`FlowTrajectory` (``converged``, ``reason``, ``points``,
    ``tree_points``, ``point(i)`` and ``at(t)`` are also available here);
    ``f_drift``: ``max_t |f(y(t)) - f(y(0))| / max(1, |f(y(0))|)`` (f is constant along
    the exact flow, so this is integration error); ``target_distance``: ``||Q(y(t)) - q*||``
    at ``times``; ``flatness``: ``V(y(t), radius)`` at ``flatness_times``.
    """

    flow: FlowTrajectory
    f_drift: float
    target_distance: np.ndarray
    flatness_times: np.ndarray
    flatness: np.ndarray
    radius: float
    verdict_end_vs_start: str
    flatness_monotone: bool

    @property
    def points(self) -> np.ndarray:
        return self.flow.points

    @property
    def tree_points(self) -> Any:
        return self.flow.tree_points

    @property
    def converged(self) -> bool:
        return self.flow.converged

    @property
    def reason(self) -> str:
        return self.flow.reason

    def point(self, i: int) -> Any:
        return self.flow.point(i)

    def at(self, t: float) -> Any:
        return self.flow.at(t)


@float64
def flattening_flow(f: Any, quantities: Callable, x0: Any, *, target: Any = None,
                    t1: float = 1e4, steady_state: float | None = 1e-10, radius: float = 1e-2,
                    n_flatness: int = 12, n_save: int = 200, rtol: float = 1e-11,
                    atol: float = 1e-13, max_steps: int = 100_000, solver: Any = "auto",
                    dt: float | None = None) -> FlatteningResult:
    """The gradient flow of ``phi = 1/2 ||Q(y) - q*||^2`` (SPEC section 8), run until it
    reaches its steady state.

    Args:
        f: the objective; ``x0``: the start point (array or pytree).
        quantities: ``Q``, a JAX function from a point in the structure of ``x0`` to the
            vector of conserved quantities (for instance a
            :class:`~flatminima.symmetry.ConservedQuantities`).
        target: ``q*`` (default 0).
        t1, steady_state: run until the steady state, with the stop rule of
            :func:`gradient_flow` applied to ``grad phi`` (tolerance ``steady_state``),
            but not past ``t1``; ``steady_state=None`` integrates to ``t1``.
        radius, n_flatness: ``V(y(t), radius)`` at ``n_flatness`` saved times.
        n_save, rtol, atol, max_steps, solver, dt: as in :func:`gradient_flow` (``"auto"``
            falls back to an implicit solver for stiff flows).

    Along the flow f stays constant (``<grad f, grad phi> = 0``); the result reports
    whether the flow converged and why it stopped, the drift of f, the distance of Q to
    its target, the maximal variation at ``radius`` along the way (whether it decreased
    monotonically is measured, not assumed) and the verdict of :func:`compare` of the end
    point against the start. A run that stops at ``t1`` or fails warns (RuntimeWarning).

    >>> import jax.numpy as jnp
    >>> f = lambda z: (z[0] * z[1] - 1.0) ** 2
    >>> Q = lambda z: jnp.array([z[0] ** 2 - z[1] ** 2])  # conserved by the gradient flow
    >>> res = flattening_flow(f, Q, [2.0, 0.5], n_flatness=2)
    >>> res.converged, [round(float(v), 8) for v in res.points[-1]]
    (True, [1.0, 1.0])
    """
    from ._order import compare
    from ._variation import max_variation

    obj, xf = as_objective(f, x0, name="f")
    t1 = check_scalar(t1, "t1", positive=True)
    options = _check_options(n_save, rtol, atol, max_steps, solver, dt, steady_state)
    radius = check_scalar(radius, "radius", positive=True)
    q0 = np.asarray(quantities(obj.unravel(xf)), dtype=float)
    if q0.ndim > 1 or not np.all(np.isfinite(q0)):
        raise ValueError(f"quantities must return a finite vector; got {q0!r} at x0.")
    qstar = jnp.zeros(q0.size) if target is None else jnp.asarray(target, dtype=float).reshape(q0.size)
    Q = lambda y: jnp.atleast_1d(jnp.asarray(quantities(obj.unravel(y))))
    grad_phi = jax.grad(lambda y: 0.5 * jnp.sum((Q(y) - qstar) ** 2))
    flow = integrate(lambda y: -grad_phi(y), obj.fun, xf, t1, unravel=obj.unravel, **options,
                     name="flattening flow")
    f0 = float(flow.values[0])
    drift = float(np.max(np.abs(flow.values - f0)) / max(1.0, abs(f0)))
    dist = np.asarray(jnp.linalg.norm(jax.vmap(Q)(jnp.asarray(flow.points)) - qstar, axis=1))
    k = len(flow.times)
    idx = np.unique(np.concatenate([[0], np.geomspace(1, k, max(int(n_flatness), 2)).astype(int) - 1]))
    flat = np.array([max_variation(obj.fun, jnp.asarray(flow.points[i]), radius).value
                     for i in idx])
    monotone = bool(np.all(np.diff(flat) <= 1e-12 * np.max(np.abs(flat))))
    verdict = compare(obj.fun, flow.points[-1], flow.points[0]).verdict
    return FlatteningResult(flow, drift, dist, flow.times[idx], flat, radius, verdict, monotone)


@result_type()
@dataclass(frozen=True)
class ConservationCheck:
    """``drift[j] = max_t |Q_j(x(t)) - Q_j(x0)|`` over the saved times of the gradient
    flow ``flow`` (zero for the exact flow of a conserved ``Q_j``; on a failed run, over
    the part integrated). ``success``/``reason``: whether the integration reached ``t1``."""

    drift: np.ndarray
    flow: FlowTrajectory

    @property
    def success(self) -> bool:
        return self.flow.success

    @property
    def reason(self) -> str:
        return self.flow.reason


@float64
def verify_conserved(f: Any, quantities: Callable, x0: Any, *, t1: float = 1.0,
                     n_save: int = 100, rtol: float = 1e-12, atol: float = 1e-14,
                     max_steps: int = 100_000, solver: Any = "auto",
                     dt: float | None = None) -> ConservationCheck:
    """Integrate the gradient flow of f from ``x0`` to ``t1`` (:func:`gradient_flow`) and
    measure, per quantity, the drift ``max_t |Q_j(x(t)) - Q_j(x0)|``.

    ``quantities`` maps a point in the structure of ``x0`` to a vector (a JAX function).
    When f is not smooth (a ReLU network), the adaptive solver can stall at a kink: the
    result then says so (``success`` False, a RuntimeWarning), and ``solver="euler"``
    with a step ``dt`` is the fix; Euler's steps change ``Q`` by ``O(dt^2)`` per step.

    >>> import jax.numpy as jnp
    >>> check = verify_conserved(lambda z: (z[0] * z[1] - 1.0) ** 2,
    ...                          lambda z: jnp.array([z[0] ** 2 - z[1] ** 2]), [2.0, 0.5])
    >>> check.success, bool(check.drift[0] < 1e-10)
    (True, True)
    """
    flow = gradient_flow(f, x0, t1, n_save=n_save, rtol=rtol, atol=atol, max_steps=max_steps,
                         solver=solver, dt=dt)
    values = np.asarray(jax.vmap(lambda y: jnp.atleast_1d(quantities(flow.unravel(y))))(
        jnp.asarray(flow.points)))
    return ConservationCheck(np.max(np.abs(values - values[0]), axis=0), flow)
