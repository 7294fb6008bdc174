"""The network study behind ``flatminima study``: which trained network is flatter, does
the flatness preorder agree with the classical measures and with test accuracy, and how
much of the sharpness is an artefact of the rescaling symmetry (SPEC section 12)?

Networks (an MLP 64-32-10 and a small CNN) are trained on scikit-learn's digits with
small and large batches, SGD and SAM, several seeds. For each: its balanced
representative (:func:`flatminima.balance_network`), the flatness profiles of the
training loss as trained and balanced, the germ-preorder ranking of the balanced networks
(recomputed with other solver seeds to measure its stability), the classical sharpness
measures and the accuracies; and, along a rescaling orbit of one network, ``V``, the
Hessian top eigenvalue and Keskar sharpness while the function stays the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from scipy.stats import kendalltau

from . import sharpness, solvers
from ._order import rank_minima
from ._profile import flatness_profile
from ._training import ARCHITECTURES, accuracy, cross_entropy, load_digits_split, train
from ._variation import max_variation
from ._x64 import float64
from .networks import balance_network, rescale_network


@dataclass(frozen=True)
class StudyConfig:
    """What the study trains and measures (``quick`` and ``full`` below)."""

    archs: tuple = ("mlp",)
    configs: tuple = ((32, "sgd"), (600, "sgd"), (32, "sam"), (600, "sam"))
    seeds: dict | None = None  # training seeds per architecture
    steps: int = 600
    radii: tuple = (0.05, 0.02, 0.01)
    measure_seeds: tuple = (0, 1)
    orbit: tuple = (-2.0, -1.0, 0.0, 1.0, 2.0)
    trace_samples: int = 50

    def n_networks(self) -> int:
        return sum(len(self.seeds[a]) for a in self.archs) * len(self.configs)


QUICK = StudyConfig(seeds={"mlp": (0,)})
FULL = StudyConfig(archs=("mlp", "cnn"), seeds={"mlp": (0, 1, 2), "cnn": (0,)}, steps=2000,
                   radii=(0.1, 0.03, 0.01), measure_seeds=(0, 1, 2),
                   orbit=tuple(np.linspace(-2.5, 2.5, 11)), trace_samples=100)
#: Projected ascent from the gradient direction and random directions, without the
#: Hessian-eigenvector starts (200 Hessian-vector products per radius at these sizes; on
#: these losses they changed V by about 3e-5 relative, at 15 times the cost).
STUDY_SOLVER = solvers.ProjectedAscent(n_eig=0, n_random=4)
#: Classical measures, at the trained point (``_bal``: at the balanced representative).
MEASURES = ("V_trained", "V_balanced", "V_curvature", "eigmax", "eigmax_bal", "trace", "keskar", "sam",
            "adaptive")


def _loss_for(arch, data, template):
    """The training loss as a jitted function of the flat parameter vector."""
    _, unravel = ravel_pytree(template)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    logits = ARCHITECTURES[arch]
    return jax.jit(lambda v: cross_entropy(logits, unravel(v), x, y)), unravel


def _pairwise_agreement(a, b) -> float:
    """Fraction of ordered pairs on which two verdict matrices agree."""
    m = len(a)
    pairs = [(i, j) for i in range(m) for j in range(m) if i != j]
    return float(np.mean([a[i][j] == b[i][j] for i, j in pairs])) if pairs else 1.0


def _positions(groups, m) -> list:
    """Rank position (1 = flattest) of each point from ranking groups (ties share)."""
    pos = [0] * m
    for k, grp in enumerate(groups):
        for i in grp:
            pos[i] = k + 1
    return pos


def _train_all(cfg, data, seed, tick) -> list:
    nets = []
    for arch in cfg.archs:
        for s in cfg.seeds[arch]:
            for batch, opt in cfg.configs:
                # one initialization per (arch, seed), shared by the configurations
                params = train(arch, data, batch=batch, optimizer=opt, steps=cfg.steps,
                               seed=seed + 1000 * s)
                tick(f"trained {arch} batch={batch} {opt} seed={s}")
                nets.append({"arch": arch, "batch": batch, "optimizer": opt, "seed": s,
                             "params": params})
    return nets


def _measure_arch(cfg, arch, nets, data, tick) -> dict:
    loss, unravel = _loss_for(arch, data, nets[0]["params"])
    logits = ARCHITECTURES[arch]
    x_test = jnp.asarray(data.x_test)
    radii = np.asarray(cfg.radii)
    trained, balanced = [], []
    for net in nets:
        p = net["params"]
        bal = balance_network(p, inputs=x_test, forward=logits)
        flat, flat_b = ravel_pytree(p)[0], ravel_pytree(bal.params)[0]
        trained.append(flat)
        balanced.append(flat_b)
        g = float(jnp.linalg.norm(jax.grad(loss)(flat)))
        net.update(train_acc=accuracy(logits, p, data.x_train, data.y_train),
                   test_acc=accuracy(logits, p, data.x_test, data.y_test),
                   loss=float(loss(flat)), loss_balanced=float(loss(flat_b)), grad_norm=g,
                   imbalance_before=bal.imbalance_before, imbalance_after=bal.imbalance_after,
                   output_change=bal.output_change, newton_steps=bal.n_iter,
                   squared_norm=[bal.squared_norm_before, bal.squared_norm_after])
        prof = flatness_profile(loss, flat, radii, solver=STUDY_SOLVER)
        net["profile_trained"] = prof.values.tolist()
        tick(f"{arch}: profile as trained")
        net["eigmax"] = sharpness.hessian_eigmax(loss, flat).value
        net["eigmax_bal"] = sharpness.hessian_eigmax(loss, flat_b).value
        net["trace"] = sharpness.hessian_trace(loss, flat, num_samples=cfg.trace_samples).value
        net["keskar"] = sharpness.keskar_sharpness(loss, flat, solver=STUDY_SOLVER).value
        net["sam"] = sharpness.sam_sharpness(loss, flat).value
        net["adaptive"] = sharpness.adaptive_sharpness(loss, flat, solver=STUDY_SOLVER).value
        tick(f"{arch}: classical measures")
    rankings = []
    for ms in cfg.measure_seeds:
        rk = rank_minima(loss, balanced, radii, seed=ms, solver=STUDY_SOLVER)
        rankings.append(rk)
        tick(f"{arch}: ranking balanced networks (solver seed {ms})")
    for i, net in enumerate(nets):
        net["profile_balanced"] = rankings[0].profiles[i].values.tolist()
        net["V_trained"] = net["profile_trained"][-1]
        net["V_balanced"] = net["profile_balanced"][-1]
        # the curvature part V - ||grad f|| r at the balanced point (SPEC section 4)
        net["V_curvature"] = net["V_balanced"] - float(
            jnp.linalg.norm(jax.grad(loss)(balanced[i]))) * float(radii[-1])
        net["rank"] = _positions(rankings[0].groups, len(nets))[i]
    agreement = [_pairwise_agreement(rankings[0].verdicts, r.verdicts) for r in rankings[1:]]
    return {"radii": radii.tolist(), "groups": rankings[0].groups,
            "verdicts": rankings[0].verdicts,
            "seed_agreement": agreement,
            "groups_by_seed": [r.groups for r in rankings],
            "loss": loss, "unravel": unravel}


def _orbit(cfg, net, arch, data, loss, tick) -> dict:
    """``V``, the Hessian top eigenvalue and Keskar sharpness at ``rescale_network`` of the
    balanced network by ``a = exp(t)`` on every unit of the first hidden layer."""
    logits = ARCHITECTURES[arch]
    bal = balance_network(net["params"]).params
    x_test = jnp.asarray(data.x_test)
    out0 = np.asarray(logits(bal, x_test))
    radius = float(cfg.radii[-1])
    rows = []
    for t in cfg.orbit:
        scales = [np.full(W.shape[0], np.exp(t)) if h == 0 else np.ones(W.shape[0])
                  for h, (W, _) in enumerate(bal[:-1])]
        p = rescale_network(bal, scales)
        flat = ravel_pytree(p)[0]
        out = np.asarray(logits(p, x_test))
        rows.append({"t": float(t), "loss": float(loss(flat)),
                     "output_change": float(np.abs(out - out0).max() / np.abs(out0).max()),
                     "V": max_variation(loss, flat, radius).value,
                     "eigmax": sharpness.hessian_eigmax(loss, flat).value,
                     "keskar": sharpness.keskar_sharpness(loss, flat, solver=STUDY_SOLVER).value})
        tick(f"orbit t={t:+.2f}")
    vs = [r["V"] for r in rows]
    at0 = int(np.argmin(np.abs(np.asarray(cfg.orbit))))
    return {"radius": radius, "network": {k: net[k] for k in ("arch", "batch", "optimizer",
                                                              "seed")},
            "rows": rows, "balanced_is_minimum": bool(vs[at0] <= min(vs))}


def _correlations(nets) -> dict:
    """Kendall's tau between each measure and test accuracy, per architecture (a measure
    that predicts accuracy, sharper = worse, has tau < 0)."""
    out = {}
    for arch in sorted({n["arch"] for n in nets}):
        group = [n for n in nets if n["arch"] == arch]
        acc = [n["test_acc"] for n in group]
        out[arch] = {}
        for m in MEASURES + ("rank",):
            tau, p = kendalltau([n[m] for n in group], acc)
            out[arch][m] = {"tau": None if np.isnan(tau) else float(tau),
                            "p": None if np.isnan(p) else float(p)}
    return out


def study_ticks(cfg: StudyConfig) -> int:
    """Number of progress ticks of :func:`run_network_study`."""
    per_arch = len(cfg.measure_seeds)
    return 3 * cfg.n_networks() + per_arch * len(cfg.archs) + len(cfg.orbit)


@float64
def run_network_study(out: Path, *, quick: bool = True, seed: int = 0, progress=None,
                      config: StudyConfig | None = None) -> dict:
    """Train, balance and measure (see the module docstring); writes ``network_study.json``,
    ``network_study.md``, ``flatness_vs_accuracy.png`` and ``rescaling_orbit.png`` into
    ``out`` and returns the summary. Deterministic for a given ``seed``."""
    from ._network_report import accuracy_plot, markdown_table, orbit_plot

    cfg = config or (QUICK if quick else FULL)
    tick = progress or (lambda label: None)
    out.mkdir(parents=True, exist_ok=True)
    data = load_digits_split(seed=seed)
    nets = _train_all(cfg, data, seed, tick)
    per_arch, orbit = {}, None
    for arch in cfg.archs:
        group = [n for n in nets if n["arch"] == arch]
        per_arch[arch] = _measure_arch(cfg, arch, group, data, tick)
        if orbit is None:
            orbit = _orbit(cfg, group[0], arch, data, per_arch[arch]["loss"], tick)
    for net in nets:
        del net["params"]
    for res in per_arch.values():
        del res["loss"], res["unravel"]
    summary = {"seed": seed, "quick": quick, "steps": cfg.steps, "n_train": len(data.y_train),
               "n_test": len(data.y_test), "radii": list(cfg.radii), "networks": nets,
               "rankings": per_arch, "orbit": orbit, "correlations": _correlations(nets)}
    summary["findings"] = findings(summary)
    (out / "network_study.json").write_text(json.dumps(summary, indent=2))
    (out / "network_study.md").write_text(markdown_table(summary))
    accuracy_plot(summary, out / "flatness_vs_accuracy.png")
    orbit_plot(summary["orbit"], out / "rescaling_orbit.png")
    return summary


def findings(s: dict) -> list:
    """Plain statements of what the numbers show (balancing, stability, accuracy)."""
    nets = s["networks"]
    lines = []
    worst_out = max(n["output_change"] for n in nets)
    worst_q = max(n["imbalance_after"] for n in nets)
    lines.append(f"Balancing changed the test-set outputs by at most {worst_out:.1e} (relative) "
                 f"and the training loss by at most "
                 f"{max(abs(n['loss'] - n['loss_balanced']) for n in nets):.1e}; every "
                 f"conserved quantity ended below {worst_q:.1e}.")
    lower = sum(n["V_balanced"] < n["V_trained"] for n in nets)
    eig_lower = sum(n["eigmax_bal"] < n["eigmax"] for n in nets)
    lines.append(f"V(x, {s['radii'][-1]:g}) decreased under balancing at {lower} of {len(nets)} "
                 f"networks; the Hessian top eigenvalue at {eig_lower} of {len(nets)}.")
    for arch, r in s["rankings"].items():
        if r["seed_agreement"]:
            lines.append(f"{arch}: the ranking of balanced networks with other solver seeds "
                         f"agrees on {100 * min(r['seed_agreement']):.0f}% of pairwise verdicts "
                         f"(worst seed); groups identical: "
                         f"{all(g == r['groups_by_seed'][0] for g in r['groups_by_seed'])}.")
        for m, c in s["correlations"][arch].items():
            if c["tau"] is None:
                continue
            verdict = ("predicts test accuracy (sharper = worse)" if c["tau"] < 0 and c["p"] < 0.05
                       else "does not predict test accuracy here")
            lines.append(f"{arch}: {m}: Kendall tau {c['tau']:+.2f} (p = {c['p']:.2f}): {verdict}.")
    o = s["orbit"]
    if o is not None:
        e = [r["eigmax"] for r in o["rows"]]
        lines.append(f"Along the rescaling orbit the outputs changed by at most "
                     f"{max(r['output_change'] for r in o['rows']):.1e} while the Hessian top "
                     f"eigenvalue went from {min(e):.3g} to {max(e):.3g}; V at the balanced point "
                     f"is the smallest measured on the orbit: {o['balanced_is_minimum']}.")
    return lines
