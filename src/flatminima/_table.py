"""The side-by-side table: the flatness preorder next to the classical measures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import sharpness
from ._order import compare
from .examples import GALLERY


def _verdict_smaller_is_flatter(a: float, b: float, rtol: float = 1e-6) -> str:
    if abs(a - b) <= rtol * max(abs(a), abs(b), 1e-12):
        return "equivalent"
    return "flatter" if a < b else "sharper"


def _short(point) -> tuple:
    return tuple(round(float(t), 3) for t in point)


@dataclass(frozen=True)
class TableRow:
    function: str
    x: tuple
    y: tuple
    expected: str
    verdicts: dict


MEASURES = ("flatness", "hessian_eigmax", "hessian_trace", "keskar", "sam", "sublevel_volume")


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
            v["sam"] = _verdict_smaller_is_flatter(sharpness.sam_sharpness(ex.f, x).value,
                                                   sharpness.sam_sharpness(ex.f, y).value)
            vx = sharpness.sublevel_volume(ex.f, x, 1e-2, 0.5)
            vy = sharpness.sublevel_volume(ex.f, y, 1e-2, 0.5)
            # larger volume is flatter; overlapping 95% intervals: no verdict
            if vx.interval[0] > vy.interval[1]:
                v["sublevel_volume"] = "flatter"
            elif vy.interval[0] > vx.interval[1]:
                v["sublevel_volume"] = "sharper"
            else:
                v["sublevel_volume"] = "tie (CI overlap)"
            rows.append(TableRow(ex.name, _short(x), _short(y), expected, v))
    return rows


def rows_to_markdown(rows: list[TableRow]) -> str:
    head = "| function | x | y | true | " + " | ".join(MEASURES) + " |"
    sep = "|" + "---|" * (4 + len(MEASURES))
    lines = [head, sep]
    for row in rows:
        cells = [row.function, str(row.x), str(row.y), row.expected] + [
            row.verdicts[m] for m in MEASURES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def agreement(rows: list[TableRow]) -> dict:
    """Fraction of rows where each measure's verdict equals the true germ verdict."""
    return {m: float(np.mean([r.verdicts[m] == r.expected for r in rows])) for m in MEASURES}
