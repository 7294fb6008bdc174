"""Warnings that name the line of the user's code that called flatminima.

``warnings.warn(..., stacklevel=k)`` needs the depth of the call, which differs from one
path to another (a public function, the same function called by another, a command).
:func:`warn` instead walks up the stack to the first frame outside flatminima and the
libraries its calls pass through, and issues the warning there, so that it names the
user's line and the user's warning filters for that module apply. Nothing global is
changed (thread-safe), and warnings of other libraries keep their own attribution.
"""

from __future__ import annotations

import os
import sys
import warnings
from types import FrameType

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
# frames of the machinery between a user's call and flatminima's code: JAX (a warning
# raised while tracing), the standard library's decorators, the command line's framework
_PASSED_THROUGH = tuple(f"{os.sep}{name}{os.sep}" for name in ("jax", "jaxlib", "typer", "click"))
_STDLIB_WRAPPERS = ("contextlib.py", "functools.py")


def _internal(filename: str) -> bool:
    return (filename.startswith(_PACKAGE) or any(p in filename for p in _PASSED_THROUGH)
            or os.path.basename(filename) in _STDLIB_WRAPPERS)


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """Issue ``message`` as ``category`` at the first frame outside flatminima."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and _internal(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:  # pragma: no cover - only when called from flatminima alone
        warnings.warn(message, category, stacklevel=2)
        return
    globals_ = frame.f_globals
    warnings.warn_explicit(message, category, frame.f_code.co_filename, frame.f_lineno,
                           module=globals_.get("__name__", "__main__"),
                           registry=globals_.setdefault("__warningregistry__", {}))
