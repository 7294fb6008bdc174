"""Solvers for the maximal variation: pass one as ``solver=`` to override the
automatic choice."""

from .._interval import SymbolicFunction, UnsupportedOperation
from ._ascent import ProjectedAscent
from ._certified import Certified, CertifiedProgress
from ._quadratic import ExactQuadratic, SampledQuadratic, is_proven_quadratic, is_quadratic
from ._structure import polynomial_degree

__all__ = [
    "Certified",
    "CertifiedProgress",
    "ExactQuadratic",
    "ProjectedAscent",
    "SampledQuadratic",
    "SymbolicFunction",
    "UnsupportedOperation",
    "is_proven_quadratic",
    "is_quadratic",
    "polynomial_degree",
]
