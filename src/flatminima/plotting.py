"""Matplotlib figures (Agg backend; files only)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402


def format_number(x: float, digits: int = 3) -> str:
    """``x`` for people: ``digits`` significant digits, trailing zeros dropped, in fixed
    notation when ``1e-3 <= |x| < 1e4`` and scientific notation otherwise.

    >>> [format_number(t) for t in (4.563e21, 0.06, 3.2, 1234.6, -1.5e-7, 0.0, float("nan"))]
    ['4.56e21', '0.06', '3.2', '1235', '-1.5e-7', '0', 'nan']
    """
    x = float(x)
    if x == 0.0 or not math.isfinite(x):
        return "0" if x == 0.0 else str(x)
    if 1e-3 <= abs(x) < 1e4:
        decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
        text = f"{x:.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def format_point(point, digits: int = 3) -> str:
    """A point as ``(a, b, ...)`` with each coordinate through :func:`format_number`."""
    return "(" + ", ".join(format_number(t, digits) for t in np.ravel(point)) + ")"


def level_curves(ax, f, xlim, ylim, n=300, levels=25):
    """Level curves of a 2-variable f (log-spaced levels above its minimum on the box)."""
    xs, ys = np.linspace(*xlim, n), np.linspace(*ylim, n)
    X, Y = np.meshgrid(xs, ys)
    Z = np.asarray(f(np.stack([X, Y])))
    lo = max(Z.min(), 0) + 1e-4
    cs = ax.contour(X, Y, Z, levels=np.geomspace(lo, Z.max(), levels), cmap="viridis",
                    linewidths=0.7)
    return cs


def _frame(points, lo, hi, bound: float = 10.0):
    """Axis limits: the box ``[lo, hi]`` grown to hold the iterates whose coordinates are
    all within ``bound`` (a diverging run would otherwise shrink the picture to a dot)."""
    finite = points[np.all(np.isfinite(points), axis=1) & np.all(np.abs(points) <= bound, axis=1)]
    if len(finite):
        lo = np.minimum(lo, finite.min(0) - 0.3)
        hi = np.maximum(hi, finite.max(0) + 0.3)
    return lo, hi


def figure1_plot(f, points, flat_k, flat_v, radius, out: Path, title: str) -> Path:
    """Left: iterates over the level curves of f, the minimizers x2 = 0 and the flat
    minimum (0, 0); iterates far outside the frame are counted in the title. Right: V(x_k, r)
    against k."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 6), gridspec_kw={"width_ratios": [1.6, 1]})
    lo, hi = _frame(points, np.array([-1.0, -1.0]), np.array([3.6, 1.0]))
    cs = level_curves(ax, f, (lo[0], hi[0]), (lo[1], hi[1]))
    fig.colorbar(cs, ax=ax, label="f(x1, x2) (log-spaced levels)", format=_number_ticks())
    ax.axhline(0.0, color="crimson", ls="--", lw=1.5, label="minimizers (x2 = 0)")
    ax.plot(points[:, 0], points[:, 1], "-", color="0.35", lw=0.5, alpha=0.7)
    ax.scatter(points[:, 0], points[:, 1], s=4, c=np.arange(len(points)), cmap="autumn",
               zorder=3, label="iterates (colour: k)")
    ax.plot(*points[0], "ko", ms=7, label=f"start {format_point(points[0])}")
    ax.plot(*points[-1], "bs", ms=7, label=f"last {format_point(points[-1])}")
    ax.plot(0.0, 0.0, "*", color="gold", mec="k", ms=16, zorder=4, label="flat minimum (0, 0)")
    outside = np.flatnonzero(np.any(points < lo, axis=1) | np.any(points > hi, axis=1))
    if len(outside):  # said in the title, where it covers no iterate
        title += (f"\n{len(outside)} of {len(points)} iterates lie outside this frame "
                  f"(the first at k = {outside[0]})")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(title)
    _legend_below(ax)
    _flatness_panel(bx, flat_k, flat_v, "o", "iteration k",
                    f"maximal variation V(x_k, r = {format_number(radius)})",
                    "flatness along the iterates")
    return _save(fig, out)


def flattening_plot(f, points, flat_t, flat_v, radius, out: Path, title: str) -> Path:
    """Left: the flattening flow over the level curves of a 2-variable f. Right: the
    maximal variation along the flow."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 5.8))
    lo, hi = points.min(0) - 0.5, points.max(0) + 0.5
    lo, hi = np.minimum(lo, -0.5), np.maximum(hi, 0.5)
    cs = level_curves(ax, f, (lo[0], hi[0]), (lo[1], hi[1]))
    fig.colorbar(cs, ax=ax, label="f (log-spaced levels)", format=_number_ticks())
    ax.plot(points[:, 0], points[:, 1], "r-", lw=2, label="flattening flow")
    ax.plot(*points[0], "ko", ms=7, label=f"start {format_point(points[0])}")
    ax.plot(*points[-1], "b*", ms=12, label=f"end {format_point(points[-1])}")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title)
    _legend_below(ax)
    _flatness_panel(bx, flat_t, flat_v, "o-", "time t",
                    f"maximal variation V(y(t), r = {format_number(radius)})", "flatness along the flow")
    return _save(fig, out)


def _flatness_panel(ax, xs, values, style, xlabel, ylabel, title) -> None:
    """The maximal variation along a trajectory, on a log scale."""
    ax.semilogy(xs, values, style, ms=3 if style == "o" else 6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)


def _legend_below(ax) -> None:
    """The legend under the axes, where it cannot cover a marker."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8, frameon=False)


def _number_ticks() -> FuncFormatter:
    """Tick labels through :func:`format_number`."""
    return FuncFormatter(lambda value, _pos: format_number(value, 2))


def _save(fig, out: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
