"""The ``measure``, ``compare`` and ``study`` commands: flatness of the user's own
objective at points stored in files, and the network study.

``--loss module:function`` names a Python callable ``loss(params)`` or
``loss(params, batch)`` (``--batch FILE``), JAX-traceable; ``module`` is importable from
the current directory or is a path to a ``.py`` file. Points are ``.npy`` (one array),
``.npz`` (a dict of arrays, by name) or a PyTorch ``state_dict`` saved with
``torch.save`` (``.pt``/``.pth``: a dict of float64 arrays, by name).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import typer
from rich.console import Console

# Piped output (a file, a log) is not cut to 80 columns; COLUMNS still sets the width.
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)
errors = Console(stderr=True)


class UsageError(Exception):
    """A mistake in the command line: printed as one line, exit status 2."""


def _fail(message: str) -> None:
    errors.print(f"Error: {' '.join(str(message).split())}", markup=False, highlight=False,
                 soft_wrap=True)
    raise typer.Exit(2)


def load_callable(spec: str):
    """``module:function`` (or ``path/to/file.py:function``) to the callable."""
    module, sep, name = spec.rpartition(":")
    if not sep or not module or not name:
        raise UsageError(f"--loss must be module:function (e.g. mypkg:loss), got {spec!r}")
    try:
        if module.endswith(".py"):
            path = Path(module)
            if not path.is_file():
                raise UsageError(f"--loss: no such file {module!r}")
            mod_spec = importlib.util.spec_from_file_location(path.stem, path)
            if mod_spec is None or mod_spec.loader is None:
                raise UsageError(f"--loss: cannot load {module!r} as a Python file")
            mod = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(mod)
        else:
            if str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            mod = importlib.import_module(module)
    except UsageError:
        raise
    except Exception as err:
        raise UsageError(f"--loss: cannot import {module!r}: {type(err).__name__}: {err}") from err
    fn = getattr(mod, name, None)
    if fn is None or not callable(fn):
        raise UsageError(f"--loss: module {module!r} has no callable {name!r}")
    return fn


def load_point(path: Path, option: str):
    """An array (``.npy``) or a dict of float64 arrays (``.npz``, PyTorch state_dict)."""
    if not path.is_file():
        raise UsageError(f"{option}: no such file {str(path)!r}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            point = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                point = {k: data[k] for k in data.files}
        elif suffix in (".pt", ".pth"):
            point = _load_state_dict(path)
        else:
            raise UsageError(f"{option}: {str(path)!r} is not .npy, .npz, .pt or .pth")
    except UsageError:
        raise
    except Exception as err:
        raise UsageError(f"{option}: cannot read {str(path)!r}: {type(err).__name__}: {err}") from err
    leaves = list(point.values()) if isinstance(point, dict) else [point]
    if not leaves:
        raise UsageError(f"{option}: {str(path)!r} holds no arrays")
    for leaf in leaves:
        if not np.issubdtype(np.asarray(leaf).dtype, np.number):
            raise UsageError(f"{option}: {str(path)!r} holds non-numeric data")
    if isinstance(point, dict):
        return {k: np.asarray(v, dtype=float) for k, v in point.items()}
    return np.asarray(point, dtype=float)


def _load_state_dict(path: Path) -> dict:
    try:
        import torch
    except ImportError as err:
        raise UsageError("reading .pt files needs PyTorch: pip install flatminima[torch]") from err
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a pickled model, or anything but tensors, is not loaded
        raise UsageError(f"{str(path)!r} is not a state_dict ({type(err).__name__} when loading "
                         f"it as tensors only); save one with torch.save(model.state_dict(), "
                         f"path)") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise UsageError(f"{str(path)!r} is not a state_dict (a dict of tensors); save one with "
                         "torch.save(model.state_dict(), path)")
    return {k: v.detach().double().numpy() for k, v in state.items()}


def _batch_note(batch: Path | None) -> str:
    """What the --batch file holds, for an error of the loss on it."""
    if batch is None:
        return ""
    try:
        return f"; --batch {batch} holds {_shape_of(load_point(batch, '--batch'))}"
    except UsageError:
        return ""


def _shape_of(point) -> str:
    if isinstance(point, dict):
        return "{" + ", ".join(f"{k}: {v.shape}" for k, v in point.items()) + "}"
    return str(point.shape)


def build_objective(loss: str, batch: Path | None):
    """The user's loss as a function of the parameters alone (batch bound)."""
    fn = load_callable(loss)
    try:
        required = [p for p in inspect.signature(fn).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                           p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        required = []
    if batch is None:
        if len(required) >= 2:
            raise UsageError(f"--loss {loss} takes (params, batch); pass --batch FILE")
        return fn
    data = load_point(batch, "--batch")
    if len(required) == 1:
        raise UsageError(f"--loss {loss} takes only params, but --batch was given")
    return lambda params: fn(params, data)


def _norm(norm: str) -> str:
    if norm not in ("l2", "linf"):
        raise UsageError(f"--norm must be l2 or linf, got {norm!r}")
    return norm


def _radii(radius: list[float]) -> list[float]:
    for r in radius:
        if not np.isfinite(r) or r <= 0:
            raise UsageError(f"--radius must be positive and finite, got {r}")
    return radius


def measure(loss: str = typer.Option(..., help="module:function, loss(params[, batch])"),
            x: Path = typer.Option(..., help="the point: .npy, .npz or a PyTorch state_dict"),
            radius: list[float] = typer.Option([0.05], help="radius of the ball (repeatable)"),
            norm: str = typer.Option("l2", help="l2 or linf"),
            batch: Path = typer.Option(None, help="data passed as loss(params, batch)"),
            seed: int = typer.Option(0, min=0, help="seed of the solver's random starts"),
            as_json: bool = typer.Option(False, "--json", help="print JSON only")) -> None:
    """Maximal variation V(x, r) of your loss at your point, with what it proves."""
    import jax
    from jax.flatten_util import ravel_pytree

    from ._variation import max_variation

    try:
        f = build_objective(loss, batch)
        point = load_point(x, "--x")
        radii, nrm = _radii(radius), _norm(norm)
    except UsageError as err:
        _fail(str(err))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = [max_variation(f, point, r, norm=nrm, seed=seed) for r in radii]
        flat, unravel = ravel_pytree(point)
        g = ravel_pytree(jax.grad(lambda v: f(unravel(v)))(flat))[0]
    except (ValueError, TypeError) as err:
        _fail(f"{err} (--x {x} holds {_shape_of(point)}{_batch_note(batch)})")
    notes = _notes(caught)
    fx = float(f(point))
    gnorm = float(np.abs(g).sum() if norm == "linf" else np.linalg.norm(g))
    rows = [{"radius": r, "V_lower": res.value, "V_upper": res.upper, "method": res.method,
             "n_evals": res.n_evals} for r, res in zip(radii, results)]
    payload = {"loss": loss, "x": str(x), "n": int(flat.size), "norm": norm, "f": fx,
               "grad_dual_norm": gnorm, "results": rows, "warnings": notes,
               "proves": "V_lower is f(y) - f(x) at a point y of the ball: a proven lower bound "
                         "on V; V_upper (when not null) a proven upper bound"}
    if as_json:
        print(json.dumps(payload))
        return
    console.print(f"f(x) = {fx:.10g} at {x} ({flat.size} parameters); ‖∇f(x)‖_* = {gnorm:.6g} "
                  f"({norm} ball: V(x, r) = ‖∇f‖_* r + o(r))")
    for row in rows:
        upper = ("no upper bound proven by this method" if row["V_upper"] is None
                 else f"V <= {row['V_upper']:.10g} (proven upper bound)")
        console.print(f"V(x, {row['radius']:g}) >= {row['V_lower']:.10g}  (f at a point of the "
                      f"ball: a proven lower bound); {upper}; {row['method']}, "
                      f"{row['n_evals']} evaluations")
    _print_notes(notes)


def _notes(caught) -> list[str]:
    """The library's warnings, each as one line (printed after the result, and in JSON)."""
    return list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        console.print(f"note: {note}", markup=False, highlight=False)


def compare_cmd(loss: str = typer.Option(..., help="module:function, loss(params[, batch])"),
                x: Path = typer.Option(..., help="first point (.npy, .npz, state_dict)"),
                y: Path = typer.Option(..., help="second point, same structure as x"),
                radius: float = typer.Option(None, help="largest radius of the grid (default "
                                                        "0.1 (1 + max |x_i|))"),
                norm: str = typer.Option("l2", help="l2 or linf"),
                batch: Path = typer.Option(None, help="data passed as loss(params, batch)"),
                critical: bool = typer.Option(False, "--critical", help="also compare the "
                                              "critical points reached by BFGS from x and y"),
                as_json: bool = typer.Option(False, "--json", help="print JSON only")) -> None:
    """Is x flatter than y? The germ preorder of V on shrinking radii, with its evidence."""
    from ._order import compare

    try:
        f = build_objective(loss, batch)
        px, py = load_point(x, "--x"), load_point(y, "--y")
        if _shape_of(px) != _shape_of(py):
            raise UsageError(f"--x and --y differ in shape: {_shape_of(px)} vs {_shape_of(py)}")
        radii = None if radius is None else float(_radii([radius])[0]) * np.logspace(0, -2.5, 9)
        nrm = _norm(norm)
    except UsageError as err:
        _fail(str(err))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = compare(f, px, py, radii, norm=nrm, critical=critical)
    except (ValueError, TypeError) as err:
        _fail(f"{err} (--x {x} holds {_shape_of(px)}{_batch_note(batch)})")
    notes = [note.replace("pass critical=True", "pass --critical") for note in _notes(caught)]
    crit = res.critical
    payload = {"verdict": res.verdict, "reason": res.reason, "leading_order": res.leading,
               "curvature_verdict": res.curvature_verdict,
               "critical": None if crit is None else {
                   "verdict": crit.verdict, "moved_x": crit.moved_x, "moved_y": crit.moved_y,
                   "decrease_x": crit.decrease_x, "decrease_y": crit.decrease_y,
                   "converged": crit.converged, "message": crit.message},
               "crossing": res.crossing, "radii": res.radii.tolist(),
               "V_x": res.profile_x.values.tolist(), "V_y": res.profile_y.values.tolist(),
               "warnings": notes,
               "proves": "V values are lower bounds from the solver; the verdict reads the sign "
                         "of V(x, r) - V(y, r) at the smallest radii beyond its tolerance"}
    if as_json:
        print(json.dumps(payload))
        return
    relation = {"flatter": "flatter than", "sharper": "sharper than",
                "equivalent": "equivalent to"}.get(res.verdict, "undetermined relative to")
    console.print(f"x = {x} is [bold]{relation}[/] y = {y}: {res.reason}; leading order "
                  f"(alpha, c): {res.leading}")
    for r, vx, vy in zip(res.radii, payload["V_x"], payload["V_y"]):
        console.print(f"  r = {r:.4g}: V(x, r) = {vx:.10g}   V(y, r) = {vy:.10g}")
    if res.crossing is not None:
        console.print(f"the profiles cross near r = {res.crossing:.3g}")
    if res.first_order_dominates:
        console.print(f"curvature verdict (V - ||grad f||_* r): x is {res.curvature_verdict}")
    if crit is not None:
        console.print(f"critical points reached by BFGS (moved {crit.moved_x:.3g} from x, "
                      f"{crit.moved_y:.3g} from y): x* is {crit.verdict} relative to y*; "
                      f"{crit.message}")
    _print_notes(notes)


def study(quick: bool = typer.Option(False, "--quick", help="about a minute: one MLP, four "
                                                            "networks"),
          out: Path = typer.Option(Path("network-study"), help="output folder"),
          seed: int = typer.Option(0, min=0, help="seed of the data split and the training")) -> None:
    """Train networks on digits; their flatness as trained and balanced, the classical
    measures and test accuracy (table, JSON, plots)."""
    summary = run_study_with_progress(out, quick=quick, seed=seed)
    from ._network_report import rich_table

    console.print(rich_table(summary))
    for line in summary["findings"]:
        console.print(f"- {line}", markup=False)
    console.print(f"wrote {out / 'network_study.md'}, network_study.json, "
                  "flatness_vs_accuracy.png and rescaling_orbit.png")


def run_study_with_progress(out: Path, *, quick: bool, seed: int = 0) -> dict:
    """:func:`run_network_study` with a progress bar."""
    from rich.progress import Progress

    from ._network_study import FULL, QUICK, run_network_study, study_ticks

    try:
        import sklearn  # noqa: F401
    except ImportError:
        _fail("the study needs scikit-learn: pip install scikit-learn")
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("network study", total=study_ticks(QUICK if quick else FULL))
        return run_network_study(out, quick=quick, seed=seed,
                                 progress=lambda label: progress.update(task, advance=1,
                                                                        description=label))


def register(app: typer.Typer) -> None:
    """Add ``measure``, ``compare`` and ``study`` to the ``flatminima`` command."""
    app.command("measure")(measure)
    app.command("compare")(compare_cmd)
    app.command("study")(study)
