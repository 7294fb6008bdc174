"""flatminima: the geometry of flat minima.

Flatness as the maximal variation of f over a ball, its dual the distance to the
neighbouring level set, the flatness preorder, symmetries and conservation laws,
flattening flows and matrix factorization (C. Josz, arXiv:2509.11386).
"""

import jax

jax.config.update("jax_enable_x64", True)

from . import examples, solvers  # noqa: E402
from ._calculus import (  # noqa: E402
    composed_variation,
    max_of_variations,
    scaled_variation,
    separable_sum_variation,
)
from ._objective import Quadratic  # noqa: E402
from ._results import DistanceResult, VariationResult  # noqa: E402
from ._variation import level_distance, max_variation  # noqa: E402

__all__ = [
    "DistanceResult",
    "Quadratic",
    "VariationResult",
    "composed_variation",
    "max_of_variations",
    "scaled_variation",
    "separable_sum_variation",
    "level_distance",
    "max_variation",
    "examples",
    "solvers",
]
