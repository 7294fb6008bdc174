"""float64 scoped to flatminima's own calls.

flatminima never sets ``jax_enable_x64`` for the process: a user's model keeps the
precision it was written in. Each public entry point runs inside
``jax.enable_x64(True)`` (a context manager: the setting is restored on exit, also on
an exception), so the library's own arithmetic (solvers, tolerances, Lanczos) is in
float64 where the inputs allow, while a function that computes in float32 still does
(its precision is read and reported, see ``Objective.precision``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import jax

F = TypeVar("F", bound=Callable[..., Any])


def float64(fn: F) -> F:
    """Run ``fn`` with JAX's 64-bit types enabled, restoring the caller's setting after."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def float64_methods(*exclude: str) -> Callable[[type], type]:
    """Class decorator: :func:`float64` around ``__init__``, ``__call__`` and every public
    method defined on the class (properties and static/class methods included), except
    the names in ``exclude`` (functions meant to be traced inside the user's own code)."""
    return functools.partial(_wrap_methods, exclude=exclude)


def _wrap_methods(cls: type, exclude: tuple = ()) -> type:
    for name, attr in list(vars(cls).items()):
        if name in exclude or (name.startswith("_") and name not in ("__init__", "__call__")):
            continue
        if isinstance(attr, property):
            setattr(cls, name, property(float64(attr.fget) if attr.fget else None,
                                        attr.fset, attr.fdel, attr.__doc__))
        elif isinstance(attr, staticmethod):
            setattr(cls, name, staticmethod(float64(attr.__func__)))
        elif isinstance(attr, classmethod):
            setattr(cls, name, classmethod(float64(attr.__func__)))
        elif callable(attr) and not isinstance(attr, type):
            setattr(cls, name, float64(attr))
    return cls
