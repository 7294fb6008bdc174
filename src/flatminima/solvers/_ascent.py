"""Multi-start projected gradient ascent on a ball, for general smooth (or merely
continuous, almost everywhere differentiable) objectives.

Each start is updated by ``z <- P(z + s g)`` (``P`` the projection onto the ball in
``z = (y - x) / w`` coordinates) with a per-start step ``s``: after an improving move the
Barzilai-Borwein step ``|<dz, dz> / <dz, dg>|`` (kept within ``[s/2, 4s]``), after a
rejected one ``s/2``. Only improving moves are accepted, so every iterate is feasible
and increases ``f``. All starts run together (``vmap``) inside one compiled loop.
Phase one explores from every start; phase two continues the best one to a stationary
point (projected-gradient measure below ``tol``), which makes the value accurate to
near machine precision at a local maximum. The returned value is ``f`` at a feasible
point: a lower bound on the maximal variation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .._hessian import NonFiniteDerivative, rough_top_eigenvectors
from .._norms import Norm, base_norm, feasible_point, project_z
from .._objective import Array, Objective
from .._results import VariationResult

EPS = np.finfo(float).eps


@partial(jax.jit, static_argnames=("kind", "max_iter"))
def _ascend(fun, kind, x, scale, z, step, radius, tol, max_iter):
    """Run the ascent from the rows of ``z``; returns final state and statistics."""
    vg = jax.vmap(jax.value_and_grad(lambda zz: fun(x + scale * zz)))
    val, grad = vg(z)
    bad0 = ~jnp.isfinite(val)
    val = jnp.where(bad0, -jnp.inf, val)
    # a NaN gradient (autodiff at a non-differentiable point) stops that start where it is
    nograd0 = ~jnp.all(jnp.isfinite(grad), axis=-1)
    grad = jnp.where(nograd0[:, None], 0.0, grad)
    # a NaN step means "not chosen yet": the first step moves by the radius
    gnorm = jnp.linalg.norm(grad, axis=-1)
    step = jnp.where(jnp.isnan(step), radius / jnp.maximum(gnorm, 1e-300), step)

    def stationary(z, val, grad):
        gz = jnp.linalg.norm(grad, axis=-1)
        tau = radius / jnp.where(gz > 0, gz, 1.0)
        moved = project_z(kind, z + tau[:, None] * grad, radius) - z
        measure = jnp.linalg.norm(moved, axis=-1) / radius
        flat = gz * radius <= 1e2 * EPS * (1.0 + jnp.abs(val))
        return (measure <= tol) | flat

    def cond(state):
        _, _, _, _, it, done, _ = state
        return (it < max_iter) & ~jnp.all(done)

    def body(state):
        z, val, grad, step, it, done, bad = state
        cand = project_z(kind, z + step[:, None] * grad, radius)
        cval, cgrad = vg(cand)
        finite = jnp.isfinite(cval)
        ok = finite & jnp.all(jnp.isfinite(cgrad), axis=-1) & (cval > val) & ~done
        # after an accepted move, a Barzilai-Borwein step |<s, s> / <s, y>| (s the move, y
        # the change of gradient), kept within [step / 2, 4 step]; after a rejection, halve
        s_move = cand - z
        y_grad = cgrad - grad
        sy = jnp.abs(jnp.sum(s_move * y_grad, axis=-1))
        ss = jnp.sum(s_move * s_move, axis=-1)
        bb = jnp.where(sy > 0, ss / jnp.where(sy > 0, sy, 1.0), 4.0 * step)
        z = jnp.where(ok[:, None], cand, z)
        val = jnp.where(ok, cval, val)
        grad = jnp.where(ok[:, None], cgrad, grad)
        step = jnp.where(ok, jnp.clip(bb, 0.5 * step, 4.0 * step), 0.5 * step)
        stalled = step * jnp.linalg.norm(grad, axis=-1) <= EPS * radius
        done = done | stationary(z, val, grad) | stalled
        return z, val, grad, step, it + 1, done, bad | ~finite

    done0 = stationary(z, val, grad) | bad0 | nograd0
    state = (z, val, grad, step, 0, done0, bad0)
    z, val, grad, step, it, done, bad = jax.lax.while_loop(cond, body, state)
    return z, val, step, it, done, jnp.any(bad)


@dataclass(frozen=True)
class ProjectedAscent:
    """Multi-start projected gradient ascent (see the module docstring).

    Starts, all on the sphere of the ball: ``+-`` the top ``n_eig`` Hessian eigenvectors
    at ``x`` (dense Hessian for small ``n``, Lanczos otherwise), the dual-norm ascent
    direction of the gradient, and ``n_random`` random directions drawn with ``seed``.

    Args:
        n_random: number of random starts.
        n_eig: number of top Hessian eigenvectors used as starts (0 to skip the Hessian).
        explore_iter: iterations run from every start.
        max_iter: iterations for the best ``n_refine`` starts after exploration.
        n_refine: number of starts continued to convergence.
        tol: stationarity tolerance, ``||P(z + tau g) - z|| / r`` with ``tau = r/||g||``.
    """

    n_random: int = 4
    n_eig: int = 2
    explore_iter: int = 5
    max_iter: int = 3000
    n_refine: int = 1
    tol: float = 1e-10

    def starts(self, obj: Objective, x: Array, norm: Norm, seed: int) -> tuple[Array, int, str]:
        """Unit start directions (rows, z coordinates), the Hessian-vector products spent,
        and a note naming the starts skipped because a derivative at x is not finite."""
        n = obj.n
        dirs = []
        n_hvp = 0
        skipped = []
        use_hessian = self.n_eig > 0 and (obj.is_jax or n <= 50)
        if use_hessian:
            try:
                vecs, n_hvp = rough_top_eigenvectors(obj, x, min(self.n_eig, n), seed=seed)
            except (np.linalg.LinAlgError, NonFiniteDerivative):  # a NaN Hessian
                vecs, n_hvp = np.full((1, n), np.nan), 0
            if not np.all(np.isfinite(vecs)):
                skipped.append("Hessian")
            for v in vecs[np.all(np.isfinite(vecs), axis=1)]:
                # eigenvectors are for the Euclidean geometry; map into z coordinates
                vz = np.asarray(norm.to_z(jnp.asarray(v)))
                dirs += [vz, -vz]
        g = np.asarray(jax.grad(obj.fun)(x))
        if not np.all(np.isfinite(g)):
            skipped.append("gradient")
        else:
            gdir = np.asarray(norm.ascent_direction(jnp.asarray(g)))
            if np.any(gdir != 0):
                dirs.append(gdir)
        rng = np.random.default_rng(seed)
        for _ in range(self.n_random):
            dirs.append(rng.standard_normal(n))
        D = np.stack(dirs)
        lengths = np.asarray(base_norm(norm.kind, jnp.asarray(D)))
        D = D[lengths > 0] / lengths[lengths > 0, None]
        note = ""
        if skipped:
            note = (f"; the {' and '.join(skipped)} of f at x is NaN or infinite (autodiff "
                    f"through an operation not differentiable there, such as "
                    f"jnp.linalg.norm or jnp.sqrt at 0), so the starts built from it were "
                    f"skipped")
        return jnp.asarray(D), n_hvp, note

    def solve(self, obj: Objective, x: Array, radius: float, norm: Norm, seed: int = 0, *,
              extra_starts: np.ndarray | None = None):
        """Run the ascent; ``extra_starts`` (rows, points ``z = (y - x) / w`` of the ball)
        are added to the usual starts."""
        f0 = float(obj.fun(x))
        scale = jnp.ones(obj.n) if norm.scale is None else norm.scale
        D, n_hvp, note = self.starts(obj, x, norm, seed)
        z0 = radius * D
        if extra_starts is not None:
            z0 = jnp.concatenate([z0, project_z(norm.kind, jnp.asarray(extra_starts), radius)])
        k = z0.shape[0]
        step0 = jnp.full(k, jnp.nan)
        z, val, step, it1, _, bad1 = _ascend(
            obj.fun, norm.kind, x, scale, z0, step0, radius, self.tol, self.explore_iter
        )
        n_evals = 1 + k + k * int(it1)
        order = np.argsort(-np.asarray(val))[: self.n_refine]
        z, val, step, it2, done, bad2 = _ascend(
            obj.fun, norm.kind, x, scale, z[order], step[order], radius, self.tol, self.max_iter
        )
        n_evals += len(order) * (1 + int(it2))
        best = int(np.argmax(np.asarray(val)))
        argmax = feasible_point(norm, x, np.asarray(z[best]), radius)
        fy = float(obj.fun(jnp.asarray(argmax)))
        n_evals += 1
        nonfinite = bool(bad1) or bool(bad2) or not np.isfinite(fy)
        if not np.isfinite(fy) or fy < f0:  # x itself is feasible with variation 0
            argmax, fy = np.asarray(x), f0
        converged = bool(np.asarray(done)[best])
        message = (
            "converged to a stationary point of f on the ball"
            if converged
            else f"stopped after max_iter={self.max_iter} iterations before stationarity"
        )
        message += note
        if nonfinite:
            message += (
                "; the ball contains points where f is NaN or infinite: the value is the best"
                " finite one found and V may be larger (even infinite)"
            )
        return VariationResult(
            value=fy - f0,
            argmax=argmax,
            upper=None,
            method="projected_ascent",
            n_evals=n_evals,
            radius=radius,
            norm=norm.name,
            n_iter=int(it1) + int(it2),
            n_hvp=n_hvp,
            nonfinite=nonfinite,
            message=message + ".",
        )
