"""The cost of ``compare`` on two trained networks against the evaluations it spends.

Two tanh MLPs 64-64-10 (4810 parameters) on scikit-learn's digits, trained from two
seeds (full-batch Adam, as in ``bench_networks.py``), as :class:`flatminima.DatasetLoss`
over 7 uneven batches. ``compare(f, x, y)`` reports the evaluations of f with its
gradient (``n_evals``) and the Hessian-vector products (``n_hvp``) it spent; each is
timed alone (one jitted ``value_and_grad`` of the same objective, one jitted HVP, best
of 20), and the ratio

    seconds of compare / (n_evals * t_value_and_grad + n_hvp * t_hvp)

is printed (target: at most 1.5), for the first call (compilation included) and for a
second call on the same objective (compiled code reused), and for a second call on a new
objective over the same arrays (compiled code keyed on code and shapes: reused too).

Run: ``python benchmarks/bench_compare.py``.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp

import flatminima as fm
from _timing import timed
from bench_networks import BATCH, SIZES, batches, digits, loss, trained


def main() -> None:
    X, y = digits()
    print(f"digits {X.shape}, batches of {BATCH} (7 uneven), float64; jax {jax.__version__}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    px, py = trained(SIZES["5e3"], X, y, seed=0), trained(SIZES["5e3"], X, y, seed=1)
    f = fm.DatasetLoss(loss, batches(X, y), px)
    x, v = f.point(), jnp.ones(f.n)
    vg = jax.jit(jax.value_and_grad(f))
    t_vg, _ = timed(lambda: jax.block_until_ready(vg(x)), repeat=20)
    t_hvp, _ = timed(lambda: jax.block_until_ready(f.hvp(x, v)), repeat=20)
    print(f"n = {f.n}: one value_and_grad {t_vg * 1e3:.2f} ms, one HVP {t_hvp * 1e3:.2f} ms")
    print(f"{'call':28s} {'seconds':>8s} {'n_evals':>8s} {'n_hvp':>6s} {'alone (s)':>10s} "
          f"{'ratio':>6s}  verdict")
    calls = (("first (compiles)", f), ("second, same objective", f),
             ("new objective, same arrays", fm.DatasetLoss(loss, batches(X, y), px)))
    for label, obj in calls:
        t0 = time.perf_counter()
        c = fm.compare(obj, px, py)
        t = time.perf_counter() - t0
        alone = c.n_evals * t_vg + c.n_hvp * t_hvp
        print(f"{label:28s} {t:8.2f} {c.n_evals:8d} {c.n_hvp:6d} {alone:10.2f} "
              f"{t / alone:6.2f}  {c.verdict}")
    print("target: ratio <= 1.5 once compiled; "
          f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
