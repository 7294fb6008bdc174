"""The matrix-factorization study behind ``flatminima factorization``."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ._order import compare  # noqa: E402
from .factorization import MatrixFactorization  # noqa: E402
from .flows import gradient_descent  # noqa: E402


def test_matrix(m: int, n: int, rank: int, seed: int = 0) -> np.ndarray:
    """``U diag(s) V'`` with random orthonormal U, V and ``s`` from 10 down to 1."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((m, rank)))
    V, _ = np.linalg.qr(rng.standard_normal((n, rank)))
    return (U * np.geomspace(10.0, 1.0, rank)) @ V.T


def run_study(m: int, n: int, rank: int, out: Path, *, radius: float = 1e-2, gd_steps: int = 10000,
              progress=None, seed: int = 0) -> dict:
    """Minimizers along the symmetry orbit, a flattening flow, and gradient descent from
    small and large initializations; writes ``factorization.png`` and ``.json``."""
    tick = progress or (lambda label: None)
    out.mkdir(parents=True, exist_ok=True)
    M = test_matrix(m, n, rank, seed)
    mf = MatrixFactorization(M, rank)
    rng = np.random.default_rng(seed + 1)
    Q1, _ = np.linalg.qr(rng.standard_normal((rank, rank)))
    z = rng.standard_normal(rank)
    z -= z.mean()
    orbit = []
    Xb, Yb = mf.global_minimizer()
    for beta in np.linspace(0.0, 1.2, 9):
        tick(f"orbit point beta={beta:.2f}")
        X, Y = mf.global_minimizer(Q1 @ np.diag(np.exp(beta * z)) @ Q1.T)
        orbit.append({"beta": float(beta), "imbalance": mf.imbalance(X, Y),
                      "V": mf.max_variation(X, Y, radius).value,
                      "eigmax": mf.hessian_eigmax_closed_form(X, Y),
                      "trace": mf.hessian_trace(X, Y)})
    # the trace-flat minimizer: G = c I with c^4 = m / n (n X'X = m Y'Y)
    c = (m / n) ** 0.25
    Xt, Yt = mf.global_minimizer(c * np.eye(rank))
    tick("comparing balanced and trace-flat minimizers")
    special = {}
    for name, (X, Y) in {"balanced": (Xb, Yb), "trace_flat": (Xt, Yt)}.items():
        special[name] = {"imbalance": mf.imbalance(X, Y), "eigmax": mf.hessian_eigmax_closed_form(X, Y),
                         "trace": mf.hessian_trace(X, Y), "V": mf.max_variation(X, Y, radius).value}
    special["trace_flat"]["vs_balanced"] = compare(mf.objective, mf.point(Xt, Yt),
                                                   mf.point(Xb, Yb)).verdict
    # flattening flow from the most unbalanced orbit point
    tick("flattening flow")
    Xu, Yu = mf.global_minimizer(Q1 @ np.diag(np.exp(1.2 * z)) @ Q1.T)
    ts, Xs, Ys = mf.balance_path(Xu, Yu, 10.0, n_save=60)
    flow_imb = [mf.imbalance(a, b) for a, b in zip(Xs, Ys)]
    flow_loss = [mf.loss(a, b) for a, b in zip(Xs, Ys)]
    idx = np.unique(np.linspace(0, len(ts) - 1, 10).astype(int))
    flow_V = [mf.max_variation(Xs[i], Ys[i], radius).value for i in idx]
    flow_verdict = compare(mf.objective, mf.point(Xs[-1], Ys[-1]), mf.point(Xu, Yu)).verdict
    # gradient descent from small and large initializations
    gd = {}
    for label, scale in (("small init", 1e-3), ("large init", 0.3)):
        tick(f"gradient descent, {label}")
        X0 = scale * rng.standard_normal((m, rank))
        Y0 = scale * rng.standard_normal((n, rank))
        X0 *= 1.5  # deliberately unbalanced start
        # step 1/L with L the larger of the top Hessian eigenvalue at the start and at a
        # balanced minimizer (2 sigma_1): stable along the run
        step = 1.0 / (1.1 * max(mf.hessian_eigmax(X0, Y0), 2 * mf.s[0]))
        traj = gradient_descent(mf.objective, mf.point(X0, Y0), gd_steps, step=step)
        pts = traj.points
        Xs_gd = pts[:, : m * rank].reshape(-1, m, rank)
        Ys_gd = pts[:, m * rank:].reshape(-1, n, rank)
        sel = np.unique(np.linspace(0, len(pts) - 1, 60).astype(int))
        Xe, Ye = Xs_gd[-1], Ys_gd[-1]
        gd[label] = {"iterations": sel.tolist(),
                     "imbalance": [mf.imbalance(Xs_gd[i], Ys_gd[i]) for i in sel],
                     "loss_end": mf.loss(Xe, Ye), "min_loss": mf.min_loss(),
                     "eigmax_end": mf.hessian_eigmax(Xe, Ye),
                     "V_end": mf.max_variation(Xe, Ye, radius).value}
    tick("plotting")
    summary = {"m": m, "n": n, "rank": rank, "sigma_1": float(mf.s[0]), "radius": radius,
               "orbit": orbit, "special": special,
               "flow": {"times": ts.tolist(), "imbalance": flow_imb, "loss": flow_loss,
                        "V_times": ts[idx].tolist(), "V": flow_V, "end_vs_start": flow_verdict},
               "gradient_descent": gd}
    _plot(summary, out / "factorization.png")
    (out / "factorization.json").write_text(json.dumps(summary, indent=2))
    return summary


def _plot(s, path):
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    ax = axes[0, 0]
    imb = [o["imbalance"] for o in s["orbit"]]
    for key, label in (("V", f"max variation V(r={s['radius']:g})"), ("eigmax", "Hessian λmax"),
                       ("trace", "Hessian trace")):
        vals = np.array([o[key] for o in s["orbit"]])
        ax.plot(imb, vals / vals[0], "o-", label=label)
    tf = s["special"]["trace_flat"]
    bal = s["special"]["balanced"]
    ax.plot(tf["imbalance"], tf["trace"] / bal["trace"], "k*", ms=12, label="trace-flat point: trace")
    ax.plot(tf["imbalance"], tf["eigmax"] / bal["eigmax"], "r*", ms=12, label="trace-flat point: λmax")
    ax.set_xlabel("imbalance ||X'X - Y'Y||_F")
    ax.set_ylabel("relative to the balanced minimizer")
    ax.set_title(f"global minimizers along the orbit (m={s['m']}, n={s['n']}, k={s['rank']})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    bx = axes[0, 1]
    bx.semilogy(s["flow"]["times"], np.maximum(s["flow"]["imbalance"], 1e-16), label="imbalance")
    bx.semilogy(s["flow"]["times"], np.maximum(s["flow"]["loss"], 1e-32), label="loss (minimum 0)")
    bx.set_xlabel("time t")
    bx.set_title("flattening flow X' = -XQ, Y' = YQ from an unbalanced minimizer")
    bx.legend()
    bx.grid(alpha=0.3)
    cx = axes[1, 0]
    for label, g in s["gradient_descent"].items():
        cx.semilogy(g["iterations"], np.maximum(g["imbalance"], 1e-16), label=label)
    cx.set_xlabel("iteration")
    cx.set_ylabel("imbalance ||X'X - Y'Y||_F")
    cx.set_title("gradient descent nearly keeps the imbalance")
    cx.legend()
    cx.grid(alpha=0.3)
    dx = axes[1, 1]
    dx.plot(s["flow"]["V_times"], s["flow"]["V"], "o-")
    dx.set_xlabel("time t")
    dx.set_ylabel(f"V(y(t), r={s['radius']:g})")
    dx.set_title(f"flatness along the flattening flow (end vs start: {s['flow']['end_vs_start']})")
    dx.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
