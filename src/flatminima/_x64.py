"""float64 scoped to flatminima's own calls.

flatminima never sets ``jax_enable_x64`` for the process: a user's model keeps the
precision it was written in. Each public entry point runs inside
``jax.enable_x64(True)`` (a context manager: the setting is restored on exit, also on
an exception), so the library's own arithmetic (solvers, tolerances, Lanczos) is in
float64 where the inputs allow, while a function that computes in float32 still does
(its precision is read and reported, see ``Objective.precision``).
"""

from __future__ import annotations

import contextlib
import functools
import sys
import warnings
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import jax

F = TypeVar("F", bound=Callable[..., Any])


_OUTERMOST: ContextVar[bool] = ContextVar("flatminima_outermost_call", default=True)


def float64(fn: F, *, attribute_warnings: bool = True) -> F:
    """Run ``fn`` with JAX's 64-bit types enabled, restoring the caller's setting after.

    With ``attribute_warnings``, the warnings raised during the outermost such call are
    issued again, when it returns or raises, at the line of the user's code that made the
    call (so that a warning names that line, and the user's warning filters apply there),
    rather than at a line inside flatminima. Commands that run for long (the command line)
    pass False, so that their warnings show as they happen."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not (attribute_warnings and _OUTERMOST.get()):
            with jax.enable_x64(True):
                return fn(*args, **kwargs)
        token = _OUTERMOST.set(False)
        caught: list = []
        try:
            with jax.enable_x64(True), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")  # the user's filters apply when reissued
                result = fn(*args, **kwargs)
        except BaseException:
            with contextlib.suppress(Warning):  # the error, not a warning filtered to one
                _reissue(caught, sys._getframe(1))
            raise
        finally:
            _OUTERMOST.reset(token)
        _reissue(caught, sys._getframe(1))
        return result

    return wrapper  # type: ignore[return-value]


def _reissue(caught: list, frame: Any) -> None:
    module = frame.f_globals.get("__name__", "__main__")
    registry = frame.f_globals.setdefault("__warningregistry__", {})
    for w in caught:
        warnings.warn_explicit(w.message, w.category, frame.f_code.co_filename, frame.f_lineno,
                               module=module, registry=registry)


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
