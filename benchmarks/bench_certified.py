"""Certified max_variation against the best one can do without certification.

For each problem (gallery functions of dimension 1 to 3, the narrow spike, r = 0.1 unless
stated) the certified solver runs to a relative gap of 1e-6 and of 1e-9 (time, boxes
split, proven interval); next to it, two uncertified methods, measured in the same run:

* dense grid plus local polish: a grid of the ball (about 4e4 points in 2D, 60 per axis
  in 3D, plus the sphere), then SLSQP from the 5 best grid points;
* ``scipy.optimize.shgo`` with the ball constraint (sobol sampling, 256 points).

They prove nothing: their error is measured against the certified interval (``err`` is
``(certified lower bound - their value) / V``; negative means they found a value inside
the proven interval). A time for them is a time to a value, never to a proven gap.
The certified runs skip the compiled ascent (``ascent=False``) and follow one warm-up
call, so that times do not include JAX tracing and compilation. ``ratio``: certified time
(gap 1e-6) / grid+polish time.

Run: ``python benchmarks/bench_certified.py``
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import minimize, shgo

import flatminima as fm
from flatminima import examples as ex
from flatminima.solvers import Certified

jax.config.update("jax_enable_x64", True)


def spike(y):
    bump = jnp.exp(-((y[0] - 0.3) ** 2 + (y[1] + 0.2) ** 2) / 1e-4)
    return y[0] ** 2 + y[1] ** 2 + 3.0 * bump


PROBLEMS = [
    ("figure1 (1,0)", ex.figure1, [1.0, 0.0], 0.1),
    ("figure1 (0,0)", ex.figure1, [0.0, 0.0], 0.1),
    ("quadratic_bowl", ex.quadratic_bowl, [0.0, 0.0], 0.1),
    ("separable_sum", ex.separable_sum, [0.0, 0.0], 0.1),
    ("pointwise_max", ex.pointwise_max, [0.0, 0.0], 0.1),
    ("abs_plus_square", ex.abs_plus_square, [0.0, 0.0], 0.1),
    ("pw_linear_valley (1,0)", ex.piecewise_linear_valley, [1.0, 0.0], 0.1),
    ("product_square (0,0)", ex.product_square, [0.0, 0.0], 0.1),
    ("product_square (1,0)", ex.product_square, [1.0, 0.0], 0.1),
    ("double_well (-1)", ex.double_well, [-1.0], 0.1),
    ("rotated quartic n=3", ex._rotated_invariant()[0], [0.3, 0.1, -0.2], 0.1),
    ("narrow spike r=1", spike, [0.0, 0.0], 1.0),
]


def grid_polish(f, x, r):
    t0 = time.perf_counter()
    n = x.size
    k = {1: 40001, 2: 201, 3: 60}[n]
    axes = np.meshgrid(*[np.linspace(-r, r, k)] * n)
    pts = np.stack([a.ravel() for a in axes], axis=1)
    pts = pts[np.sum(pts**2, axis=1) <= r**2]
    if n == 2:
        th = np.linspace(0, 2 * np.pi, 4000, endpoint=False)
        pts = np.concatenate([pts, r * np.stack([np.cos(th), np.sin(th)], axis=1)])
    fun = jax.jit(f)
    vals = np.asarray(jax.vmap(fun)(jnp.asarray(pts + x)))
    grad = jax.jit(jax.grad(f))
    cons = {"type": "ineq", "fun": lambda y: r**2 - np.sum((y - x) ** 2), "jac": lambda y: -2 * (y - x)}
    best = float(np.max(vals))
    for i in np.argsort(-vals)[:5]:
        res = minimize(lambda y: -float(fun(y)), pts[i] + x, jac=lambda y: -np.asarray(grad(y)),
                       method="SLSQP", constraints=[cons], options={"ftol": 1e-15, "maxiter": 200})
        if np.sum((res.x - x) ** 2) <= r**2:
            best = max(best, float(fun(res.x)))
    return best - float(fun(x)), time.perf_counter() - t0


def shgo_value(f, x, r):
    t0 = time.perf_counter()
    fun = jax.jit(f)
    cons = {"type": "ineq", "fun": lambda y: r**2 - np.sum((y - x) ** 2)}
    res = shgo(lambda y: -float(fun(y)), [(xi - r, xi + r) for xi in x], constraints=cons,
               n=256, sampling_method="sobol")
    return -float(res.fun) - float(fun(x)), time.perf_counter() - t0


def main():
    print(f"{'problem':24s} {'cert 1e-6 s':>11s} {'cert 1e-9 s':>11s} {'boxes':>6s} "
          f"{'proven V in':>36s} {'grid+polish s':>13s} {'err':>9s} {'shgo s':>7s} {'err':>9s} "
          f"{'ratio':>6s}")
    for name, f, x, r in PROBLEMS:
        x = np.asarray(x, dtype=float)
        fm.max_variation(f, x, r, solver=Certified(ascent=False, max_boxes=1))  # warm-up
        t0 = time.perf_counter()
        fm.max_variation(f, x, r, solver=Certified(ascent=False, rtol=1e-6))
        t6 = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = fm.max_variation(f, x, r, solver=Certified(ascent=False, rtol=1e-9))
        t9 = time.perf_counter() - t0
        gv, gt = grid_polish(f, x, r)
        sv, st = shgo_value(f, x, r)
        err = lambda v, low=res.value: (low - v) / low
        print(f"{name:24s} {t6:11.2f} {t9:11.2f} {res.n_iter:6d} "
              f"[{res.value:.12g}, {res.upper:.12g}] {gt:13.2f} {err(gv):9.1e} {st:7.2f} "
              f"{err(sv):9.1e} {t6 / gt:6.2f}")


if __name__ == "__main__":
    main()
