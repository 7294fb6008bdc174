"""Tables and figures of the network study (Markdown, terminal, PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLUMNS = (("arch", "arch"), ("batch", "batch"), ("optimizer", "opt"), ("seed", "seed"),
           ("train_acc", "train acc"), ("test_acc", "test acc"), ("loss", "loss"),
           ("grad_norm", "‖∇f‖"), ("V_trained", "V trained"), ("V_balanced", "V balanced"),
           ("V_curvature", "V − ‖∇f‖r balanced"),
           ("rank", "rank (balanced)"), ("eigmax", "λmax"), ("eigmax_bal", "λmax balanced"),
           ("trace", "trace"), ("keskar", "Keskar"), ("sam", "SAM"), ("adaptive", "adaptive"))
LABELS = {"V_trained": "V(x, r) as trained", "V_balanced": "V(x, r) balanced",
          "V_curvature": "V − ‖∇f‖ r balanced",
          "eigmax": "Hessian λmax", "eigmax_bal": "Hessian λmax balanced",
          "trace": "Hessian trace", "keskar": "Keskar sharpness", "sam": "SAM sharpness",
          "adaptive": "adaptive sharpness", "rank": "germ-preorder rank (balanced)"}


def _cell(key, value) -> str:
    if isinstance(value, str):
        return value
    if key in ("batch", "seed", "rank"):
        return str(int(value))
    if key in ("train_acc", "test_acc"):
        return f"{100 * value:.1f}%"
    return f"{value:.3g}"


def table_rows(summary) -> list:
    """One row of formatted cells per network, in the order of :data:`COLUMNS`."""
    return [[_cell(k, n[k]) for k, _ in COLUMNS] for n in summary["networks"]]


def markdown_table(summary) -> str:
    """The study's table, its findings and figure links, as Markdown."""
    r = summary["radii"][-1]
    head = [h.replace("V trained", f"V(r={r:g}) trained").replace("V balanced",
                                                                   f"V(r={r:g}) balanced")
            for _, h in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(summary)]
    lines += ["", f"V is the maximal variation of the training loss (a lower bound from the "
              f"solver); rank 1 is the flattest balanced network in the germ preorder read on "
              f"the radii {summary['radii']}; ties share a rank.", ""]
    lines += [f"- {line}" for line in summary["findings"]]
    lines += ["", "![flatness against test accuracy](flatness_vs_accuracy.png)", "",
              "![rescaling orbit](rescaling_orbit.png)", ""]
    return "\n".join(lines)


def rich_table(summary):
    """The study's table for the terminal."""
    from rich.table import Table

    table = Table(title=f"Networks trained on digits ({summary['n_train']} train, "
                        f"{summary['n_test']} test); V at r = {summary['radii'][-1]:g}")
    for _, h in COLUMNS:
        table.add_column(h, justify="right")
    for row in table_rows(summary):
        table.add_row(*row)
    return table


def accuracy_plot(summary, out: Path) -> Path:
    """Test accuracy against each measure (one panel per measure, markers per config)."""
    keys = list(LABELS)
    ncol = 3
    fig, axes = plt.subplots(int(np.ceil(len(keys) / ncol)), ncol, figsize=(13, 10))
    markers = {"sgd": "o", "sam": "^"}
    colors = {"mlp": "tab:blue", "cnn": "tab:orange"}
    for ax, key in zip(axes.flat, keys):
        for n in summary["networks"]:
            ax.scatter(n[key], 100 * n["test_acc"], marker=markers[n["optimizer"]],
                       s=30 if n["batch"] < 100 else 80, color=colors[n["arch"]],
                       edgecolor="k", lw=0.5)
        if key != "rank" and all(n[key] > 0 for n in summary["networks"]):
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        taus = ", ".join(f"{a} τ={c[key]['tau']:+.2f}" for a, c in summary["correlations"].items()
                         if c[key]["tau"] is not None)
        ax.set_title(f"{LABELS[key]}\n(Kendall {taus})", fontsize=9)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], ls="", marker=m, color="0.5", label=o) for o, m in markers.items()]
    handles += [plt.Line2D([], [], ls="", marker="s", color=c, label=a) for a, c in colors.items()]
    handles += [plt.Line2D([], [], ls="", marker="o", ms=s, color="0.5", label=lab)
                for s, lab in ((5, "small batch"), (9, "large batch"))]
    fig.legend(handles=handles, loc="lower right", fontsize=9)
    fig.suptitle("Flatness measures against test accuracy (digits)")
    return _save(fig, out)


def orbit_plot(orbit, out: Path) -> Path:
    """Left: Hessian top eigenvalue and Keskar sharpness along the rescaling orbit; right:
    ``V(x, r)`` along it, the balanced point marked; the function does not change."""
    rows = orbit["rows"]
    t = np.array([r["t"] for r in rows])
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8))
    ax.semilogy(t, [r["eigmax"] for r in rows], "o-", label="Hessian λmax")
    ax.semilogy(t, [r["keskar"] for r in rows], "s-", label="Keskar sharpness")
    ax.set_xlabel("t (first hidden layer: weights, biases × e^t; outgoing ÷ e^t)")
    ax.set_title(f"same function: outputs change ≤ {max(r['output_change'] for r in rows):.1e}")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    v = [r["V"] for r in rows]
    bx.semilogy(t, v, "o-", color="tab:green", label=f"V(x, r = {orbit['radius']:g})")
    i0 = int(np.argmin(np.abs(t)))
    bx.plot(t[i0], v[i0], "*", ms=16, color="gold", mec="k", label="balanced point")
    bx.set_xlabel("t")
    bx.set_title("maximal variation along the rescaling orbit")
    bx.legend()
    bx.grid(True, which="both", alpha=0.3)
    return _save(fig, out)


def _save(fig, out: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
