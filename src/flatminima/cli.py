"""The ``flatminima`` command.

Every argument is checked where it enters, before any computation; a bad one is a usage
error: the usage line, then one line ``Error: ...``, exit status 2. Output folders
(``--out``) are created when missing, but their parent folder must exist; the folder of a
``--markdown`` file must exist. A ValueError or TypeError raised by the library for an
input the checks let through is reported the same way, and an OSError (a disk full, a
permission) as one line ``Error: ...`` with exit status 1, never a traceback.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from ._cli_user import register as _register_user_commands
from ._x64 import float64
from .plotting import format_number, format_point


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _reported(callback):
    """``callback`` run with flatminima's float64 scope (a command is one library call),
    with a library ValueError/TypeError turned into a usage error and an OSError into a
    one-line error (exit status 1)."""

    @functools.wraps(callback)
    def run(*args, **kwargs):
        try:
            return float64(callback)(*args, **kwargs)
        except (ValueError, TypeError) as error:
            raise typer.BadParameter(_one_line(error)) from None
        except OSError as error:
            typer.echo(f"Error: {_one_line(error)}", err=True)
            raise typer.Exit(1) from None

    return run


class _ReportedGroup(TyperGroup):
    """The command group whose every command, including ones registered later, runs
    through :func:`_reported`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for command in self.commands.values():
            command.callback = _reported(command.callback)


app = typer.Typer(help="The geometry of flat minima: measure, compare, flatten.",
                  cls=_ReportedGroup, rich_markup_mode=None, no_args_is_help=True,
                  add_completion=False, pretty_exceptions_show_locals=False)
# Piped output (a file, a log) is not cut to 80 columns; COLUMNS still sets the width.
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)
_register_user_commands(app)


def positive(value: float) -> float:
    """Option check: a positive finite number."""
    if not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"must be a positive finite number, got {value}.")
    return value


def finite(value: float) -> float:
    """Option check: a finite number."""
    if not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}.")
    return value


def out_folder(path: Path) -> Path:
    """Option check for ``--out``: a folder, or a new one whose parent folder exists; writable."""
    if path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{path} exists and is not a folder; pass a folder.")
    home = path if path.exists() else path.parent
    if not home.is_dir():
        raise typer.BadParameter(f"the folder {home} does not exist; create it or pass another folder.")
    if not os.access(home, os.W_OK | os.X_OK):
        raise typer.BadParameter(f"cannot write into {home}; pass a writable folder.")
    return path


def output_file(path: Path | None) -> Path | None:
    """Option check for an output file: not a folder, in an existing writable folder."""
    if path is None:
        return None
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a folder; pass a file name.")
    if not path.parent.is_dir():
        raise typer.BadParameter(f"the folder {path.parent} does not exist; create it or pass "
                                 "another file name.")
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise typer.BadParameter(f"cannot write {path}; pass a writable location.")
    return path


def figure1_variation_table(a_values=(0.0, 0.5, 1.0, 2.0), radii=(0.1, 0.03, 0.01)):
    """Rows ``(a, lambda_max, [V((a,0), r) for r], [r^2 + a^2 r^4 for r])`` for Figure 1."""
    import jax.numpy as jnp

    from . import examples, max_variation
    from ._hessian import top_eigenpairs
    from ._objective import as_objective

    rows = []
    for a in a_values:
        x = jnp.array([a, 0.0])
        obj, xf = as_objective(examples.figure1, x)
        lam = float(top_eigenpairs(obj, xf, 1)[0][0])
        values = [max_variation(examples.figure1, x, r).value for r in radii]
        closed = [r**2 + a**2 * r**4 for r in radii]
        rows.append((a, lam, values, closed))
    return rows


def _figure1_table_rich(rows, radii) -> Table:
    table = Table(title="Figure 1: f = x2^2 + x1^2 x2^4 at minimizers (a, 0); λmax: the "
                        "Hessian's top eigenvalue")
    for col in ["a", "λmax"] + [f"V(r={r:g})" for r in radii] + [f"(V-r²)/r⁴, r={radii[0]:g}"]:
        table.add_column(col, justify="right", overflow="fold")  # a number is never cut short
    table.add_column("a²", justify="right", style="dim", overflow="fold")
    for a, lam, values, _ in rows:
        coef = (values[0] - radii[0] ** 2) / radii[0] ** 4
        cells = [f"{a:g}", f"{lam:.6g}"] + [format_number(v, 7) for v in values]
        table.add_row(*cells, f"{coef:.6f}", f"{a * a:g}")
    return table


def _progress_rows():
    from rich.progress import Progress

    from ._table import GALLERY, comparison_rows

    total = sum(len(ex.pairs) for ex in GALLERY)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("comparing gallery points", total=total)
        rows = comparison_rows(lambda label: progress.update(task, advance=1, description=label))
    return rows


def _print_gallery(rows) -> None:
    from ._table import gallery_table, sam_table

    console.print(gallery_table(rows, console))
    console.print(sam_table(rows))


@app.command("table")
def table_cmd(markdown: Path = typer.Option(None, callback=output_file,
                                            help="also write the table to this Markdown file")) -> None:
    """Compare gallery points by every measure, side by side."""
    from ._table import rows_to_markdown

    rows = _progress_rows()
    _print_gallery(rows)
    if markdown is not None:
        markdown.write_text(rows_to_markdown(rows))
        console.print(f"Markdown written to {markdown}")


@app.command()
def demo(out: Path = typer.Option(Path("flatminima-demo"), callback=out_folder,
                                  help="output folder (created; its parent must exist)")) -> None:
    """Run the main demonstration and write its report into OUT."""
    out.mkdir(exist_ok=True)
    radii = (0.1, 0.03, 0.01)
    rows = figure1_variation_table(radii=radii)
    console.print(_figure1_table_rich(rows, radii))
    console.print("The Hessian's top eigenvalue is 2 at every (a, 0); the maximal variation "
                  "grows with |a|: (0, 0) is the flat minimum.")
    lines = ["# flatminima demo", "", "## Figure 1 function: maximal variation at minimizers", "",
             "| a | lambda_max | " + " | ".join(f"V(r={r:g})" for r in radii) + " |",
             "|---|---|" + "---|" * len(radii)]
    for a, lam, values, _ in rows:
        lines.append(f"| {a:g} | {lam:.6g} | " + " | ".join(f"{v:.10e}" for v in values) + " |")
    from rich.progress import Progress

    from ._table import rows_to_markdown

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Figure 1: gradient descent and flatness", total=2)
        fig = run_figure1(out)
        progress.update(task, advance=1)
        plain = run_figure1(out, normalized=False)
        progress.update(task, advance=1)
    lines += ["", "## Figure 1: normalized gradient descent drifts to the flat minimum", "",
              "![figure 1](figure1.png)", "",
              f"1000 steps of length (k+1)^(-1/6) from (3.2, 0.6): last point "
              f"{format_point(fig['last_point'])}, f = {fig['f_last']:.4g}; V(x, {fig['radius']}) went from "
              f"{fig['V_first']:.4g} to {fig['V_last']:.4g}; last relative to first: "
              f"**{fig['last_vs_first']}**.", "",
              f"Plain steps (k+1)^(-1/6) (not normalized) from the same start stop after "
              f"{plain['steps_taken']} steps: {plain['stop_reason']} (see figure1_plain.png).",
              ""]
    flat = run_flattening_example(out)
    lines += ["## Flattening flow of (xy - 1)^2 (conserved x^2 - y^2)", "",
              "![flattening flow](flattening_flow.png)", "",
              f"f drift {flat['f_drift']:.2e}; |Q| from {flat['Q_start']:.3g} to "
              f"{flat['Q_end']:.3g}; V(y, 0.01) from {flat['V_start']:.3g} to {flat['V_end']:.3g} "
              f"(monotone: {flat['monotone']}); end vs start: **{flat['end_vs_start']}**.", ""]
    study = _run_study_with_progress(12, 8, 3, out)
    console.print(_study_table(study))
    tf = study["special"]["trace_flat"]
    lines += ["## Matrix factorization (m=12, n=8, k=3)", "", "![factorization](factorization.png)",
              "", f"Balanced minimizer: λmax = {study['special']['balanced']['eigmax']:.6g} "
              f"(= 2 sigma_1); trace-flat minimizer (n X'X = m Y'Y): trace {tf['trace']:.6g} < "
              f"{study['special']['balanced']['trace']:.6g} but λmax {tf['eigmax']:.6g}; "
              f"relative to the balanced one it is **{tf['vs_balanced']}**.", ""]
    console.print(f"Figure 1: last point {format_point(fig['last_point'])}, last vs first: "
                  f"{fig['last_vs_first']}")
    rows = _progress_rows()
    _print_gallery(rows)
    lines += ["", "## Gallery: verdicts of every measure (x relative to y)", "",
              rows_to_markdown(rows)]
    from ._cli_user import run_study_with_progress
    from ._network_report import markdown_table, rich_table

    net = run_study_with_progress(out, quick=True)
    console.print(rich_table(net))
    lines += ["", "## Networks on digits: flatness as trained and balanced (quick study)", "",
              markdown_table(net)]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    console.print(f"report written to {out / 'report.md'}")


def run_figure1(out: Path, *, steps: int = 1000, radius: float = 0.1,
                normalized: bool = True) -> dict:
    """The paper's Figure 1: gradient descent with step length (k+1)^(-1/6) on
    x2^2 + x1^2 x2^4 from (3.2, 0.6); writes figure1.png and figure1.json into ``out``."""
    import json

    from . import compare, examples, max_variation
    from .flows import flatness_along, gradient_descent
    from .plotting import figure1_plot

    out.mkdir(parents=True, exist_ok=True)
    traj = gradient_descent(examples.figure1, [3.2, 0.6], steps,
                            step=lambda k: (k + 1.0) ** (-1.0 / 6.0), normalized=normalized)
    ks, vs = flatness_along(examples.figure1, traj, radius)
    name = "figure1" if normalized else "figure1_plain"
    figure1_plot(lambda z: z[1] ** 2 + z[0] ** 2 * z[1] ** 4, traj.points, ks, vs, radius,
                 out / f"{name}.png",
                 f"{'normalized' if normalized else 'plain'} GD, step (k+1)^(-1/6), "
                 f"{traj.steps_taken} steps")
    verdict = compare(examples.figure1, traj.points[-1], traj.points[0]).verdict
    summary = {
        "steps_taken": traj.steps_taken,
        "stop_reason": traj.reason,
        "last_point": traj.points[-1].tolist(),
        "f_last": float(traj.values[-1]),
        "radius": radius,
        "V_first": max_variation(examples.figure1, traj.points[0], radius).value,
        "V_last": max_variation(examples.figure1, traj.points[-1], radius).value,
        "last_vs_first": verdict,
    }
    (out / f"{name}.json").write_text(json.dumps(summary, indent=2))
    return summary


@app.command()
def figure1(out: Path = typer.Option(Path("."), callback=out_folder,
                                     help="output folder (created; its parent must exist)"),
            steps: int = typer.Option(1000, min=1, help="iterations"),
            radius: float = typer.Option(0.1, callback=positive,
                                         help="radius of V in the JSON and plot"),
            normalized: bool = typer.Option(True, "--normalized/--plain",
                                            help="normalized gradient steps, or plain ones")) -> None:
    """Reproduce the paper's Figure 1 (writes figure1.png and figure1.json, or
    figure1_plain.* with --plain)."""
    summary = run_figure1(out, steps=steps, radius=radius, normalized=normalized)
    name = "figure1" if normalized else "figure1_plain"
    console.print(summary)
    console.print(f"wrote {out / (name + '.png')} and {out / (name + '.json')}")


def run_flattening_example(out: Path) -> dict:
    """The flattening flow of (x y - 1)^2 with the conserved x^2 - y^2 from (3, 1/3)."""
    import jax.numpy as jnp

    from .flows import flattening_flow
    from .plotting import flattening_plot
    from .symmetry import conserved_quantities

    f = lambda z: (z[0] * z[1] - 1.0) ** 2
    quantities = conserved_quantities(f, jnp.ones(2))
    res = flattening_flow(f, quantities, jnp.array([3.0, 1.0 / 3.0]), t1=30.0)
    out.mkdir(parents=True, exist_ok=True)
    flattening_plot(lambda z: (z[0] * z[1] - 1.0) ** 2, res.points, res.flatness_times,
                    res.flatness, res.radius, out / "flattening_flow.png",
                    "flattening flow of (xy - 1)^2, conserved x^2 - y^2")
    return {"end": res.points[-1].tolist(), "f_drift": res.f_drift,
            "Q_start": float(res.target_distance[0]), "Q_end": float(res.target_distance[-1]),
            "V_start": float(res.flatness[0]), "V_end": float(res.flatness[-1]),
            "monotone": res.flatness_monotone, "end_vs_start": res.verdict_end_vs_start}


@app.command()
def symmetries(out: Path = typer.Option(Path("."), callback=out_folder,
                                        help="folder for flattening_flow.png (created; its parent "
                                             "must exist)")) -> None:
    """Symmetry algebras and conserved quantities of gallery functions, and a
    flattening-flow plot for (x y - 1)^2."""
    import jax

    from .examples import SYMMETRY_GALLERY
    from .symmetry import conserved_quantities, linear_symmetries

    table = Table(title="Linear symmetries (sampled null space) and conserved quadratic forms")
    for col in ("function", "n", "dim g_f", "expected", "conserved", "max residual"):
        table.add_column(col, overflow="fold")
    for name, f, x, space, expected in SYMMETRY_GALLERY:
        alg = linear_symmetries(f, x, space=space)
        cq = conserved_quantities(alg)
        n = sum(int(np.size(v)) for v in jax.tree_util.tree_leaves(x))
        res = f"{alg.residuals.max():.1e}" if alg.dim else "-"
        table.add_row(name, str(n), str(alg.dim), str(expected), str(cq.dim), res)
    console.print(table)
    summary = run_flattening_example(out)
    console.print(summary)
    console.print(f"wrote {out / 'flattening_flow.png'}")


def _run_study_with_progress(m, n, rank, out):
    from rich.progress import Progress

    from ._study import run_study

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("factorization study", total=14)
        summary = run_study(m, n, rank, out,
                            progress=lambda label: progress.update(task, advance=1,
                                                                   description=label))
    return summary


def _study_table(s) -> Table:
    rows = [[name, f"{row['imbalance']:.3g}", f"{row['eigmax']:.8g}", f"{row['trace']:.8g}",
             format_number(row["V"], 7), row.get("vs_balanced", "-")]
            for name, row in s["special"].items()]
    last = s["orbit"][-1]
    rows.append(["orbit, most unbalanced", f"{last['imbalance']:.3g}", f"{last['eigmax']:.8g}",
                 f"{last['trace']:.8g}", format_number(last["V"], 7), "-"])
    for label, g in s["gradient_descent"].items():
        rows.append([f"GD end ({label}), loss {format_number(g['loss_end'])}",
                     f"{g['imbalance'][-1]:.3g}", f"{g['eigmax_end']:.8g}", "-",
                     format_number(g["V_end"], 7), "-"])
    table = Table(title=f"Global minimizers of 1/2||XY' - M||^2 (m={s['m']}, n={s['n']}, "
                        f"k={s['rank']}, 2 sigma_1 = {2 * s['sigma_1']:.6g}); λmax and trace "
                        "of the Hessian")
    table.add_column("minimizer")
    for col in ("imbalance", "λmax", "trace", f"V(r={s['radius']:g})"):
        table.add_column(col, overflow="fold")  # a number is never cut short
    table.add_column("vs balanced", no_wrap=True)
    for r in rows:
        table.add_row(*r)
    return table


@app.command()
def factorization(m: int = typer.Option(50, min=1, help="rows of M"),
                  n: int = typer.Option(40, min=1, help="columns of M"),
                  rank: int = typer.Option(5, min=1, help="rank of M and inner dimension k, "
                                                          "at most min(m, n)"),
                  out: Path = typer.Option(Path("."), callback=out_folder,
                                           help="output folder (created; its parent must exist)")) -> None:
    """Study balanced and unbalanced global minimizers of matrix factorization."""
    if rank > min(m, n):
        raise typer.BadParameter(f"{rank} exceeds min(--m, --n) = {min(m, n)}; pass a rank "
                                 "at most min(m, n).", param_hint="'--rank'")
    s = _run_study_with_progress(m, n, rank, out)
    console.print(_study_table(s))
    console.print(f"flattening flow: imbalance {s['flow']['imbalance'][0]:.3g} -> "
                  f"{s['flow']['imbalance'][-1]:.3g}, end vs start: {s['flow']['end_vs_start']}")
    console.print(f"wrote {out / 'factorization.png'} and {out / 'factorization.json'}")


@app.command()
def variation(
    a: float = typer.Option(1.0, callback=finite, help="first coordinate of the minimizer (a, 0)"),
    radius: float = typer.Option(0.1, callback=positive, help="radius r"),
) -> None:
    """Maximal variation of the Figure 1 function at (a, 0)."""
    from . import examples, max_variation

    res = max_variation(examples.figure1, np.array([a, 0.0]), radius)
    console.print(res)


def _short_warning(message, category, filename, lineno, line=None) -> str:
    return f"{category.__name__}: {message}\n"


def main() -> None:
    """The ``flatminima`` command: the app, with warnings shown as one line each (their
    location, a line of the command's own code, means nothing to its user)."""
    warnings.formatwarning = _short_warning
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
