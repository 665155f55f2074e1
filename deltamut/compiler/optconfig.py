"""Named optimisation configurations: the knobs that really change compiled code in TVM 0.27.

`PassContext(opt_level=N)` barely matters in Relax (nearly every pass is registered at level 0), so a
configuration names what does: which graph-level Relax passes run, whether operators are fused during
lowering, which passes are disabled, LLVM codegen attributes (opt-level, fast-math) and TIR flags, and
whether CPU kernels get rule-based schedules. The fields split by the stage that applies them, so each
stage's params carry only the slice it depends on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Graph-level Relax passes a configuration may name (constructed without arguments).
GRAPH_PASSES = (
    "DecomposeOpsForInference",
    "CanonicalizeBindings",
    "EliminateCommonSubexpr",
    "FoldConstant",
    "DeadCodeElimination",
    "FoldBatchnormToConv2D",
    "ConvertToDataflow",
    "ToNonDataflow",
    "RemoveUnusedOutputs",
    "LambdaLift",
)


@dataclass(frozen=True)
class OptConfig:
    """One optimisation configuration of the study (an entry of `optimisations:` in the config)."""

    name: str
    passes: tuple[str, ...]
    fuse: bool
    fold_constants: bool
    disabled_pass: tuple[str, ...]
    llvm: dict[str, Any]
    tir: dict[str, Any]
    schedule: str  # the defaults of these are the schema's; `from_dict` fills them in

    @classmethod
    def from_dict(cls, name: str, spec: dict[str, Any]) -> OptConfig:
        unknown = [p for p in spec.get("passes", []) if p not in GRAPH_PASSES]
        if unknown:
            raise ValueError(
                f"optimisation {name!r}: unknown graph pass(es) {unknown}; known: {', '.join(GRAPH_PASSES)}"
            )
        from deltamut.defaults import defaults

        spec = {**defaults("optimisations.*"), **spec}  # a stage's slice lacks what it does not depend on
        return cls(
            name=name,
            passes=tuple(spec.get("passes", ())),
            fuse=bool(spec["fuse"]),
            fold_constants=bool(spec["fold_constants"]),
            disabled_pass=tuple(spec.get("disabled_pass", ())),
            llvm=dict(spec.get("llvm", {})),
            tir=dict(spec.get("tir", {})),
            schedule=str(spec["schedule"]),
        )

    def pass_context(self, instruments: list | None = None):
        """The PassContext every stage runs its passes under: disabled passes and TIR flags apply everywhere;
        `instruments` watch the passes (localisation reads the IR around one)."""
        import tvm

        return tvm.transform.PassContext(opt_level=3, disabled_pass=list(self.disabled_pass), config=self.tir,
                                         instruments=instruments)


def graph_slice(spec: dict[str, Any]) -> dict[str, Any]:
    """The part of a configuration the compile stage depends on."""
    return {k: spec[k] for k in ("passes", "disabled_pass") if k in spec}


def lowering_slice(spec: dict[str, Any]) -> dict[str, Any]:
    """The part of a configuration the mutate stage (which lowers the graph) depends on."""
    return {k: spec[k] for k in ("fuse", "fold_constants", "disabled_pass", "tir") if k in spec}


def codegen_slice(spec: dict[str, Any]) -> dict[str, Any]:
    """The part of a configuration the deploy stage depends on."""
    return {k: spec[k] for k in ("llvm", "tir", "schedule", "disabled_pass") if k in spec}
