"""flatminima: the geometry of flat minima.

Flatness as the maximal variation of f over a ball, its dual the distance to the
neighbouring level set, the flatness preorder, symmetries and conservation laws,
flattening flows and matrix factorization (C. Josz, arXiv:2509.11386).

Importing flatminima changes nothing global: JAX's 64-bit mode is enabled only inside
flatminima's own calls (see ``flatminima._x64``). The public names below are loaded on
first use (PEP 562), so ``import flatminima`` costs little beyond ``import jax``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("flatminima")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

# public name -> the module that defines it
_EXPORTS = {
    "composed_variation": "._calculus",
    "max_of_variations": "._calculus",
    "scaled_variation": "._calculus",
    "separable_sum_variation": "._calculus",
    "DatasetLoss": "._dataset",
    "StreamedDatasetLoss": "._dataset",
    "Quadratic": "._objective",
    "Comparison": "._results",
    "CriticalComparison": "._results",
    "DistanceResult": "._results",
    "VariationResult": "._results",
    "FlatMinimumResult": "._order",
    "Ranking": "._order",
    "compare": "._order",
    "is_flat_minimum": "._order",
    "rank_minima": "._order",
    "Profile": "._profile",
    "distance_profile": "._profile",
    "flatness_profile": "._profile",
    "SymbolicSymmetries": "._symbolic",
    "symbolic_symmetries": "._symbolic",
    "level_distance": "._variation",
    "max_variation": "._variation",
    "DeepLinearNetwork": ".factorization",
    "MatrixFactorization": ".factorization",
    "ConservationCheck": ".flows",
    "FlatteningResult": ".flows",
    "FlowTrajectory": ".flows",
    "Trajectory": ".flows",
    "flatness_along": ".flows",
    "flattening_flow": ".flows",
    "gradient_descent": ".flows",
    "gradient_flow": ".flows",
    "sam": ".flows",
    "verify_conserved": ".flows",
    "ConservedQuantities": ".symmetry",
    "SymmetryAlgebra": ".symmetry",
    "conserved_quantities": ".symmetry",
    "linear_symmetries": ".symmetry",
    "BalanceResult": ".networks",
    "balance_network": ".networks",
    "neuron_imbalance": ".networks",
    "rescale_network": ".networks",
}
_SUBMODULES = ("examples", "sharpness", "solvers")

__all__ = [
    "BalanceResult",
    "Comparison",
    "ConservationCheck",
    "ConservedQuantities",
    "CriticalComparison",
    "DatasetLoss",
    "DeepLinearNetwork",
    "DistanceResult",
    "FlatMinimumResult",
    "FlatteningResult",
    "FlowTrajectory",
    "MatrixFactorization",
    "Profile",
    "Quadratic",
    "Ranking",
    "StreamedDatasetLoss",
    "SymbolicSymmetries",
    "SymmetryAlgebra",
    "Trajectory",
    "VariationResult",
    "balance_network",
    "compare",
    "composed_variation",
    "conserved_quantities",
    "distance_profile",
    "examples",
    "flatness_along",
    "flatness_profile",
    "flattening_flow",
    "gradient_descent",
    "gradient_flow",
    "is_flat_minimum",
    "level_distance",
    "linear_symmetries",
    "max_of_variations",
    "max_variation",
    "neuron_imbalance",
    "rank_minima",
    "rescale_network",
    "sam",
    "scaled_variation",
    "separable_sum_variation",
    "sharpness",
    "solvers",
    "symbolic_symmetries",
    "verify_conserved",
]
assert sorted(__all__) == sorted([*_EXPORTS, *_SUBMODULES])  # one list of public names


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
    elif name in _EXPORTS:
        module = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    else:
        raise AttributeError(f"module 'flatminima' has no attribute {name!r}")
    globals()[name] = module  # later lookups skip __getattr__
    return module


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from . import examples, sharpness, solvers  # noqa: F401
    from ._calculus import (  # noqa: F401
        composed_variation,
        max_of_variations,
        scaled_variation,
        separable_sum_variation,
    )
    from ._dataset import DatasetLoss, StreamedDatasetLoss  # noqa: F401
    from ._objective import Quadratic  # noqa: F401
    from ._order import (  # noqa: F401
        FlatMinimumResult,
        Ranking,
        compare,
        is_flat_minimum,
        rank_minima,
    )
    from ._profile import Profile, distance_profile, flatness_profile  # noqa: F401
    from ._results import (  # noqa: F401
        Comparison,
        CriticalComparison,
        DistanceResult,
        VariationResult,
    )
    from ._symbolic import SymbolicSymmetries, symbolic_symmetries  # noqa: F401
    from ._variation import level_distance, max_variation  # noqa: F401
    from .factorization import DeepLinearNetwork, MatrixFactorization  # noqa: F401
    from .flows import (  # noqa: F401
        ConservationCheck,
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
    from .networks import (  # noqa: F401
        BalanceResult,
        balance_network,
        neuron_imbalance,
        rescale_network,
    )
    from .symmetry import (  # noqa: F401
        ConservedQuantities,
        SymmetryAlgebra,
        conserved_quantities,
        linear_symmetries,
    )
