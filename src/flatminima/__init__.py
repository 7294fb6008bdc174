"""flatminima: the geometry of flat minima.

Flatness as the maximal variation of f over a ball, its dual the distance to the
neighbouring level set, the flatness preorder, symmetries and conservation laws,
flattening flows and matrix factorization (C. Josz, arXiv:2509.11386).
"""

import jax

jax.config.update("jax_enable_x64", True)

from . import examples, sharpness, solvers  # noqa: E402
from ._calculus import (  # noqa: E402
    composed_variation,
    max_of_variations,
    scaled_variation,
    separable_sum_variation,
)
from ._dataset import DatasetLoss, StreamedDatasetLoss  # noqa: E402
from ._objective import Quadratic  # noqa: E402
from ._order import (  # noqa: E402
    Comparison,
    FlatMinimumResult,
    Ranking,
    compare,
    is_flat_minimum,
    rank_minima,
)
from ._profile import Profile, distance_profile, flatness_profile  # noqa: E402
from ._results import DistanceResult, VariationResult  # noqa: E402
from ._symbolic import SymbolicSymmetries, symbolic_symmetries  # noqa: E402
from ._variation import level_distance, max_variation  # noqa: E402
from .factorization import DeepLinearNetwork, MatrixFactorization  # noqa: E402
from .flows import (  # noqa: E402
    FlatteningResult,
    FlowTrajectory,
    Trajectory,
    flatness_along,
    flattening_flow,
    gradient_descent,
    gradient_flow,
    sam,
    verify_conserved,
)
from .symmetry import (  # noqa: E402
    ConservedQuantities,
    SymmetryAlgebra,
    conserved_quantities,
    linear_symmetries,
)

__all__ = [
    "DatasetLoss",
    "StreamedDatasetLoss",
    "DeepLinearNetwork",
    "MatrixFactorization",
    "ConservedQuantities",
    "FlatteningResult",
    "SymbolicSymmetries",
    "SymmetryAlgebra",
    "conserved_quantities",
    "flattening_flow",
    "linear_symmetries",
    "symbolic_symmetries",
    "verify_conserved",
    "FlowTrajectory",
    "Trajectory",
    "flatness_along",
    "gradient_descent",
    "gradient_flow",
    "sam",
    "Comparison",
    "FlatMinimumResult",
    "Profile",
    "Ranking",
    "compare",
    "distance_profile",
    "flatness_profile",
    "is_flat_minimum",
    "rank_minima",
    "sharpness",
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
