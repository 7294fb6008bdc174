"""The command line: bad arguments are one-line usage errors (exit 2) raised before any
computation; verdict words stay whole on an 80-column terminal; SAM is reported over seeds;
plot legends print numbers for people and stay off the markers."""

import re

import numpy as np
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

import flatminima
from flatminima import _study, _table, cli, plotting
from flatminima._table import SEED_DEPENDENT, Spread, TableRow

runner = CliRunner()


@pytest.fixture
def no_computation(monkeypatch):
    """Every computation a command can start raises: a bad argument must stop earlier."""

    def refuse(*args, **kwargs):
        raise AssertionError("computation started despite a bad argument")

    monkeypatch.setattr(_study, "run_study", refuse)
    monkeypatch.setattr(_table, "comparison_rows", refuse)
    monkeypatch.setattr(cli, "run_figure1", refuse)
    monkeypatch.setattr(cli, "run_flattening_example", refuse)
    monkeypatch.setattr(cli, "figure1_variation_table", refuse)
    monkeypatch.setattr(flatminima, "max_variation", refuse)


def _usage_error(result) -> str:
    """The single ``Error:`` line of a usage error (exit status 2, no traceback)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("Usage:") and lines[-1].startswith("Error: ")
    assert sum("Error" in line for line in lines) == 1
    return lines[-1]


BAD_ARGUMENTS = [
    (["variation", "--radius", "-1"], "--radius"),
    (["variation", "--radius", "0"], "--radius"),
    (["variation", "--radius", "nan"], "--radius"),
    (["variation", "--a", "inf"], "--a"),
    (["variation", "--a", "one"], "--a"),
    (["factorization", "--rank", "100", "--m", "5", "--n", "4"], "--rank"),
    (["factorization", "--m", "0"], "--m"),
    (["factorization", "--n", "-3"], "--n"),
    (["factorization", "--rank", "0"], "--rank"),
    (["factorization", "--out", "/no/such/dir/out"], "--out"),
    (["table", "--markdown", "/no/such/dir/table.md"], "--markdown"),
    (["table", "--markdown", "/no/such/dir"], "--markdown"),
    (["figure1", "--steps", "0"], "--steps"),
    (["figure1", "--steps", "1e3"], "--steps"),
    (["figure1", "--radius", "-0.1"], "--radius"),
    (["figure1", "--radius", "inf"], "--radius"),
    (["figure1", "--out", "/no/such/dir/out"], "--out"),
    (["symmetries", "--out", "/no/such/dir/out"], "--out"),
    (["demo", "--out", "/no/such/dir/out"], "--out"),
]


@pytest.mark.parametrize(("args", "option"), BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_bad_argument_is_a_one_line_usage_error_before_any_computation(args, option, no_computation):
    assert option in _usage_error(runner.invoke(cli.app, args))


def test_output_paths_that_are_files_or_folders_are_refused(tmp_path, no_computation):
    a_file = tmp_path / "report.txt"
    a_file.write_text("")
    assert "not a folder" in _usage_error(runner.invoke(cli.app, ["demo", "--out", str(a_file)]))
    assert "is a folder" in _usage_error(runner.invoke(cli.app, ["table", "--markdown", str(tmp_path)]))


def test_unknown_option_and_command_are_usage_errors():
    assert "--radiuss" in _usage_error(runner.invoke(cli.app, ["variation", "--radiuss", "1"]))
    assert "measure-all" in _usage_error(runner.invoke(cli.app, ["measure-all"]))


def test_library_value_error_is_a_one_line_usage_error():
    """f(1e200, 0) = 1e400 * 0 is NaN: the library refuses the point with a ValueError,
    which the command reports without a traceback."""
    assert "not finite" in _usage_error(runner.invoke(cli.app, ["variation", "--a", "1e200"]))


def test_every_registered_command_reports_library_errors():
    """Commands added to a group of this kind later get the same reporting."""
    app = typer.Typer(cls=cli._ReportedGroup, rich_markup_mode=None)

    @app.command()
    def bad_value() -> None:
        raise ValueError("x has shape (3,)\n but f needs (2,)")

    @app.command()
    def disk_full() -> None:
        raise OSError(28, "No space left on device")

    assert _usage_error(runner.invoke(app, ["bad-value"])) == (
        "Error: Invalid value: x has shape (3,) but f needs (2,)")
    result = runner.invoke(app, ["disk-full"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == "Error: [Errno 28] No space left on device"


def test_variation_command_prints_the_maximal_variation():
    """V((a, 0), r) of x2^2 + x1^2 x2^4 lies between f(a, r) = r^2 + a^2 r^4 (a feasible
    point) and r^2 + (|a| + r)^2 r^4 (each term bounded on the ball)."""
    result = runner.invoke(cli.app, ["variation", "--a", "0.5", "--radius", "0.1"])
    assert result.exit_code == 0, result.output
    value = float(re.search(r"value=([0-9.e+-]+)", result.output).group(1))
    assert 0.01 + 0.25e-4 * (1 - 1e-12) <= value <= 0.01 + 0.36e-4


def _synthetic_rows() -> list[TableRow]:
    verdicts = ["flatter", "sharper", "equivalent", SEED_DEPENDENT, "n/a (nonsmooth)",
                "tie (CI overlap)", "undetermined"]
    rows = []
    for i in range(7):
        v = {m: verdicts[(i + j) % len(verdicts)] for j, m in enumerate(_table.MEASURES)}
        spread = Spread((1e-3, 2e-3, 3e-3))
        rows.append(TableRow("factorization_rank1", (-0.687, -1.373, 0.0, -1.373, -1.456, -1.456),
                             (-0.816, -1.633, 0.0, -1.633, -1.225, -1.225),
                             ["flatter", "sharper", "equivalent"][i % 3], v,
                             {"sam": (spread, spread)}, {"sam": {"flatter": 5, "sharper": 3}}))
    return rows


def _words(text: str) -> list[str]:
    return re.findall(r"n/a|[a-z]+", text)


@pytest.mark.parametrize("width", [80, 60, 200])
def test_verdict_words_stay_whole_at_any_width(width):
    """Each verdict cell's word appears whole, as often as there are cells holding it,
    and no line is wider than the terminal."""
    rows = _synthetic_rows()
    console = Console(width=width, record=True, color_system=None)
    console.print(_table.gallery_table(rows, console))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= width
    cells = [r.expected for r in rows] + [r.verdicts[m] for r in rows for m in _table.MEASURES]
    shown = _words(text)
    for word in ("flatter", "sharper", "equivalent", "undetermined", "n/a", "tie"):
        assert shown.count(word) == sum(c.split(" (")[0] == word for c in cells), word


def test_wide_terminal_gets_one_line_per_pair():
    rows = _synthetic_rows()
    console = Console(width=250, record=True, color_system=None)
    table = _table.gallery_table(rows, console)
    assert len(table.columns) == 4 + len(_table.MEASURES) and table.row_count == len(rows)
    narrow = _table.gallery_table(rows, Console(width=80))
    assert [c.header for c in narrow.columns] == ["function, x, y", "measure", "verdict"]


def test_sam_verdict_over_seeds():
    """Where the gradient is nonzero SAM takes one deterministic step: at (1, 0) and (2, 0)
    of x^2 + y^2 it is (1.05^2 - 1, 2.05^2 - 4) = (0.1025, 0.2025) for every seed. On
    Figure 1's mirror pair (1, 0), (-1, 0) the first direction u is random and x is flatter
    exactly when u1 < 0: the seeds disagree and SAM gives no verdict."""
    bowl = lambda z: z[0] ** 2 + z[1] ** 2
    verdict, sx, sy, counts = _table._sam_over_seeds(bowl, (1.0, 0.0), (2.0, 0.0))
    assert verdict == "flatter" and counts == {"flatter": len(_table.SAM_SEEDS)}
    np.testing.assert_allclose(sx.values, 0.1025, rtol=1e-12)
    np.testing.assert_allclose(sy.values, 0.2025, rtol=1e-12)
    assert str(sx) == "0.103 ± 0"  # 1.05^2 - 1 = 0.10250000000000004
    verdict, sx, sy, counts = _table._sam_over_seeds(flatminima.examples.figure1, (1.0, 0.0),
                                                     (-1.0, 0.0))
    assert verdict == SEED_DEPENDENT and counts["flatter"] > 0 and counts["sharper"] > 0
    assert np.std(sx.values) > 0


def test_figure1_plot_legend_formats_numbers_and_leaves_the_start_marker_free(tmp_path, monkeypatch):
    """A diverging run: the last point (4.56e21, -1.82e22) prints in scientific notation,
    the start marker is drawn inside the axes and the legend box does not cover it."""
    saved = {}
    monkeypatch.setattr(plotting, "_save", lambda fig, out: saved.setdefault("fig", fig))
    points = np.array([[3.2, 0.6], [2.9, -9.5], [4.563e21, -1.818e22]])
    plotting.figure1_plot(lambda z: z[1] ** 2 + z[0] ** 2 * z[1] ** 4, points, np.arange(3),
                          np.array([1.3, 2e3, 1e21]), 0.1, tmp_path / "f.png", "diverging")
    fig = saved["fig"]
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "last (4.56e21, -1.82e22)" in labels and "start (3.2, 0.6)" in labels
    fig.canvas.draw()
    start = ax.transData.transform(points[0])
    assert ax.get_window_extent().contains(*start)
    assert not ax.get_legend().get_window_extent().contains(*start)
    plotting.plt.close(fig)


def test_number_tables_keep_every_number_whole_at_80_columns():
    """The Figure 1 and factorization tables on an 80-column terminal: every number
    appears unbroken (no fold, no ellipsis)."""
    radii = (0.1, 0.03, 0.01)
    values = {0.0: [1e-2, 9e-4, 1e-4], 0.5: [1.0025002488e-2, 9.0020250016e-4, 1.000025e-4],
              1.0: [1.0100009805e-2, 9.0081000065e-4, 1.0001e-4],
              2.0: [1.040003704e-2, 9.0324000261e-4, 1.0004e-4]}
    rows = [(a, 2.0, v, None) for a, v in values.items()]
    point = {"imbalance": 4.3, "eigmax": 20.412415, "trace": 277.52283, "V": 0.0010228354}
    study = {"m": 12, "n": 8, "rank": 3, "sigma_1": 10.0, "radius": 0.01,
             "special": {"balanced": point, "trace_flat": dict(point, vs_balanced="sharper")},
             "orbit": [point],
             "gradient_descent": {"small init": {"imbalance": [4.05e-5], "eigmax_end": 20.0,
                                                 "V_end": 0.0010022373, "loss_end": 5.26e-30}}}
    console = Console(width=80, record=True, color_system=None)
    console.print(cli._figure1_table_rich(rows, radii))
    console.print(cli._study_table(study))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    for number in ("0.01010001", "9.002025e-4", "1.000025e-4", "0.01040004", "0.250025",
                   "0.001022835", "0.001002237", "277.52283", "20.412415", "sharper"):
        assert number in text, number
