"""Solvers for the maximal variation: pass one as ``solver=`` to override the
automatic choice."""

from ._ascent import ProjectedAscent
from ._quadratic import ExactQuadratic, is_quadratic

__all__ = ["ExactQuadratic", "ProjectedAscent", "is_quadratic"]
