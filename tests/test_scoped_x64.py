"""flatminima changes nothing global: float64 only inside its own calls (run in a
subprocess, since the test session itself enables x64 in conftest.py)."""

import json
import subprocess
import sys
import textwrap

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
