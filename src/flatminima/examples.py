"""The gallery: test functions with what is known exactly about them."""

from __future__ import annotations

import jax.numpy as jnp


def figure1(y):
    """The paper's Figure 1 function ``f(x1, x2) = x2^2 + x1^2 x2^4``.

    Minimizers: the line ``x2 = 0``. Hessian at ``(a, 0)``: ``diag(0, 2)`` for every a.
    ``V((a, 0), r) = r^2 + a^2 r^4 + O(r^8)``: ``(0, 0)`` is the unique flat minimum.

    >>> float(figure1([2.0, 1.0]))
    5.0
    """
    y = jnp.asarray(y)
    return y[1] ** 2 + y[0] ** 2 * y[1] ** 4
