"""Solvers for the maximal variation: pass one as ``solver=`` to override the
automatic choice."""

from .._interval import SymbolicFunction, UnsupportedOperation
from ._ascent import ProjectedAscent
from ._certified import Certified, CertifiedProgress
from ._quadratic import ExactQuadratic, is_quadratic

__all__ = ["Certified", "CertifiedProgress", "ExactQuadratic", "ProjectedAscent",
           "SymbolicFunction", "UnsupportedOperation", "is_quadratic"]
