"""flatminima changes nothing global: float64 only inside its own calls (run in a
subprocess, since the test session itself enables x64 in conftest.py)."""

import json
import subprocess
import sys
import textwrap

import numpy as np

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp
    before = str(jnp.ones(1).dtype)
    import flatminima as fm
    after_import = str(jnp.ones(1).dtype)
    heavy = sorted(m for m in ("diffrax", "sympy", "matplotlib", "rich", "torch", "flint")
                   if m in sys.modules)
    f = lambda y: y[1] ** 2 + y[0] ** 2 * y[1] ** 4
    res = fm.max_variation(f, [1.0, 0.0], 0.1)
    dist = fm.level_distance(f, [1.0, 0.0], res.value).value
    after_call = str(jnp.ones(1).dtype)
    user = jax.jit(lambda w: jnp.sum(w * w))
    user_dtype = str(user(jnp.ones(3, jnp.float32)).dtype)
    q = fm.max_variation(fm.Quadratic([[2.0, 0.0], [0.0, -1.0]]), [0.0, 0.0], 0.5)
    print(json.dumps(dict(before=before, after_import=after_import, after_call=after_call,
                          user=user_dtype, heavy=heavy, value=res.value, dist=dist,
                          q=[q.value, q.upper])))
""")


def test_import_and_calls_leave_float32_default_and_give_float64_numbers():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         check=True, env={"JAX_PLATFORMS": "cpu", "PATH": ""}).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert got["before"] == got["after_import"] == got["after_call"] == "float32"
    assert got["user"] == "float32"
    assert got["heavy"] == []  # optional parts load on first use
    # the README quick start: r^2 + a^2 r^4 + O(r^8) at a = 1, r = 0.1 (float64 accuracy)
    assert abs(got["value"] - (0.01 + 1e-4)) <= 2 * (1 + 1) * 0.1**8
    assert abs(got["dist"] - 0.1) <= 1e-8
    # the same numbers as with the process-wide float64 of version 0.1 (measured there)
    assert abs(got["value"] - 0.010100009804845206) <= 1e-12 * 0.0101
    assert abs(got["dist"] - 0.09999999999999996) <= 1e-12
    # exact quadratic: V = lambda_max r^2 / 2 = 0.25, proven upper bound within rounding
    assert abs(got["q"][0] - 0.25) <= 1e-15 and 0.25 <= got["q"][1] <= 0.25 * (1 + 1e-12)


NUMPY_OBJECT = textwrap.dedent("""
    import json
    import numpy as np
    import flatminima as fm
    d = np.linspace(0.0, 1.0, 1210)
    class Quadratic:  # a NumPy objective with exact Hessian-vector products
        def value_and_grad(self, x):
            return 0.5 * x @ (d * x), d * x
        def hvp(self, x, v):
            return d * v
    x = np.ones(1210)
    traces = [fm.sharpness.hessian_trace(Quadratic(), x, num_samples=50).value for _ in range(8)]
    top = fm.sharpness.hessian_eigmax(Quadratic(), x).value
    V = fm.max_variation(Quadratic(), x, 0.1).value
    print(json.dumps(dict(traces=traces, top=top, V=V)))
""")


def test_objects_bridged_through_callbacks_give_float64_results_on_any_thread():
    """XLA may run a host callback on a thread of its own, where float64 is off (flatminima
    enables it only in the calling thread): the results must still arrive in float64.
    Hutchinson with Rademacher probes is exact on a diagonal Hessian, lambda_max = 1, and
    V(x, r) > ||g|| r (the step along g = d x gains ||g|| r plus a curvature term)."""
    out = subprocess.run([sys.executable, "-c", NUMPY_OBJECT], capture_output=True, text=True,
                         check=True, env={"JAX_PLATFORMS": "cpu", "PATH": ""}).stdout
    got = json.loads(out.strip().splitlines()[-1])
    exact = float(np.linspace(0.0, 1.0, 1210).sum())
    assert all(abs(t - exact) <= 1e-12 * exact for t in got["traces"])
    assert abs(got["top"] - 1.0) <= 1e-6
    assert got["V"] > 0.1 * float(np.linalg.norm(np.linspace(0.0, 1.0, 1210)))
