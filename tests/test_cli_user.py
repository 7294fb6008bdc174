"""The measure and compare commands on a user's own loss and files, and their errors."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import flatminima as fm
from flatminima._network_report import markdown_table
from flatminima._network_study import _pairwise_agreement, _positions, findings
from flatminima.cli import app

LOSS = """
import jax.numpy as jnp

def loss(p):
    return jnp.sum(p["w"] ** 2 * (1 + p["w"] ** 2)) + 3 * (p["b"][0] - 1.0) ** 2

def data_loss(p, batch):
    return jnp.mean((batch["X"] @ p - batch["y"]) ** 2)
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A fresh directory with a loss module (its own name: modules are cached) and points."""
    name = f"userloss_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(LOSS))
    np.savez(tmp_path / "a.npz", w=np.zeros(3), b=np.ones(1))
    np.savez(tmp_path / "b.npz", w=np.array([0.3, 0.0, 0.0]), b=np.ones(1))
    np.savez(tmp_path / "c.npz", w=np.zeros(4), b=np.ones(1))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    np.savez(tmp_path / "batch.npz", X=X, y=X @ np.ones(3))
    np.save(tmp_path / "p.npy", np.array([1.0, 0.5, 2.0]))
    monkeypatch.chdir(tmp_path)
    return name


def run(*args):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_measure_reports_the_maximal_variation_as_json(project):
    code, out = run("measure", "--loss", f"{project}:loss", "--x", "a.npz", "--radius", "0.05",
                    "--json")
    assert code == 0
    payload = json.loads(out)
    # at (w, b) = (0, 1) the loss is a quadratic 3 r^2 plus quartic terms: V(x, r) = 3 r^2
    assert payload["results"][0]["V_lower"] == pytest.approx(3 * 0.05**2, rel=1e-10)
    assert payload["f"] == 0.0 and payload["n"] == 4


def test_measure_with_a_batch_matches_the_library(project):
    code, out = run("measure", "--loss", f"{project}:data_loss", "--x", "p.npy", "--batch",
                    "batch.npz", "--radius", "0.1", "--json")
    assert code == 0
    data = np.load("batch.npz")
    f = lambda p: jnp.mean((data["X"] @ p - data["y"]) ** 2)
    expected = fm.max_variation(f, np.load("p.npy"), 0.1)
    assert json.loads(out)["results"][0]["V_lower"] == pytest.approx(expected.value, rel=1e-10)
    assert json.loads(out)["results"][0]["V_upper"] is not None  # exact quadratic solver


def test_compare_says_which_point_is_flatter(project):
    code, out = run("compare", "--loss", f"{project}:loss", "--x", "a.npz", "--y", "b.npz",
                    "--json")
    assert code == 0 and json.loads(out)["verdict"] == "flatter"
    code, out = run("compare", "--loss", f"{project}:loss", "--x", "b.npz", "--y", "a.npz")
    assert code == 0 and "sharper than" in out
    # b is not a critical point: the library's warning comes as one note line, naming the
    # command's own option, and the curvature verdict is printed beside
    assert any(line.startswith("note: ") and "critical point" in line
               for line in out.splitlines())
    assert "pass --critical" in " ".join(out.split()) and "curvature verdict" in out
    code, out = run("compare", "--loss", f"{project}:loss", "--x", "b.npz", "--y", "a.npz",
                    "--critical", "--json")
    crit = json.loads(out)["critical"]
    # BFGS from b reaches the minimizer a itself: the critical points are equivalent
    assert code == 0 and crit["verdict"] == "equivalent" and crit["converged"]


@pytest.mark.parametrize("args, message", [
    (("measure", "--loss", "{m}:loss", "--x", "missing.npz"), "no such file"),
    (("measure", "--loss", "nosuchmodule_xyz:loss", "--x", "a.npz"), "cannot import"),
    (("measure", "--loss", "{m}:nofunction", "--x", "a.npz"), "no callable"),
    (("measure", "--loss", "{m}", "--x", "a.npz"), "module:function"),
    (("measure", "--loss", "{m}:data_loss", "--x", "p.npy"), "pass --batch"),
    (("measure", "--loss", "{m}:loss", "--x", "p.npy"), "f raised"),
    (("measure", "--loss", "{m}:loss", "--x", "a.npz", "--radius", "-1"), "positive"),
    (("measure", "--loss", "{m}:loss", "--x", "a.npz", "--norm", "l3"), "l2 or linf"),
    (("compare", "--loss", "{m}:loss", "--x", "a.npz", "--y", "c.npz"), "differ in shape"),
])
def test_mistakes_are_one_line_errors_with_status_2(project, args, message):
    code, out = run(*[a.format(m=project) for a in args])
    assert code == 2
    assert message in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1


def test_measure_in_a_fresh_process_and_directory(project):
    src = Path(fm.__file__).parents[1]
    env = {"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "flatminima.cli", "measure", "--loss", f"{project}:loss",
           "--x", "a.npz", "--radius", "0.05"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and "proven lower bound" in done.stdout
    assert done.stderr == ""


def test_state_dict_points(project):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.zeros(3, dtype=torch.float64), "b": torch.ones(1)}, "m.pt")
    code, out = run("measure", "--loss", f"{project}:loss", "--x", "m.pt", "--json")
    assert code == 0 and json.loads(out)["results"][0]["V_lower"] == pytest.approx(
        3 * 0.05**2, rel=1e-10)


def test_study_summaries_from_rankings():
    assert _positions([[2], [0, 1]], 3) == [2, 2, 1]
    a = [["equivalent", "flatter"], ["sharper", "equivalent"]]
    b = [["equivalent", "undetermined"], ["sharper", "equivalent"]]
    assert _pairwise_agreement(a, a) == 1.0 and _pairwise_agreement(a, b) == 0.5
    net = {"arch": "mlp", "batch": 32, "optimizer": "sgd", "seed": 0, "train_acc": 1.0,
           "test_acc": 0.9, "loss": 0.1, "loss_balanced": 0.1, "grad_norm": 0.01,
           "output_change": 1e-16, "imbalance_after": 1e-15, "V_trained": 2e-3,
           "V_balanced": 1e-3, "V_curvature": 5e-4, "rank": 1, "eigmax": 2.0,
           "eigmax_bal": 1.0, "trace": 5.0, "keskar": 0.1, "sam": 1e-3, "adaptive": 1e-3}
    summary = {"networks": [net, dict(net, test_acc=0.8, V_balanced=3e-3)], "radii": [0.01],
               "rankings": {"mlp": {"seed_agreement": [1.0], "groups_by_seed": [[[0], [1]]] * 2}},
               "correlations": {"mlp": {}}, "orbit": None}
    lines = findings(summary)
    assert "decreased under balancing at 1 of 2 networks" in lines[1]
    assert "100% of pairwise verdicts" in lines[2]
    summary["findings"] = lines
    assert markdown_table(summary).count("| mlp |") == 2
