"""flatminima: the geometry of flat minima.

Flatness as the maximal variation of f over a ball, its dual the distance to the
neighbouring level set, the flatness preorder, symmetries and conservation laws,
flattening flows and matrix factorization (C. Josz, arXiv:2509.11386).
"""

import jax

jax.config.update("jax_enable_x64", True)

from . import solvers  # noqa: E402
from ._objective import Quadratic  # noqa: E402
from ._results import DistanceResult, VariationResult  # noqa: E402
from ._variation import level_distance, max_variation  # noqa: E402

__all__ = [
    "DistanceResult",
    "Quadratic",
    "VariationResult",
    "level_distance",
    "max_variation",
    "solvers",
]
