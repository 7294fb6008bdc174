"""Results people can use: float(result) for one-number results, a readable repr that
shows arrays by shape, and a JSON-safe to_dict() (NaN -> None, inf -> "inf")."""

import json
import math

import numpy as np

import flatminima as fm
from flatminima import sharpness as sh
from flatminima._report import jsonable

FIG1 = lambda y: y[1] ** 2 + y[0] ** 2 * y[1] ** 4


def test_one_number_results_convert_with_float():
    q = fm.Quadratic(np.diag([2.0, -1.0]))
    res = fm.max_variation(q, [0.0, 0.0], 0.5)
    assert float(res) == res.value == 0.25  # lambda_max r^2 / 2, exact
    dist = fm.level_distance(q, [0.0, 0.0], 0.25)
    assert math.isclose(float(dist), 0.5, rel_tol=1e-9)
    assert float(sh.hessian_trace(q, [0.0, 0.0])) == 1.0


def test_repr_is_readable_and_to_dict_is_json():
    comp = fm.compare(FIG1, [0.0, 0.0], [1.0, 0.0], radii=[0.1, 0.05, 0.02])
    text = repr(comp)
    assert text.startswith("Comparison(verdict='flatter'") and "array(shape=(3,)" in text
    assert "\n" not in text and len(text) < 1000
    data = json.loads(json.dumps(comp.to_dict()))
    assert data["verdict"] == "flatter"
    assert np.allclose(data["difference"], comp.difference)
    assert data["profile_x"]["radii"] == [0.1, 0.05, 0.02]
    traj = fm.gradient_descent(FIG1, [1.0, 1.0], 2)
    assert json.loads(json.dumps(traj.to_dict()))["points"] == traj.points.tolist()


def test_jsonable_maps_non_finite_numbers_and_arrays():
    out = jsonable({"a": np.array([1.0, np.nan, np.inf, -np.inf]), "b": (np.int64(3), None),
                    "c": np.float32(0.5), "d": np.bool_(True)})
    assert out == {"a": [1.0, None, "inf", "-inf"], "b": [3, None], "c": 0.5, "d": True}
    json.dumps(out, allow_nan=False)
