"""Import time of flatminima next to ``import jax``, each in fresh interpreters, in one
run (median of repeats). Target: ``import flatminima`` at most 1.5x ``import jax``.

    python benchmarks/bench_import.py
"""

import statistics
import subprocess
import sys
import time


def median_import_seconds(stmt: str, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", stmt], check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    base = median_import_seconds("pass")
    jax_s = median_import_seconds("import jax") - base
    fm_s = median_import_seconds("import flatminima") - base
    first = median_import_seconds(
        "import flatminima as fm; fm.max_variation(lambda y: y @ y, [1.0, 0.0], 0.1)") - base
    print(f"interpreter start        {base:.3f} s (subtracted below)")
    print(f"import jax               {jax_s:.3f} s")
    print(f"import flatminima        {fm_s:.3f} s   ratio to jax {fm_s / jax_s:.2f} (target <= 1.5)")
    print(f"first max_variation call {first:.3f} s   (imports on first use, compiles)")


if __name__ == "__main__":
    main()
