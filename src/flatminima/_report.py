"""What every result type can do for logging and scripts: a readable ``repr``, a JSON-safe
``to_dict()``, and ``float(result)`` for results that are one number.

Applied with the class decorator :func:`result_type` after ``@dataclass``.
"""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """``value`` as JSON-safe Python: dataclasses and dicts become dicts, arrays and
    sequences lists, NumPy scalars Python numbers; NaN becomes None and infinities the
    strings ``"inf"``/``"-inf"`` (JSON has neither); other objects their ``repr``."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return None
        return v if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    if hasattr(value, "__array__") and hasattr(value, "shape"):
        arr = np.asarray(value)
        if arr.dtype.kind in "fciub":
            return jsonable(arr.tolist()) if arr.ndim else jsonable(arr.item())
    return repr(value)


def _short(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.10g}"
    if hasattr(value, "shape") and hasattr(value, "dtype") and getattr(value, "ndim", 0) > 0:
        return f"array(shape={tuple(value.shape)}, dtype={value.dtype})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)) and len(value) > 6:
        return f"{type(value).__name__}(len={len(value)})"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_short(v) for v in value)
        return f"({inner}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{inner}]"
    if is_dataclass(value) and not isinstance(value, type):
        return f"{type(value).__name__}(...)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _repr(self: Any) -> str:
    shown = [f for f in fields(self) if f.repr]
    return f"{type(self).__name__}(" + ", ".join(
        f"{f.name}={_short(getattr(self, f.name))}" for f in shown) + ")"


def _to_dict(self: Any) -> dict:
    """The result as a JSON-safe dict (``json.dumps(result.to_dict())`` works)."""
    return jsonable(self)


def result_type(number: str | None = None):
    """Class decorator for frozen result dataclasses: readable ``__repr__`` (arrays shown
    by shape), ``to_dict()``; with ``number="value"``, ``float(result)`` is that field."""

    def decorate(cls: type) -> type:
        cls.__repr__ = _repr  # type: ignore[method-assign]
        cls.to_dict = _to_dict  # type: ignore[attr-defined]
        if number is not None:
            cls.__float__ = lambda self: float(getattr(self, number))  # type: ignore[attr-defined]
        return cls

    return decorate
