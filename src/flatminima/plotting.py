"""Matplotlib figures (Agg backend; files only)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def level_curves(ax, f, xlim, ylim, n=300, levels=25):
    """Level curves of a 2-variable f (log-spaced levels above its minimum on the box)."""
    xs, ys = np.linspace(*xlim, n), np.linspace(*ylim, n)
    X, Y = np.meshgrid(xs, ys)
    Z = np.asarray(f(np.stack([X, Y])))
    lo = max(Z.min(), 0) + 1e-4
    cs = ax.contour(X, Y, Z, levels=np.geomspace(lo, Z.max(), levels), cmap="viridis",
                    linewidths=0.7)
    return cs


def figure1_plot(f, points, flat_k, flat_v, radius, out: Path, title: str) -> Path:
    """Left: iterates over the level curves of f, the minimizers x2 = 0 and the flat
    minimum (0, 0). Right: V(x_k, r) against k."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1.6, 1]})
    xlim = (min(-1.0, points[:, 0].min() - 0.3), max(3.6, points[:, 0].max() + 0.3))
    ylim = (min(-1.0, points[:, 1].min() - 0.2), max(1.0, points[:, 1].max() + 0.2))
    cs = level_curves(ax, f, xlim, ylim)
    fig.colorbar(cs, ax=ax, label="f(x1, x2) (log-spaced levels)", format="%.2g")
    ax.axhline(0.0, color="crimson", ls="--", lw=1.5, label="minimizers (x2 = 0)")
    ax.plot(points[:, 0], points[:, 1], "-", color="0.35", lw=0.5, alpha=0.7)
    ax.scatter(points[:, 0], points[:, 1], s=4, c=np.arange(len(points)), cmap="autumn",
               zorder=3, label="iterates (colour: k)")
    ax.plot(*points[0], "ko", ms=7, label=f"start ({points[0][0]:.2f}, {points[0][1]:.2f})")
    ax.plot(*points[-1], "bs", ms=7, label=f"last ({points[-1][0]:.3f}, {points[-1][1]:.3f})")
    ax.plot(0.0, 0.0, "*", color="gold", mec="k", ms=16, zorder=4, label="flat minimum (0, 0)")
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    _flatness_panel(bx, flat_k, flat_v, "o", "iteration k",
                    f"maximal variation V(x_k, r = {radius:g})", "flatness along the iterates")
    return _save(fig, out)


def flattening_plot(f, points, flat_t, flat_v, radius, out: Path, title: str) -> Path:
    """Left: the flattening flow over the level curves of a 2-variable f. Right: the
    maximal variation along the flow."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 5))
    lo, hi = points.min(0) - 0.5, points.max(0) + 0.5
    lo, hi = np.minimum(lo, -0.5), np.maximum(hi, 0.5)
    cs = level_curves(ax, f, (lo[0], hi[0]), (lo[1], hi[1]))
    fig.colorbar(cs, ax=ax, label="f (log-spaced levels)", format="%.2g")
    ax.plot(points[:, 0], points[:, 1], "r-", lw=2, label="flattening flow")
    ax.plot(*points[0], "ko", ms=7, label=f"start ({points[0][0]:.2f}, {points[0][1]:.2f})")
    ax.plot(*points[-1], "b*", ms=12, label=f"end ({points[-1][0]:.3f}, {points[-1][1]:.3f})")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title)
    ax.legend(fontsize=8)
    _flatness_panel(bx, flat_t, flat_v, "o-", "time t",
                    f"maximal variation V(y(t), r = {radius:g})", "flatness along the flow")
    return _save(fig, out)


def _flatness_panel(ax, xs, values, style, xlabel, ylabel, title) -> None:
    """The maximal variation along a trajectory, on a log scale."""
    ax.semilogy(xs, values, style, ms=3 if style == "o" else 6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)


def _save(fig, out: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
