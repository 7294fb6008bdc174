"""Structured matrix-factorization routines against the dense alternatives, same run.

* ``hessian_eigmax``: Lanczos on structured Hessian-vector products vs the dense Hessian
  (``jax.hessian`` + ``eigvalsh``), where the dense one fits in memory.
* ``balance`` (exact): QR of X and Y plus a k-by-k SVD vs the SVD of the full m-by-n
  product ``X Y'``.

Run: ``python benchmarks/bench_factorization.py``
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from _timing import timed
from flatminima._study import test_matrix
from flatminima.factorization import MatrixFactorization


def dense_eigmax(mf, X, Y):
    m, k = X.shape
    f = lambda v: mf.objective({"X": v[: m * k].reshape(m, k), "Y": v[m * k:].reshape(-1, k)})
    H = jax.jit(jax.hessian(f))(jnp.concatenate([jnp.ravel(X), jnp.ravel(Y)]))
    return float(np.linalg.eigvalsh(np.asarray(H))[-1])


def dense_balance(X, Y):
    U, s, Vt = np.linalg.svd(X @ Y.T, full_matrices=False)
    k = X.shape[1]
    return U[:, :k] * np.sqrt(s[:k]), Vt[:k].T * np.sqrt(s[:k])


def main():
    print(f"{'m':>5s} {'n':>5s} {'k':>3s} {'params':>7s} {'eigmax (ours)':>14s} {'t ours':>8s} "
          f"{'t dense':>8s} {'ratio':>7s} {'balance':>8s} {'t dense':>8s} {'ratio':>7s} {'rel err':>9s}")
    for m, n, k in ((30, 20, 3), (60, 50, 5), (200, 150, 10), (1000, 1000, 20)):
        mf = MatrixFactorization(test_matrix(m, n, k), k)
        X, Y = mf.global_minimizer(np.diag(np.linspace(0.5, 2.0, k)))
        t_ours, lam = timed(lambda mf=mf, X=X, Y=Y: mf.hessian_eigmax(X, Y), repeat=3)
        params = (m + n) * k
        if params <= 4000:
            t_dense, lam_dense = timed(lambda mf=mf, X=X, Y=Y: dense_eigmax(mf, X, Y), repeat=1)
            err = abs(lam - lam_dense) / lam_dense
            dense_txt, ratio_txt = f"{t_dense:8.3f}", f"{t_dense / t_ours:7.1f}"
        else:
            closed = mf.hessian_eigmax_closed_form(X, Y)
            dense_txt, ratio_txt, err = "   (n/a)", "    n/a", abs(lam - closed) / lam
        t_bal, _ = timed(lambda mf=mf, X=X, Y=Y: mf.balance(X, Y, method="exact"), repeat=3)
        t_dbal, _ = timed(lambda X=X, Y=Y: dense_balance(X, Y), repeat=3)
        print(f"{m:5d} {n:5d} {k:3d} {params:7d} {lam:14.10g} {t_ours:8.3f} {dense_txt} {ratio_txt} "
              f"{t_bal:8.4f} {t_dbal:8.4f} {t_dbal / t_bal:7.1f} {err:9.1e}")
    print("ratio = dense time / structured time (higher is better); rel err of eigmax vs the "
          "dense value, or vs the closed form sigma_1(X)^2 + sigma_1(Y)^2 where dense does not fit.")


if __name__ == "__main__":
    main()
