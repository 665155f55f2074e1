"""Mutation engine: MutateNN's 22 operators on TVM 0.27 Relax/TIR, plus model- and input-level ones.

Importing this package imports neither TVM nor torch; operators load TVM when they run.
"""

from . import graph, inputs, kernel, model  # noqa: F401  (registration)
from .base import CATEGORIES, OPERATORS, MutationSpecError, Operator, operator_info, spec_info
from .engine import Mutant, ir_diff, ir_text, is_equivalent, mutate, semantic_key, structural_key
from .inputs import transform_image

__all__ = [
    "CATEGORIES",
    "OPERATORS",
    "MutationSpecError",
    "Mutant",
    "Operator",
    "ir_diff",
    "ir_text",
    "is_equivalent",
    "mutate",
    "operator_info",
    "semantic_key",
    "spec_info",
    "structural_key",
    "transform_image",
]
