"""Which step of an optimisation configuration makes its build disagree: bisection over the ordered steps.

A configuration is a bundle of steps (its graph passes in order, constant folding, fusion, the TIR passes that
`tvm.compile` runs to optimise the kernels, then the codegen flags fast-math, LLVM -O3 and the CPU schedules:
`deltamut.ablation` names all but the TIR passes, which are the same in every configuration). The predicate is judged on
the witness images against reference logits: a build with the first n steps on and the rest off either
satisfies it or not. The search (TVM has no working opt-bisect-limit; see docs/localisation.md):

1. steps that leave the IR unchanged on this model (by structural equality) are skipped; codegen flags
   cannot be judged by the IR and are kept;
2. the full configuration must satisfy the predicate and the empty one must not (else no step is to blame:
   the disagreement is in what every build does);
3. binary search for the shortest prefix that satisfies it: its last step is the culprit;
4. the culprit alone (with every other step off); if that does not satisfy the predicate, the culprit needs
   earlier steps: each is dropped in turn, nearest first, and stays dropped where the predicate still holds,
   so the steps that interact are named as a set (fast-math folds `(x + c) - c` only where fusion put both in
   one kernel and LLVM's optimiser runs).

Every build is kept in `workdir` with its lowered IR, so the IR before and after the culprit can be read.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deltamut.ablation import ablation_steps

GRAPH, LOWERING, TIR, CODEGEN = "graph", "lowering", "tir", "codegen"

#: The passes of `tvm.compile`'s TIR pipeline (TVM 0.27, CPU) that only optimise, in the pipeline's order: a build
#: with all of them off is complete and correct (EfficientNet-Lite0 under `extended`: same top-1, logits within
#: 2.2e-6 of the full build), so each is a step of the search, switched off through the PassContext's
#: `disabled_pass` (the pipeline is a `Sequential`, which consults it; TVM's own nested builds, such as constant
#: folding's, see the same context). The passes that lower (FlattenBuffer, VectorizeLoop, MakePackedAPI, ...)
#: cannot be left out and are not steps.
TIR_PASSES = ("s_tir.StmtSimplify", "tirx.NarrowDataType", "s_tir.LoopPartition", "s_tir.InjectDoubleBuffer",
              "tirx.StorageRewrite", "s_tir.HoistIfThenElse", "tirx.UnrollLoop", "s_tir.RenormalizeSplitPattern",
              "tirx.StmtSimplify", "tirx.RemoveNoOp", "s_tir.RewriteUnsafeSelect", "tirx.CommonSubexprElim")


def steps_of(spec: dict[str, Any]) -> list[str]:
    """The configuration's steps that are on, in the order the stages apply them: graph passes, lowering, the
    TIR passes it does not disable, codegen flags."""
    steps = list(ablation_steps(spec))
    tir = [p for p in TIR_PASSES if p not in spec.get("disabled_pass", [])]
    return [s for s in steps if stage_of(spec, s) != CODEGEN] + tir + \
        [s for s in steps if stage_of(spec, s) == CODEGEN]


def stage_of(spec: dict[str, Any], step: str) -> str:
    if step in spec.get("passes", []):
        return GRAPH
    if step in TIR_PASSES:
        return TIR
    return LOWERING if step in ("fuse", "fold_constants") else CODEGEN


def with_only(spec: dict[str, Any], enabled: list[str]) -> dict[str, Any]:
    """`spec` with only the steps in `enabled` on (every other step of it switched off as its ablation does; a
    TIR pass by disabling it)."""
    out = copy.deepcopy(spec)
    for step in steps_of(spec):
        if step in enabled:
            continue
        if stage_of(spec, step) == TIR:
            out["disabled_pass"] = [*out.get("disabled_pass", []), step]
        else:
            out = ablation_steps(out)[step]
    out.pop("description", None)
    return out


class Bisector:
    """Builds (cached by the steps they have on) and the predicate over their logits on the witness images."""

    def __init__(self, graph, spec: dict[str, Any], target: dict[str, Any], images: np.ndarray,
                 predicate: Callable[[np.ndarray], dict[str, Any]], workdir: str | Path):
        self.graph, self.spec, self.target = graph, spec, target
        self.images, self.predicate = images, predicate
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.trials: list[dict[str, Any]] = []
        self._cache: dict[tuple[str, ...], dict[str, Any]] = {}
        self._lowered: dict[tuple[str, ...], tuple[Any, Any]] = {}

    def _key(self, enabled: list[str]) -> str:
        return hashlib.sha1(json.dumps(sorted(enabled)).encode()).hexdigest()[:10]

    def lowered(self, enabled: list[str]):
        """The lowered module and configuration with `enabled` on (each lowered once: the no-op check and the
        trial build of the full configuration share theirs)."""
        from deltamut.compiler.optconfig import OptConfig
        from deltamut.compiler.passes import lower, optimise_graph

        key = tuple(s for s in steps_of(self.spec) if s in enabled)
        if key not in self._lowered:
            opt = OptConfig.from_dict("bisect", with_only(self.spec, list(key)))
            self._lowered[key] = lower(optimise_graph(self.graph, opt), opt), opt
        return self._lowered[key]

    def holds(self, enabled: list[str], why: str) -> bool:
        """Build with `enabled` on, run the witnesses, judge; every trial is recorded once."""
        key = tuple(s for s in steps_of(self.spec) if s in enabled)
        if key not in self._cache:
            from deltamut.compiler.build import build_library
            from deltamut.devices.tvm_backend import TvmBackend

            mod, opt = self.lowered(list(key))
            where = self.workdir / self._key(list(key))
            where.mkdir(exist_ok=True)
            (where / "lowered.py").write_text(mod.script())
            try:
                build_library(mod, self.target, opt, where / "lib.so")
            except Exception as exc:  # a set of steps TVM cannot compile shows no label: recorded, not holding
                self._cache[key] = {"enabled": list(key), "holds": False, "detail": {},
                                    "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}",
                                    "dir": str(where)}
            else:
                build = TvmBackend({"lib": str(where / "lib.so")})  # plain runs: no kernel is traced here
                logits = np.stack([build(x[None])[0] for x in self.images])
                build.close()
                verdict = self.predicate(logits)
                self._cache[key] = {"enabled": list(key), "holds": bool(verdict["holds"]), "detail": verdict,
                                    "dir": str(where)}
        trial = {**self._cache[key], "why": why}
        self.trials.append(trial)
        return trial["holds"]

    def dump_around(self, enabled: list[str], tir_pass: str) -> dict[str, str]:
        """Build with `enabled` on and write the kernels as `tvm.compile`'s TIR pipeline hands them to `tir_pass`
        and as it returns them (`tir/before_<pass>.py`, `tir/after_<pass>.py`): a TIR culprit's effect is not in
        the lowered module, which every trial shares up to `tvm.compile`."""
        from tvm.ir.instrument import pass_instrument

        from deltamut.compiler.build import build_library

        texts: dict[str, str] = {}

        @pass_instrument
        class Around:
            def run_before_pass(self, mod, info):
                if info.name == tir_pass:
                    texts["before"] = mod.script(show_meta=False)

            def run_after_pass(self, mod, info):
                if info.name == tir_pass:
                    texts["after"] = mod.script(show_meta=False)

        mod, opt = self.lowered(enabled)
        where = self.workdir / "tir"
        where.mkdir(exist_ok=True)
        build_library(mod, self.target, opt, where / "lib.so", instruments=[Around()])
        (where / "lib.so").unlink()
        out = {}
        for side, text in texts.items():
            out[side] = str(where / f"{side}_{tir_pass}.py")
            Path(out[side]).write_text(text)
        return out

    def noop_steps(self) -> list[str]:
        """Graph passes and lowering steps that leave this model's IR as it was."""
        from deltamut.compiler.optconfig import OptConfig
        from deltamut.compiler.passes import optimise_graph
        from deltamut.mutations.engine import is_equivalent

        steps, noop = steps_of(self.spec), []
        passes = [s for s in steps if stage_of(self.spec, s) == GRAPH]
        before = self.graph
        for p in passes:
            after = optimise_graph(before, OptConfig.from_dict("p", {"passes": [p]}))
            if is_equivalent(before, after):
                noop.append(p)
            before = after
        full, _ = self.lowered(steps)
        for step in (s for s in steps if stage_of(self.spec, s) == LOWERING):
            without, _ = self.lowered([s for s in steps if s != step])
            if is_equivalent(full, without):
                noop.append(step)
        return noop


def bisect(b: Bisector) -> dict[str, Any]:
    """The search of the module doc; returns the culprit set, every trial and the skipped steps."""
    all_steps = steps_of(b.spec)
    noop = b.noop_steps()
    steps = [s for s in all_steps if s not in noop]
    out: dict[str, Any] = {"steps": all_steps, "skipped_noop": noop, "searched": steps}
    if not b.holds(all_steps, "the full configuration"):
        return {**out, "result": "not_reproduced", "culprits": [], "trials": b.trials,
                "reason": "the full configuration's build does not satisfy the predicate here"}
    if b.holds([], "every step off"):
        return {**out, "result": "no_step", "culprits": [], "trials": b.trials,
                "reason": "the build with every step off satisfies it too: the disagreement is in what every "
                          "build does (the importer, mandatory lowering, the runtime), not in a step"}
    lo, hi = 0, len(steps)  # prefix lo does not hold, prefix hi holds
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if b.holds(steps[:mid], f"prefix of {mid}"):
            hi = mid
        else:
            lo = mid
    culprit = steps[hi - 1]
    culprits = steps[:hi]
    if b.holds([culprit], f"{culprit} alone"):
        culprits = [culprit]
    else:  # one-minimal: drop each earlier step, nearest first, that the predicate does not need
        for step in reversed(steps[:hi - 1]):
            fewer = [s for s in culprits if s != step]
            if b.holds(fewer, f"without {step}"):
                culprits = fewer
    tir = {s: b.dump_around(culprits, s) for s in culprits if stage_of(b.spec, s) == TIR}
    return {**out, "result": "found", "culprits": culprits, "prefix": steps[:hi], "trials": b.trials,
            "stages": {s: stage_of(b.spec, s) for s in culprits}, **({"tir_ir": tir} if tir else {})}
