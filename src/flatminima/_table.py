"""The side-by-side table: the flatness preorder next to the classical measures."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import sharpness
from ._order import compare
from .examples import GALLERY
from .plotting import format_number

#: SAM starts from a random direction where the gradient vanishes: it is drawn with these seeds.
SAM_SEEDS = tuple(range(8))
SEED_DEPENDENT = "undetermined (seed-dependent)"


def _verdict_smaller_is_flatter(a: float, b: float, rtol: float = 1e-6) -> str:
    if abs(a - b) <= rtol * max(abs(a), abs(b), 1e-12):
        return "equivalent"
    return "flatter" if a < b else "sharper"


def _short(point) -> tuple:
    return tuple(round(float(t), 3) for t in point)


@dataclass(frozen=True)
class Spread:
    """Values of a randomized measure at one point, one per seed."""

    values: tuple

    def __str__(self) -> str:
        return f"{format_number(np.mean(self.values))} ± {format_number(np.std(self.values, ddof=1))}"


@dataclass(frozen=True)
class TableRow:
    """One pair: the verdict of x relative to y by each measure. ``spreads`` holds, for a
    measure drawn over seeds, its values at x and at y; ``seed_verdicts`` how many seeds
    gave each verdict."""

    function: str
    x: tuple
    y: tuple
    expected: str
    verdicts: dict
    spreads: dict = field(default_factory=dict)
    seed_verdicts: dict = field(default_factory=dict)


MEASURES = ("flatness", "hessian_eigmax", "hessian_trace", "keskar", "sam", "sublevel_volume")
HEADERS = {"flatness": "flatness", "hessian_eigmax": "λmax", "hessian_trace": "trace",
           "keskar": "Keskar", "sam": "SAM", "sublevel_volume": "volume"}


def _sam_over_seeds(f, x, y) -> tuple[str, Spread, Spread, Counter]:
    """SAM at x and y with the same seed (the same first direction at a zero gradient),
    for every seed in ``SAM_SEEDS``: the common verdict, or ``SEED_DEPENDENT`` when the
    seeds disagree."""
    sx = [sharpness.sam_sharpness(f, x, seed=s).value for s in SAM_SEEDS]
    sy = [sharpness.sam_sharpness(f, y, seed=s).value for s in SAM_SEEDS]
    counts = Counter(_verdict_smaller_is_flatter(a, b) for a, b in zip(sx, sy))
    verdict = next(iter(counts)) if len(counts) == 1 else SEED_DEPENDENT
    return verdict, Spread(tuple(sx)), Spread(tuple(sy)), counts


def comparison_rows(progress=None) -> list[TableRow]:
    """One row per (gallery function, pair of points): the verdict of x relative to y by
    every measure. ``progress`` is called with each row's label when given."""
    rows = []
    for ex in GALLERY:
        for x, y, expected in ex.pairs:
            if progress is not None:
                progress(f"{ex.name} {x} vs {y}")
            v = {"flatness": compare(ex.f, x, y).verdict}
            if ex.smooth:
                v["hessian_eigmax"] = _verdict_smaller_is_flatter(
                    sharpness.hessian_eigmax(ex.f, x).value, sharpness.hessian_eigmax(ex.f, y).value)
                v["hessian_trace"] = _verdict_smaller_is_flatter(
                    sharpness.hessian_trace(ex.f, x).value, sharpness.hessian_trace(ex.f, y).value)
            else:
                v["hessian_eigmax"] = v["hessian_trace"] = "n/a (nonsmooth)"
            v["keskar"] = _verdict_smaller_is_flatter(sharpness.keskar_sharpness(ex.f, x).value,
                                                      sharpness.keskar_sharpness(ex.f, y).value)
            v["sam"], sam_x, sam_y, sam_counts = _sam_over_seeds(ex.f, x, y)
            vx = sharpness.sublevel_volume(ex.f, x, 1e-2, 0.5)
            vy = sharpness.sublevel_volume(ex.f, y, 1e-2, 0.5)
            # larger volume is flatter; overlapping 95% intervals: no verdict
            if vx.interval[0] > vy.interval[1]:
                v["sublevel_volume"] = "flatter"
            elif vy.interval[0] > vx.interval[1]:
                v["sublevel_volume"] = "sharper"
            else:
                v["sublevel_volume"] = "tie (CI overlap)"
            rows.append(TableRow(ex.name, _short(x), _short(y), expected, v,
                                 {"sam": (sam_x, sam_y)}, {"sam": dict(sam_counts)}))
    return rows


def _seed_counts(row: TableRow) -> str:
    counts = row.seed_verdicts["sam"]
    return ", ".join(f"{counts[word]} {word}" for word in ("flatter", "equivalent", "sharper")
                     if word in counts)


def rows_to_markdown(rows: list[TableRow]) -> str:
    """The verdict table, then SAM's values over seeds, in Markdown."""
    head = "| function | x | y | true | " + " | ".join(MEASURES) + " |"
    sep = "|" + "---|" * (4 + len(MEASURES))
    lines = [head, sep]
    for row in rows:
        cells = [row.function, str(row.x), str(row.y), row.expected] + [
            row.verdicts[m] for m in MEASURES]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"SAM (rho = 0.05) over seeds {SAM_SEEDS[0]}-{SAM_SEEDS[-1]}, the same seed at "
              "x and y; a verdict only when every seed gives it.", "",
              "| function | x | y | SAM(x) mean ± sd | SAM(y) mean ± sd | verdicts by seed |",
              "|---|---|---|---|---|---|"]
    for row in rows:
        sx, sy = row.spreads["sam"]
        lines.append(f"| {row.function} | {row.x} | {row.y} | {sx} | {sy} | {_seed_counts(row)} |")
    return "\n".join(lines) + "\n"


def agreement(rows: list[TableRow]) -> dict:
    """Fraction of rows where each measure's verdict equals the true germ verdict."""
    return {m: float(np.mean([r.verdicts[m] == r.expected for r in rows])) for m in MEASURES}


_COLOUR = {"flatter": "green", "sharper": "red", "equivalent": "cyan"}
_TITLE = ("x relative to y: the flatness preorder and the classical measures "
          "(magenta: contradicts the true verdict; yellow: no verdict)")


def _cell(verdict: str, expected: str) -> str:
    """The verdict's first word (``n/a``, ``tie``, ``undetermined`` drop their reason),
    coloured by whether it agrees with the true verdict."""
    if verdict == expected:
        style = _COLOUR.get(verdict, "yellow")
    else:
        style = "bold magenta" if verdict in _COLOUR else "yellow"
    return f"[{style}]{verdict.split(' (')[0]}[/]"


def gallery_table(rows: list[TableRow], console: Console) -> Table:
    """The verdicts for ``console``: one row per pair where the console is wide enough to
    show every verdict word whole, else one block per pair with a line per measure."""
    cells = [[_cell(r.expected, r.expected)] + [_cell(r.verdicts[m], r.expected) for m in MEASURES]
             for r in rows]
    headers = ("true",) + tuple(HEADERS[m] for m in MEASURES)
    wide = Table(title=_TITLE)
    for col in ("function", "x", "y"):
        wide.add_column(col, overflow="fold", min_width=8)
    for j, col in enumerate(headers):
        longest = max([len(col)] + [len(Text.from_markup(c[j])) for c in cells])
        wide.add_column(col, no_wrap=True, min_width=longest)
    for r, row_cells in zip(rows, cells):
        wide.add_row(r.function, str(r.x), str(r.y), *row_cells)
    # each column: its minimum width, two of padding and one of border; one more border
    if sum(c.min_width + 3 for c in wide.columns) + 1 <= console.width:
        return wide
    narrow = Table(title=_TITLE, show_lines=True)
    narrow.add_column("function, x, y", overflow="fold")
    narrow.add_column("measure", no_wrap=True)
    narrow.add_column("verdict", no_wrap=True)
    for r, row_cells in zip(rows, cells):
        narrow.add_row(f"{r.function}\nx = {r.x}\ny = {r.y}", "\n".join(headers),
                       "\n".join(row_cells))
    return narrow


def sam_table(rows: list[TableRow]) -> Table:
    """SAM's values over seeds at each pair, and how many seeds gave each verdict."""
    table = Table(title=f"SAM (rho = 0.05), mean ± sd over {len(SAM_SEEDS)} seeds, the same seed "
                        "at x and y")
    table.add_column("function: x vs y", overflow="fold", min_width=12)
    for col in ("SAM(x)", "SAM(y)"):
        table.add_column(col, no_wrap=True)
    table.add_column("verdicts by seed", min_width=12)
    for r in rows:
        sx, sy = r.spreads["sam"]
        table.add_row(f"{r.function}: {r.x} vs {r.y}", str(sx), str(sy), _seed_counts(r))
    return table
