"""Gradient methods and flows (SPEC section 11): gradient descent with step schedules,
normalized steps, gradient flow by adaptive ODE integration, and SAM."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from ._objective import as_objective, check_scalar

REASONS = {0: "completed all steps", 1: "zero gradient (a critical point was reached)",
           2: "overflow or NaN: the iterate or f became non-finite; reduce the step"}


@dataclass(frozen=True)
class Trajectory:
    """Iterates of a method. ``points`` has shape ``(k + 1, n)`` where ``k`` is the number
    of steps taken (``steps`` unless the run stopped early, see ``reason``); ``values``
    are f at the points."""

    points: np.ndarray
    values: np.ndarray
    reason: str
    steps_taken: int


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
    return Trajectory(points, values, REASONS[code], k)


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


def sam(f: Any, x0: Any, steps: int, rho: float, step: float | Callable = 1e-2) -> Trajectory:
    """Sharpness-aware minimization: ``x_{k+1} = x_k - step(k) grad f(x_k + rho u_k)``
    with ``u_k = grad f(x_k) / ||grad f(x_k)||`` (Foret et al., 2021)."""
    obj, xf = as_objective(f, x0, name="f")
    rho = check_scalar(rho, "rho")
    xs, codes = _run(obj.fun, xf, _schedule(step, int(steps)), False, True, rho)
    return _trajectory(obj, xf, xs, codes)


@dataclass(frozen=True)
class FlowTrajectory:
    """Solution of the gradient flow ``x' = -grad f(x)`` at ``times``; ``max_increase``
    is the largest rise of f between saved times (the flow's invariant: f is
    nonincreasing, so it must be at integration accuracy); ``solution`` evaluates the
    dense interpolant at any time in ``[0, t1]``."""

    times: np.ndarray
    points: np.ndarray
    values: np.ndarray
    max_increase: float
    reason: str
    n_steps: int
    solution: Any = None

    def at(self, t: float) -> np.ndarray:
        return np.asarray(self.solution.evaluate(t))


def gradient_flow(f: Any, x0: Any, t1: float, *, n_save: int = 200, rtol: float = 1e-10,
                  atol: float = 1e-12, max_steps: int = 100_000) -> FlowTrajectory:
    """Gradient flow ``x' = -grad f(x)`` on ``[0, t1]`` by adaptive Runge-Kutta
    (diffrax Tsit5 with a PID step-size controller), with dense output.

    >>> flow = gradient_flow(lambda y: 0.5 * y @ y, [1.0], 1.0)
    >>> round(float(flow.points[-1, 0]), 8)  # exp(-1)
    0.36787944
    """
    obj, xf = as_objective(f, x0, name="f")
    t1 = check_scalar(t1, "t1", positive=True)
    return _integrate(lambda t, y, args: -jax.grad(obj.fun)(y), obj.fun, xf, t1, n_save, rtol,
                      atol, max_steps)


def _integrate(vector_field, fun, y0, t1, n_save, rtol, atol, max_steps) -> FlowTrajectory:
    ts = jnp.linspace(0.0, t1, n_save)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field), diffrax.Tsit5(), t0=0.0, t1=t1, dt0=None, y0=y0,
        saveat=diffrax.SaveAt(ts=ts, dense=True),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol), max_steps=max_steps,
        throw=False)
    points = np.asarray(sol.ys)
    values = np.asarray(jax.vmap(fun)(sol.ys))
    ok = bool(sol.result == diffrax.RESULTS.successful)
    reason = "integrated to t1" if ok else f"integration stopped: {sol.result}"
    return FlowTrajectory(np.asarray(ts), points, values,
                          float(np.max(np.diff(values), initial=0.0)), reason,
                          int(sol.stats["num_steps"]), sol)


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


@dataclass(frozen=True)
class FlatteningResult:
    """The flattening flow ``y' = -grad phi(y)``, ``phi = 1/2 ||Q(y) - q*||^2``.

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


def flattening_flow(f: Any, quantities: Callable, x0: Any, *, target: Any = None,
                    t1: float = 10.0, radius: float = 1e-2, n_flatness: int = 12,
                    n_save: int = 200, rtol: float = 1e-11, atol: float = 1e-13) -> FlatteningResult:
    """Integrate the gradient flow of ``phi = 1/2 ||Q(y) - q*||^2`` (SPEC section 8).

    ``quantities`` maps a flat point to the vector of conserved quantities (for instance a
    :class:`~flatminima.symmetry.ConservedQuantities`); ``target`` is ``q*`` (default 0).
    Along the flow f stays constant (``<grad f, grad phi> = 0``); the result reports the
    drift of f, the distance of Q to its target, the maximal variation at ``radius``
    along the way (whether it decreased monotonically is measured, not assumed) and the
    verdict of :func:`compare` of the end point against the start.
    """
    from ._order import compare
    from ._variation import max_variation

    obj, xf = as_objective(f, x0, name="f")
    t1 = check_scalar(t1, "t1", positive=True)
    q0 = jnp.asarray(quantities(xf))
    qstar = jnp.zeros_like(q0) if target is None else jnp.asarray(target, dtype=float).reshape(q0.shape)
    phi = lambda y: 0.5 * jnp.sum((jnp.asarray(quantities(y)) - qstar) ** 2)
    flow = _integrate(lambda t, y, args: -jax.grad(phi)(y), obj.fun, xf, t1, n_save, rtol, atol,
                      100_000)
    f0 = float(flow.values[0])
    drift = float(np.max(np.abs(flow.values - f0)) / max(1.0, abs(f0)))
    dist = np.array([float(jnp.linalg.norm(jnp.asarray(quantities(jnp.asarray(p))) - qstar))
                     for p in flow.points])
    idx = np.unique(np.geomspace(1, n_save, n_flatness).astype(int) - 1)
    idx = np.unique(np.concatenate([[0], idx]))
    flat = np.array([max_variation(obj.fun, jnp.asarray(flow.points[i]), radius).value
                     for i in idx])
    monotone = bool(np.all(np.diff(flat) <= 1e-12 * np.max(np.abs(flat))))
    verdict = compare(obj.fun, flow.points[-1], flow.points[0]).verdict
    return FlatteningResult(flow, drift, dist, flow.times[idx], flat, radius, verdict, monotone)


def verify_conserved(f: Any, quantities: Callable, x0: Any, *, t1: float = 1.0,
                     n_save: int = 100) -> np.ndarray:
    """Integrate the gradient flow of f from ``x0`` and return, per quantity, the largest
    drift ``max_t |Q_j(x(t)) - Q_j(x0)|`` (zero for the exact flow of a conserved Q)."""
    flow = gradient_flow(f, x0, t1, n_save=n_save, rtol=1e-12, atol=1e-14)
    values = np.array([np.asarray(quantities(jnp.asarray(p))) for p in flow.points])
    return np.max(np.abs(values - values[0]), axis=0)
