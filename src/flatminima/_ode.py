"""Integration of flows ``y' = F(y)`` with diffrax, shared by the gradient flow, the
flattening flow and the balancing flows: solver choice (explicit, implicit fallback for
stiff flows, fixed steps), the steady-state stop, and a result that says how the run ended.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from ._report import result_type
from ._warn import warn
from ._x64 import float64_methods

SOLVERS = {"tsit5": diffrax.Tsit5, "kvaerno5": diffrax.Kvaerno5, "euler": diffrax.Euler}


class TreePoints:
    """``tree_points`` and ``point(i)``: the rows of ``points`` (flat coordinates) in the
    structure of the start point the user passed (array or pytree)."""

    points: np.ndarray
    unravel: Callable

    @property
    def tree_points(self) -> Any:
        """The points as the user's structure, each leaf with a leading axis of length
        ``len(points)``."""
        return jax.tree_util.tree_map(np.asarray, jax.vmap(self.unravel)(jnp.asarray(self.points)))

    def point(self, i: int) -> Any:
        """Point ``i`` (row ``i`` of ``points``) in the user's structure."""
        return jax.tree_util.tree_map(np.asarray, self.unravel(jnp.asarray(self.points[i])))


@float64_methods()
@result_type()
@dataclass(frozen=True)
class FlowTrajectory(TreePoints):
    """Solution of a flow ``y' = F(y)`` (the gradient flow ``F = -grad f``, or the
    flattening flow ``F = -grad phi``) at ``times``.

    ``points`` has shape ``(k + 1, n)`` (flat coordinates, one row per time in
    ``times``); ``tree_points`` holds the same points in the structure of the start point
    (each leaf with a leading time axis of length ``k + 1``); ``point(i)`` is row ``i``
    and ``at(t)`` the solution at any time ``t`` in ``[0, t_final]``, both in the user's
    structure. ``values`` are f at the points; ``max_increase`` is the largest rise of f
    between saved times.

    How the run ended: ``status`` is ``"t1"`` (integrated to the final time),
    ``"steady_state"`` (stopped because the vector field vanished, see
    :func:`flatminima.flows.gradient_flow`), or a failure: ``"max_steps"`` (the step
    limit), ``"discontinuous"`` (the adaptive steps stalled on a jump of the vector field,
    a kink of f) or ``"non_finite"`` (NaN or inf in the vector field or f). A failed run
    keeps the points up to ``t_final``, the last time reached; nothing is padded.
    ``success``: no failure; ``converged``: ``status == "steady_state"``; ``reason`` says
    the same in words, with the fix when the run failed; ``solver`` names the solver that
    produced the points (``"Kvaerno5 (implicit, after Tsit5 ...)"`` when the automatic
    choice fell back); ``n_steps`` its number of steps.
    """

    times: np.ndarray
    points: np.ndarray
    values: np.ndarray
    max_increase: float
    status: str
    reason: str
    t_final: float
    n_steps: int
    solver: str
    unravel: Callable = field(repr=False)
    resume: Callable = field(repr=False)

    @property
    def success(self) -> bool:
        return self.status in ("t1", "steady_state")

    @property
    def converged(self) -> bool:
        return self.status == "steady_state"

    def at(self, t: float) -> Any:
        """The solution at time ``t``, integrated with the same solver from the latest
        saved time ``<= t``."""
        t = float(t)
        if not 0.0 <= t <= self.t_final:
            raise ValueError(f"t = {t:g} is outside the solved interval [0, {self.t_final:g}].")
        i = int(np.searchsorted(self.times, t, side="right")) - 1
        y = self.points[i] if self.times[i] == t else self.resume(self.times[i], self.points[i], t)
        return jax.tree_util.tree_map(np.asarray, self.unravel(jnp.asarray(y)))


def check_solver(solver: Any, dt: Any) -> tuple[Any, float | None]:
    """Validate ``solver`` and ``dt`` at the public boundary."""
    if dt is not None:
        dt = float(dt)
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt = {dt} must be a positive finite step size.")
    if isinstance(solver, str):
        key = solver.lower()
        if key != "auto" and key not in SOLVERS:
            raise ValueError(f"solver must be 'auto', {', '.join(map(repr, SOLVERS))} or a "
                             f"diffrax solver instance; got {solver!r}.")
        if key == "euler" and dt is None:
            raise ValueError("solver='euler' takes fixed steps: pass dt= (the step size).")
        return key, dt
    if not isinstance(solver, diffrax.AbstractSolver):
        raise TypeError(f"solver must be a name or a diffrax solver, got {type(solver).__name__}.")
    if dt is None and not isinstance(solver, diffrax.AbstractAdaptiveSolver):
        raise ValueError(f"{type(solver).__name__} has no error estimate for adaptive steps: "
                         "pass dt= for fixed steps.")
    return solver, dt


@dataclass(frozen=True)
class GradientField:
    """The vector field ``y -> -grad fun(y)``. Fields and events are frozen dataclasses
    that compare by value, so a second flow of the same objective reuses the compiled
    solver."""

    fun: Callable

    def __call__(self, y: jax.Array) -> jax.Array:
        return -jax.grad(self.fun)(y)


@dataclass(frozen=True)
class _Term:
    field: Callable

    def __call__(self, t, y, args):
        return self.field(y)


@dataclass(frozen=True)
class _SteadyState:
    """Event: ``||F(y)||^2 / ||J F(y)|| <= tol ||y|| + atol``, ``J`` the Jacobian of F.

    The left side estimates the distance still to travel: for a linear flow
    ``F = -A (y - y*)`` it is the distance along an eigenvector of A, and a flow that has
    converged for a while moves along its slowest mode. It does not depend on how f is
    scaled, and at the rounding floor (``F`` pure noise) it is of the order of rounding.
    """

    field: Callable
    tol: float
    atol: float

    def __call__(self, t, y, args, **kwargs):
        F, JF = jax.jvp(self.field, (y,), (self.field(y),))
        return jnp.sum(F**2) <= (self.tol * jnp.linalg.norm(y) + self.atol) * jnp.linalg.norm(JF)


def integrate(field: Callable, fun: Callable, y0: jax.Array, t1: float, *, unravel: Callable,
              n_save: int = 200, rtol: float = 1e-10, atol: float = 1e-12,
              max_steps: int = 100_000, solver: Any = "auto", dt: float | None = None,
              steady_state: float | None = None, name: str = "flow") -> FlowTrajectory:
    """Integrate ``y' = field(y)`` from ``y0`` (flat) on ``[0, t1]``, or until the
    steady-state event when ``steady_state`` is a tolerance. ``fun`` gives ``values``.

    Saves: ``n_save`` equally spaced times on ``[0, t_final]``; when the event stops the
    run before ``t1`` it is integrated again on ``[0, t_final]`` (the same steps, the same
    compiled code) to save there. ``solver="auto"``: Tsit5, and Kvaerno5 (implicit, for
    stiff flows) when Tsit5 runs out of steps with a finite, continuous vector field. A
    failure, or a steady state asked for and not reached by ``t1``, warns
    (RuntimeWarning).
    """
    if not bool(jnp.all(jnp.isfinite(field(y0)))):
        raise ValueError(f"the vector field of the {name} is NaN or infinite at the start: f "
                         "(or the potential) is not differentiable there (a NaN from autodiff, "
                         "e.g. norm or sqrt at 0); write it differentiably (sum(y**2) for "
                         "norm(y)**2, sqrt(x + eps)) or start elsewhere.")
    term = diffrax.ODETerm(_Term(field))
    event = None if steady_state is None else diffrax.Event(_SteadyState(field, steady_state, atol))

    def first_step(t0, t_end, y):
        # the time to move 1e-6 of the scale of y at its speed (diffrax's own guess can
        # overshoot a fast cubic flow into overflow and then reject every step)
        if dt is not None:
            return jnp.asarray(dt)
        speed = float(jnp.linalg.norm(field(y)))
        scale = max(float(jnp.linalg.norm(y)), 1.0)
        h = 1e-6 * (t_end - t0)
        return jnp.asarray(min(1e-6 * scale / speed, h) if speed > 0 else h)

    def controller(method):
        if dt is not None:
            return diffrax.ConstantStepSize()
        if isinstance(method, diffrax.AbstractImplicitSolver):  # damped PID for stiff flows
            return diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=0.3, icoeff=0.3)
        return diffrax.PIDController(rtol=rtol, atol=atol)

    dt0 = first_step(0.0, t1, y0)

    def run(method, t_end):
        return diffrax.diffeqsolve(
            term, method, jnp.asarray(0.0), jnp.asarray(t_end), dt0, y0,
            saveat=diffrax.SaveAt(ts=jnp.linspace(0.0, t_end, n_save), t1=True),
            stepsize_controller=controller(method), event=event, max_steps=max_steps,
            throw=False)

    def solve(method):
        sol = run(method, t1)
        status, t_final = _status(sol, field)
        if status == "steady_state" and t_final < t1:
            sol = run(method, t_final)  # save on [0, t_final]: the same steps, replayed
        return sol, status, t_final

    method = SOLVERS["tsit5"]() if solver == "auto" else (
        SOLVERS[solver]() if isinstance(solver, str) else solver)
    sol, status, t_final = solve(method)
    label = type(method).__name__
    if solver == "auto" and status == "max_steps":
        implicit = SOLVERS["kvaerno5"]()
        sol2, status2, t_final2 = solve(implicit)
        if status2 in ("t1", "steady_state") or t_final2 > t_final:
            label = f"Kvaerno5 (implicit, after {label} stopped at t = {t_final:.6g})"
            sol, status, t_final, method = sol2, status2, t_final2, implicit
        else:
            label = f"{label} (Kvaerno5 also stopped, at t = {t_final2:.6g})"
    times, points = _trim(sol)
    t_final = float(times[-1])
    values = np.asarray(jax.vmap(fun)(jnp.asarray(points)))
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:  # f is NaN or inf from times[bad[0]] on: keep the points before
        status, k = "non_finite", max(int(bad[0]), 1)
        times, points, values = times[:k], points[:k], values[:k]
        t_final = float(times[-1])
    reason = _reason(status, name, t_final, t1, max_steps, dt, steady_state, label)
    if status not in ("t1", "steady_state") or (steady_state is not None and status == "t1"):
        warn(reason, RuntimeWarning)

    def resume(t0, y, t):
        y = jnp.asarray(y)
        out = diffrax.diffeqsolve(term, method, jnp.asarray(t0), jnp.asarray(t),
                                  first_step(t0, t, y), y, saveat=diffrax.SaveAt(t1=True),
                                  stepsize_controller=controller(method), max_steps=max_steps)
        return np.asarray(out.ys[-1])

    return FlowTrajectory(times, points, values, float(np.max(np.diff(values), initial=0.0)),
                          status, reason, t_final, int(sol.stats["num_steps"]), label,
                          unravel, resume)


def _status(sol, field_fn) -> tuple[str, float]:
    ts = np.asarray(sol.ts)
    last = int(np.flatnonzero(np.isfinite(ts))[-1])
    t_final = float(ts[last])
    if sol.result == diffrax.RESULTS.successful:
        return "t1", t_final
    if sol.result == diffrax.RESULTS.event_occurred:
        return "steady_state", t_final
    y = jnp.asarray(sol.ys)[last]
    if not bool(jnp.all(jnp.isfinite(field_fn(y)))):
        return "non_finite", t_final
    return ("discontinuous" if _jumps(field_fn, y) else "max_steps"), t_final


def _jumps(field_fn, y) -> bool:
    """Whether ``F`` jumps at ``y`` along its own direction ``u``: it changes as much over
    ``1e-9`` as over ``1e-6`` of the scale of ``y`` (a smooth field changes 1000 times
    less), so ``y`` sits on a kink of f. Where an adaptive solver stalls on such a kink,
    implicit steps do not help either."""
    F = field_fn(y)
    norm = float(jnp.linalg.norm(F))
    if norm == 0.0:
        return False
    u, scale = F / norm, max(float(jnp.linalg.norm(y)), 1.0)
    near = float(jnp.linalg.norm(field_fn(y + 1e-9 * scale * u) - F))
    far = float(jnp.linalg.norm(field_fn(y + 1e-6 * scale * u) - F))
    return near > 0.1 * far and near > 1e-6 * norm


def _trim(sol) -> tuple[np.ndarray, np.ndarray]:
    """Drop the saves diffrax pads with inf past the last time reached; the final state
    (the ``t1`` save) closes the list, once."""
    ts, ys = np.asarray(sol.ts), np.asarray(sol.ys)
    keep = np.isfinite(ts)
    ts, ys = ts[keep], ys[keep]
    if ts.size >= 2 and ts[-1] == ts[-2]:
        ts, ys = ts[:-1], ys[:-1]
    return ts, ys


def _reason(status, name, t_final, t1, max_steps, dt, steady_state, label) -> str:
    if status == "steady_state":
        return (f"{name} stopped at a steady state at t = {t_final:.6g} (the vector field "
                f"vanished to tolerance {steady_state:g}); solver {label}.")
    if status == "t1" and steady_state is None:
        return f"{name} integrated to t1 = {t1:g}; solver {label}."
    if status == "t1":
        return (f"{name} reached t1 = {t1:g} before a steady state (the vector field had not "
                f"vanished to tolerance {steady_state:g}); raise t1 to let it converge.")
    if status == "non_finite":
        return (f"{name} stopped at t = {t_final:.6g}: f or its gradient is NaN or infinite "
                "just past there (a NaN from autodiff, where f is not differentiable, e.g. sqrt or norm "
                "at 0, or an overflow). The points up to there are returned; make f "
                "differentiable along the path (e.g. sqrt(x + eps)) or start elsewhere.")
    if status == "discontinuous":
        return (f"{name} stopped at t = {t_final:.6g} of t1 = {t1:g}: the vector field jumps "
                f"there (f has a kink, as a ReLU, abs or max makes), and adaptive steps "
                f"(solver {label}) shrink without passing it. Use a fixed-step solver: "
                f"solver='euler' with dt= (e.g. dt = {t1 / 1e4:.1e}).")
    if dt is not None:
        return (f"{name} used max_steps = {max_steps} fixed steps and reached t = {t_final:.6g}"
                f" of t1 = {t1:g}; t1 / dt = {math.ceil(t1 / dt)} steps are needed: raise "
                "max_steps or dt.")
    return (f"{name} stopped at t = {t_final:.6g} of t1 = {t1:g}: solver {label} used "
            f"max_steps = {max_steps} steps. Raise max_steps; if f is not smooth (ReLU, "
            "abs, max), use a fixed-step solver: solver='euler' with dt= (e.g. dt = "
            f"{t1 / 1e4:.1e}).")
