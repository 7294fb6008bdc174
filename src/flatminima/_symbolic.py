"""Exact symmetry algebras of polynomials (sympy): linear equations over the rationals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

from ._report import result_type
from ._x64 import float64


@result_type()
@dataclass(frozen=True)
class SymbolicSymmetries:
    """``basis``: sympy matrices A with ``<grad f, A x> = 0`` identically (a basis of the
    algebra over Q); ``conserved``: symmetric matrices S in the algebra, each giving the
    conserved quantity ``1/2 x'Sx`` (``quantities``)."""

    basis: list
    conserved: list
    quantities: list

    @property
    def dim(self) -> int:
        return len(self.basis)


def _nullspace(equations, unknowns):
    M, _ = sp.linear_eq_to_matrix(equations, unknowns) if equations else (
        sp.zeros(0, len(unknowns)), None)
    return M.nullspace() if M.rows else [sp.eye(len(unknowns))[:, i] for i in range(len(unknowns))]


@float64
def symbolic_symmetries(expr: Any, variables: Any) -> SymbolicSymmetries:
    """Exact linear symmetry algebra of a polynomial ``expr`` in ``variables``.

    The coefficients of every monomial of ``grad f . (A x)`` must vanish: linear
    equations in the entries of A, solved over the rationals.

    >>> x, y = sp.symbols("x y")
    >>> res = symbolic_symmetries((x * y - 1) ** 2, [x, y])
    >>> res.dim, res.quantities
    (1, [-x**2/2 + y**2/2])
    """
    xs = list(variables)
    n = len(xs)
    if not sp.sympify(expr).is_polynomial(*xs):
        raise ValueError("expr must be a polynomial in the given variables.")
    a = sp.symbols(f"a0:{n * n}")
    A = sp.Matrix(n, n, a)
    X = sp.Matrix(xs)
    grad = sp.Matrix([sp.diff(expr, v) for v in xs])
    inner = sp.expand((grad.T * A * X)[0, 0])
    equations = list(sp.Poly(inner, *xs).coeffs()) if inner != 0 else []
    null = _nullspace(equations, a)
    basis = [sp.Matrix(n, n, list(v)) for v in null]
    # symmetric elements: combinations c with sum c_j (A_j - A_j') = 0
    c = sp.symbols(f"c0:{len(basis)}") if basis else ()
    if basis:
        combo = sum((cj * Bj for cj, Bj in zip(c, basis)), sp.zeros(n, n))
        skew = [e for e in (combo - combo.T) if e != 0]
        sym_null = _nullspace(skew, c) if skew else [sp.eye(len(c))[:, i] for i in range(len(c))]
        conserved = [sp.Matrix(n, n, lambda i, j, v=v: sum(v[k] * basis[k][i, j]
                                                           for k in range(len(basis))))
                     for v in sym_null]
    else:
        conserved = []
    quantities = [sp.expand((X.T * S * X)[0, 0] / 2) for S in conserved]
    return SymbolicSymmetries(basis, conserved, quantities)
