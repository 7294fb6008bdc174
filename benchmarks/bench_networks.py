"""Real networks: flatness and Hessian measures of MLPs on the digits data set, against what
users run instead, measured in the same run.

Two tanh MLPs on ``sklearn.datasets.load_digits`` (1797 examples, 64 features, 10
classes), float64, trained briefly (full-batch Adam), with about 5e3 and 1e5 parameters.
Our objective is :class:`flatminima.DatasetLoss` over 7 uneven batches (6 of 257
examples and one of 255). Every figure is a ratio against its peer timed in the same run
(after one warm-up call that compiles; the best of several calls), so that the machine's
load cancels to first order.

(a) ``max_variation`` seconds per evaluation (value-and-gradient evaluations plus 2 per
    Hessian-vector product) / seconds of one jitted ``value_and_grad`` of the objective
    measured (the 7-batch loss), and of the whole-data loss in one batch (the batching's
    own cost is printed beside). Target: at most 1.3.
(b) Hessian top eigenvalue to 1e-3 relative, against a reference from ``scipy.sparse.
    linalg.eigsh`` (tol 1e-12) on exact jitted Hessian-vector products of the whole-data
    loss. Peers: PyHessian 0.1 (``hessian(model, criterion, data=...).eigenvalues(maxIter=
    100, tol=1e-3)``, construction included, as its users run it), hessian-eigenthings
    1.0.0a5 (``lanczos(HessianOperator(...), k=1, which="LA", tol=1e-3, max_iter=m)`` with
    ``m = 10, 20, 40, ...`` until it reports convergence, all attempts timed), and
    ``eigsh(tol=1e-3)`` on one jitted HVP. Targets: at most 0.5 of the faster of the two
    PyTorch tools, at most 1.5 of eigsh. Trace: ``hessian_trace(method="hutchinson")``
    with as many probes as PyHessian's ``trace(maxIter=100, tol=1e-3)`` used. Target: at
    most PyHessian's time.
(c) Worst-case sharpness ``max f(w + d) - f(w)`` on l2, linf and adaptive balls
    (``||d / (|w| + 1e-3)||_2 <= rho``), ``max_variation`` against Auto-PGD as published by
    Andriushchenko et al. (2023) (20 iterations, step 2 rho, momentum 0.75, step halving at
    the checkpoints of Croce and Hein (2020)), and Auto-PGD given the same number of
    gradient evaluations as ``max_variation`` used (checkpoints scaled). Target: our
    value at least as high (a gap of rounding size, 1e-12 relative, is a tie).
(d) Peak memory: the rise of the peak resident set (Linux ``VmHWM``, reset just before)
    during one call in a fresh process (compilation included), one process per method;
    and the same for the streamed objective (:class:`flatminima.StreamedDatasetLoss`)
    over 7, 28 and 112 batches of 257 examples (value, gradient and one HVP), which must
    stay flat.

Run: ``python benchmarks/bench_networks.py`` (needs ``pip install flatminima[bench]``).

References: F. Croce, M. Hein, Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks, ICML 2020. M. Andriushchenko et al., A modern
look at the relationship between sharpness and generalization, ICML 2023. Z. Yao et al.,
PyHessian: neural networks through the lens of the Hessian, IEEE BigData 2020.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import scipy.sparse.linalg as sla
from sklearn.datasets import load_digits

import flatminima as fm
from _timing import timed
from flatminima.solvers import ProjectedAscent

jax.config.update("jax_enable_x64", True)  # the peers below run outside flatminima's calls

SIZES = {"5e3": (64, 64, 10), "1e5": (64, 512, 128, 10)}
BATCH = 257
RADII = {"l2": 0.5, "linf": 2e-3, "adaptive": 0.05}
SOLVER = ProjectedAscent(max_iter=300)


# --- the network, in JAX and in PyTorch ---------------------------------------------------


def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y.astype(np.int64)


def loss(params, batch):
    """Mean cross-entropy of the tanh MLP ``params = [(W, b), ...]`` (``W`` of shape
    (out, in), as ``torch.nn.Linear``) over the batch ``(X, y)``."""
    h, y = batch
    for W, b in params[:-1]:
        h = jnp.tanh(h @ W.T + b)
    W, b = params[-1]
    logits = h @ W.T + b
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, y[:, None], 1)[:, 0])


def trained(sizes, X, y, steps=300, seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed), len(sizes) - 1)
    params = [(jax.random.normal(k, (o, i)) / math.sqrt(i), jnp.zeros(o))
              for k, i, o in zip(keys, sizes[:-1], sizes[1:])]
    opt = optax.adam(1e-2)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        g = jax.grad(loss)(params, (X, y))
        updates, state = opt.update(g, state)
        return optax.apply_updates(params, updates), state

    for _ in range(steps):
        params, state = step(params, state)
    return params


def twin(params):
    """The same network in PyTorch, float64, with the same weights."""
    import torch

    layers = []
    for W, b in params:
        lin = torch.nn.Linear(W.shape[1], W.shape[0]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(np.asarray(W)))
            lin.bias.copy_(torch.tensor(np.asarray(b)))
        layers += [lin, torch.nn.Tanh()]
    return torch.nn.Sequential(*layers[:-1])


def batches(X, y):
    return [(X[a:a + BATCH], y[a:a + BATCH]) for a in range(0, len(y), BATCH)]


# --- Auto-PGD (Croce and Hein 2020) as used for sharpness by Andriushchenko et al. 2023 ---


def checkpoints(n_iter: int) -> set[int]:
    """``ceil(p_j n_iter)`` with ``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} -
    0.03, 0.06)``."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return {math.ceil(q * n_iter) for q in p if q <= 1}


def auto_pgd(f, x, radius, kind, scale, n_iter=20, alpha=0.75, rho=0.75):
    """Maximize ``f(x + scale * z)`` over ``||z||_p <= radius`` (p = 2 or inf) by Auto-PGD
    from ``z = 0``: step ``eta = 2 radius``, momentum ``alpha``, and at each checkpoint the
    step is halved (and the iterate reset to the best point) when fewer than ``rho`` of the
    steps since the last checkpoint increased f, or when neither the step nor the best
    value changed since then. ``n_iter`` gradient evaluations. Returns the best increase."""
    vg = jax.jit(jax.value_and_grad(lambda z: f(x + scale * z)))
    if kind == "l2":
        direction = lambda g: g / jnp.maximum(jnp.linalg.norm(g), 1e-300)
        project = lambda z: z * jnp.minimum(1.0, radius / jnp.maximum(jnp.linalg.norm(z), 1e-300))
    else:
        direction, project = jnp.sign, lambda z: jnp.clip(z, -radius, radius)
    marks = checkpoints(n_iter)
    eta = 2.0 * radius
    z_prev = z = jnp.zeros_like(x)
    f0, g = vg(z)
    f0 = float(f0)
    f_cur, best, z_best, g_best = f0, f0, z, g
    increases, last_mark, eta_at_mark, best_at_mark = 0, 0, eta, best
    for k in range(n_iter - 1):
        step = project(z + eta * direction(g))
        z_next = step if k == 0 else project(z + alpha * (step - z) + (1 - alpha) * (z - z_prev))
        f_next, g = vg(z_next)
        f_next = float(f_next)
        increases += f_next > f_cur
        z_prev, z, f_cur = z, z_next, f_next
        if f_next > best:
            best, z_best, g_best = f_next, z_next, g
        if k + 1 in marks and k + 1 > last_mark:
            few = increases < rho * (k + 1 - last_mark)
            stuck = eta == eta_at_mark and best == best_at_mark
            eta_at_mark, best_at_mark = eta, best
            if few or stuck:
                eta /= 2.0
                z, z_prev, f_cur, g = z_best, z_best, best, g_best
            increases, last_mark = 0, k + 1
    return best - f0


# --- one network -------------------------------------------------------------------------


def run_network(params, X, y):
    import torch
    from hessian_eigenthings import HessianOperator, lanczos, supervised_loss
    from pyhessian import hessian

    f = fm.DatasetLoss(loss, batches(X, y), params)
    x = f.point()
    unravel = jax.flatten_util.ravel_pytree(f.params)[1]
    whole = jax.jit(lambda p: loss(unravel(p), (X, y)))  # the whole-data loss, flat
    vg = jax.jit(jax.value_and_grad(whole))
    hvp = jax.jit(lambda p, v: jax.jvp(jax.grad(whole), (p,), (v,))[1])
    t_vg, _ = timed(lambda: jax.block_until_ready(vg(x)), repeat=20)
    vg_batched = jax.jit(jax.value_and_grad(f))  # the same loss as 7 batches, one jitted call
    t_vgb, _ = timed(lambda: jax.block_until_ready(vg_batched(x)), repeat=20)
    row = {"n": f.n, "batched_over_whole": t_vgb / t_vg}

    # (a) and (c): max_variation on three balls, against Auto-PGD
    scales = {"l2": None, "linf": None, "adaptive": jnp.abs(x) + 1e-3}
    for ball, r in RADII.items():
        kw = {"norm": "weighted_l2", "weights": scales[ball]} if ball == "adaptive" else {"norm": ball}
        t, res = timed(lambda kw=kw, r=r: fm.max_variation(f, x, r, solver=SOLVER, **kw), repeat=3)
        evals = res.n_evals + 2 * res.n_hvp
        kind = "linf" if ball == "linf" else "l2"
        scale = jnp.ones_like(x) if scales[ball] is None else scales[ball]
        published = auto_pgd(whole, x, r, kind, scale)
        budget = auto_pgd(whole, x, r, kind, scale, n_iter=evals)
        row[ball] = {"V": res.value, "apgd20": published, "apgd_budget": budget, "evals": evals,
                     "per_eval": t / evals / t_vg, "per_eval_batched": t / evals / t_vgb,
                     "seconds": t}

    # (b) top eigenvalue: reference, scipy, ours, PyHessian, hessian-eigenthings
    op = sla.LinearOperator((f.n, f.n), matvec=lambda v: np.asarray(hvp(x, jnp.asarray(v))),
                            dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(f.n)
    ref = float(sla.eigsh(op, k=1, which="LA", tol=1e-12, v0=v0)[0][0])
    t_scipy, lam_scipy = timed(lambda: float(sla.eigsh(op, k=1, which="LA", tol=1e-3, v0=v0)[0][0]),
                               repeat=2)
    t_ours, lam_ours = timed(lambda: fm.sharpness.hessian_eigmax(f, x, method="lanczos",
                                                                 rtol=1e-3).value, repeat=2)
    torch.set_default_dtype(torch.float64)
    net = twin(params)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    criterion = torch.nn.CrossEntropyLoss()
    torch.manual_seed(0)
    t_pyh, lam_pyh = timed(lambda: hessian(net, criterion, data=(Xt, yt), cuda=False)
                           .eigenvalues(maxIter=100, tol=1e-3)[0][0], repeat=2)

    def eigenthings():
        operator = HessianOperator(net, [(Xt, yt)], supervised_loss(criterion))
        m = 10
        while True:
            res = lanczos(operator, k=1, which="LA", tol=1e-3, max_iter=min(m, f.n - 1), seed=0)
            if bool(res.converged.all()) or m >= f.n - 1:
                return float(res.eigenvalues[0])
            m *= 2

    t_eth, lam_eth = timed(eigenthings, repeat=2)
    row["eig"] = {"ref": ref, "ours": (t_ours, lam_ours), "scipy": (t_scipy, lam_scipy),
                  "pyhessian": (t_pyh, lam_pyh), "eigenthings": (t_eth, lam_eth)}

    # trace at equal probes
    torch.manual_seed(0)
    comp = hessian(net, criterion, data=(Xt, yt), cuda=False)
    probes = len(comp.trace(maxIter=100, tol=1e-3))
    t_pyh_tr, tr_pyh = timed(lambda: float(np.mean(hessian(net, criterion, data=(Xt, yt), cuda=False)
                                                   .trace(maxIter=probes, tol=0.0))))
    t_tr, tr = timed(lambda: fm.sharpness.hessian_trace(f, x, method="hutchinson",
                                                         num_samples=probes))
    row["trace"] = {"probes": probes, "ours": (t_tr, tr.value, tr.stderr), "pyhessian": (t_pyh_tr, tr_pyh)}
    return row


# --- peak memory, each method in a fresh process -------------------------------------------


def status_mb(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in MiB."""
    with open("/proc/self/status") as fh:
        line = next(line for line in fh if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def memory_child(method: str, name: str, path: str) -> None:
    """Runs in a fresh process: prints the rise of the peak RSS (MiB) during one call."""
    X, y = digits()
    saved = np.load(path)
    params = [(jnp.asarray(saved[f"W{i}"]), jnp.asarray(saved[f"b{i}"]))
              for i in range(len(SIZES[name]) - 1)]
    call = None
    if method in ("ours_eig", "ours_mv"):
        f = fm.DatasetLoss(loss, batches(X, y), params)
        x = f.point()
        call = ((lambda: fm.sharpness.hessian_eigmax(f, x, method="lanczos", rtol=1e-3))
                if method == "ours_eig" else (lambda: fm.max_variation(f, x, RADII["l2"], solver=SOLVER)))
    elif method.startswith("streamed"):
        m = int(method.split("_")[1])
        rows = np.arange(m * BATCH) % len(y)
        data = [(X[rows[i:i + BATCH]], y[rows[i:i + BATCH]]) for i in range(0, len(rows), BATCH)]

        class Lazy:  # yields the batches without holding them (a stand-in for a data loader)
            def __iter__(self):
                for Xb, yb in data:
                    yield Xb.copy(), yb.copy()

        f = fm.StreamedDatasetLoss(loss, Lazy(), params)
        x = np.asarray(f.point())
        call = lambda: (f.value_and_grad(x), f.hvp(x, x))
    elif method == "scipy_eig":
        whole = jax.jit(lambda p: loss(p, (X, y)))
        flat, unravel = jax.flatten_util.ravel_pytree(params)
        hvp = jax.jit(lambda v: jax.flatten_util.ravel_pytree(
            jax.jvp(jax.grad(whole), (params,), (unravel(v),))[1])[0])
        op = sla.LinearOperator((flat.size,) * 2, dtype=np.float64,
                                matvec=lambda v: np.asarray(hvp(jnp.asarray(v, dtype=jnp.float64))))
        call = lambda: sla.eigsh(op, k=1, which="LA", tol=1e-3)
    else:
        import torch
        from hessian_eigenthings import HessianOperator, lanczos, supervised_loss
        from pyhessian import hessian

        torch.set_default_dtype(torch.float64)
        net, criterion = twin(params), torch.nn.CrossEntropyLoss()
        Xt, yt = torch.tensor(X), torch.tensor(y)
        if method == "pyhessian_eig":
            call = lambda: hessian(net, criterion, data=(Xt, yt), cuda=False).eigenvalues(maxIter=100,
                                                                                         tol=1e-3)
        else:
            op = HessianOperator(net, [(Xt, yt)], supervised_loss(criterion))
            call = lambda: lanczos(op, k=1, which="LA", tol=1e-3, max_iter=40, seed=0)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # Linux: reset the peak (VmHWM) to the resident set now
    base = status_mb("VmRSS")
    call()
    print(json.dumps(status_mb("VmHWM") - base))


def memory(method: str, name: str, path: str) -> float:
    run = subprocess.run([sys.executable, __file__, "--memory", method, name, path],
                         capture_output=True, text=True, timeout=900)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-2000:])
    return float(run.stdout.split()[-1])


# --- report --------------------------------------------------------------------------------


def main() -> None:
    X, y = digits()
    load = os.getloadavg()[0]
    print(f"digits {X.shape}, batches of {BATCH} (7 uneven), float64; jax {jax.__version__}, "
          f"{os.cpu_count()} cores, load average {load:.1f} at start")
    tmp = tempfile.TemporaryDirectory()
    rows, paths = {}, {}
    for name, sizes in SIZES.items():
        params = trained(sizes, X, y)
        paths[name] = os.path.join(tmp.name, f"{name}.npz")
        np.savez(paths[name], **{f"{k}{i}": np.asarray(a) for i, p in enumerate(params)
                                 for k, a in zip("Wb", p)})
        rows[name] = run_network(params, X, y)

    print("\n(a) max_variation: seconds per evaluation / one jitted value_and_grad (target <= 1.3)"
          "\n    of the objective measured (7 batches) and of the whole-data loss (one batch)")
    print(f"{'net':5s} {'n':>7s} {'ball':9s} {'seconds':>8s} {'evals':>6s} {'/ objective':>11s} "
          f"{'/ whole':>8s}")
    for name, row in rows.items():
        for ball in RADII:
            c = row[ball]
            print(f"{name:5s} {row['n']:7d} {ball:9s} {c['seconds']:8.2f} {c['evals']:6d} "
                  f"{c['per_eval_batched']:11.2f} {c['per_eval']:8.2f}")
        print(f"{name:5s} one value_and_grad over 7 batches / over the whole data: "
              f"{row['batched_over_whole']:.2f}")

    print("\n(b) Hessian top eigenvalue to 1e-3: seconds, relative error against eigsh(tol=1e-12)")
    print(f"{'net':5s} {'method':12s} {'seconds':>8s} {'rel.error':>10s} {'ours/this':>10s}")
    for name, row in rows.items():
        e = row["eig"]
        for method in ("ours", "scipy", "pyhessian", "eigenthings"):
            t, lam = e[method]
            print(f"{name:5s} {method:12s} {t:8.3f} {abs(lam - e['ref']) / abs(e['ref']):10.1e} "
                  f"{e['ours'][0] / t:10.2f}")
        faster = min(e["pyhessian"][0], e["eigenthings"][0])
        print(f"{name:5s} ours / faster PyTorch tool = {e['ours'][0] / faster:.2f} (target <= 0.5), "
              f"ours / eigsh = {e['ours'][0] / e['scipy'][0]:.2f} (target <= 1.5)")
    print("\n    trace at equal probes (PyHessian's count): seconds and estimate")
    for name, row in rows.items():
        tr = row["trace"]
        t, value, se = tr["ours"]
        tp, vp = tr["pyhessian"]
        print(f"{name:5s} probes {tr['probes']:3d}  ours {t:7.3f} s {value:10.4g} +- {se:.2g}  "
              f"PyHessian {tp:7.3f} s {vp:10.4g}  ratio {t / tp:.2f} (target <= 1)")

    print("\n(c) worst-case sharpness max f(w + d) - f(w): max_variation against Auto-PGD")
    print(f"{'net':5s} {'ball':9s} {'radius':>7s} {'ours':>11s} {'APGD(20)':>11s} {'APGD(budget)':>12s} "
          f"{'budget':>6s} {'(ours-APGD)/ours':>16s}")
    for name, row in rows.items():
        for ball, r in RADII.items():
            c = row[ball]
            gap = (c["V"] - max(c["apgd20"], c["apgd_budget"])) / c["V"]
            print(f"{name:5s} {ball:9s} {r:7.0e} {c['V']:11.5g} {c['apgd20']:11.5g} "
                  f"{c['apgd_budget']:12.5g} {c['evals']:6d} {gap:16.1e}")

    print("\n(d) peak memory: rise of the peak RSS during one call (fresh process, compile included)")
    for name in SIZES:
        cells = [f"{m} {memory(m, name, paths[name]):7.1f}" for m in
                 ("ours_eig", "scipy_eig", "pyhessian_eig", "eigenthings_eig", "ours_mv")]
        print(f"{name:5s} MiB: " + "  ".join(cells))
    cells = [f"{m} batches {memory(f'streamed_{m}', '1e5', paths['1e5']):7.1f}" for m in (7, 28, 112)]
    print("1e5   streamed value, gradient and HVP, MiB: " + "  ".join(cells))
    tmp.cleanup()
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} cores)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--memory":
        memory_child(*sys.argv[2:5])
    else:
        main()
