"""TIR (kernel-level) rewriting machinery: stores and conditions of the lowered PrimFuncs.

Imports TVM at module level: only ever imported lazily from an operator's `apply`.
Sites are counted over PrimFuncs in sorted name order, and within a PrimFunc in the order
`tvm_ffi.structural_map` reaches nodes, which is a fixed tree traversal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tvm
import tvm_ffi
from tvm import tirx
from tvm.s_tir import SBlockRealize

from .base import Report, SiteSelector, short

CMP_CLASSES: dict[str, Any] = {
    "<": tirx.LT,
    "<=": tirx.LE,
    ">": tirx.GT,
    ">=": tirx.GE,
    "==": tirx.EQ,
    "!=": tirx.NE,
}


def primfuncs(mod: tvm.IRModule) -> list[tuple[str, Any, Any]]:
    out = [(gv.name_hint, gv, f) for gv, f in mod.functions_items() if isinstance(f, tirx.PrimFunc)]
    return sorted(out, key=lambda t: t[0])


def dtype_of(expr: Any) -> str:
    dt = getattr(expr, "dtype", None)
    return str(dt if dt is not None else expr.ty)


def map_primfuncs(mod: tvm.IRModule, fn: Callable[[str, Any], Any]) -> tvm.IRModule:
    """A copy of `mod` with each PrimFunc replaced by `fn(name, func)`; the input module is left intact."""
    out = mod.clone()
    for name, gv, func in primfuncs(mod):
        new = fn(name, func)
        if not new.same_as(func):
            out.update_func(gv, new)
    return out


def store_text(store: Any, value: Any = None) -> str:
    idx = ", ".join(str(i) for i in store.indices)
    return short(f"{store.buffer.name}[{idx}] = {store.value if value is None else value}")


def rewrite_stores(
    mod: tvm.IRModule,
    sites: SiteSelector,
    report: Report,
    value_fn: Callable[[Any], Any],
    kind: str,
    source_dtype: str = "float32",
) -> tvm.IRModule:
    """Replace the value of every selected store of `source_dtype` by `value_fn(value)`."""

    def per_func(fname: str, func: Any) -> Any:
        def on_store(store: Any) -> Any:
            if dtype_of(store.value) != source_dtype:
                return store
            site = report.take_site(sites)
            if site is None:
                return store
            new_value = value_fn(store.value)
            new = tirx.BufferStore(store.buffer, new_value, store.indices)
            report.add(fname, site, kind, store_text(store), store_text(store, new_value), kernel=True)
            return new

        return tvm_ffi.structural_map(func, [(tirx.BufferStore, on_store)])

    out = map_primfuncs(mod, per_func)
    return out


def fold_or(value: Any, np_fn: Callable[[np.float32], Any], expr_fn: Callable[[Any], Any]) -> Any:
    """Evaluate a literal in numpy, build an expression otherwise.

    TVM's simplifier refuses to fold a literal that does not fit its target type (casting maxpool's
    -FLT_MAX init to float16 aborts the build), while the device would quietly produce inf: folding
    here keeps the runtime meaning and lets the mutant build.
    """
    if isinstance(value, tirx.FloatImm):
        with np.errstate(all="ignore"):
            folded = float(np.float32(np_fn(np.float32(value.value))))
        return tirx.FloatImm(dtype_of(value), folded)
    return expr_fn(value)


def saturate(x: np.float32, dtype: str) -> Any:
    """Round-trip a float through `dtype` as hardware with saturating conversion would."""
    if dtype.startswith("float"):
        return np.asarray(x).astype(dtype)
    info = np.iinfo(dtype)
    if np.isnan(x):
        return np.asarray(0, dtype)
    return np.asarray(np.clip(np.trunc(x), info.min, info.max)).astype(dtype)


# ----- conditions ---------------------------------------------------------------------------------


def _is_if_then_else(node: Any) -> bool:
    return isinstance(node, tvm.ir.Call) and isinstance(node.op, tvm.ir.Op) and node.op.name.endswith("if_then_else")


def rewrite_conditions(
    mod: tvm.IRModule,
    sites: SiteSelector,
    report: Report,
    cmp_class: Any,
    cmp_fn: Callable[[Any], Any],
    kind: str,
) -> tvm.IRModule:
    """Rewrite comparisons of class `cmp_class` that sit in a condition.

    A condition is the first argument of `if_then_else`, the condition of an `IfThenElse` statement or
    a `Select`, or a block predicate; comparisons elsewhere (index arithmetic, min/max) are left alone,
    as in MutateNN, which targeted branch conditions.
    """

    def per_func(fname: str, func: Any) -> Any:
        def in_condition(cond: Any, where: str) -> Any:
            def on_cmp(e: Any) -> Any:
                if type(e) is not cmp_class:
                    return e
                site = report.take_site(sites)
                if site is None:
                    return e
                new = cmp_fn(e)
                report.add(fname, site, kind, str(e), str(new), kernel=True, within=where, condition=short(cond))
                return new

            return tvm_ffi.structural_map(cond, [(cmp_class, on_cmp)])

        def on_call(node: Any) -> Any:
            if not _is_if_then_else(node):
                return node
            cond = in_condition(node.args[0], "if_then_else")
            if cond.same_as(node.args[0]):
                return node
            return tirx.if_then_else(cond, node.args[1], node.args[2])

        def on_if(node: Any) -> Any:
            cond = in_condition(node.condition, "IfThenElse")
            return node if cond.same_as(node.condition) else tirx.IfThenElse(cond, node.then_case, node.else_case)

        def on_select(node: Any) -> Any:
            cond = in_condition(node.condition, "Select")
            return node if cond.same_as(node.condition) else tirx.Select(cond, node.true_value, node.false_value)

        def on_realize(node: Any) -> Any:
            pred = in_condition(node.predicate, "block predicate")
            return node if pred.same_as(node.predicate) else SBlockRealize(node.iter_values, pred, node.block)

        return tvm_ffi.structural_map(
            func,
            [(tvm.ir.Call, on_call), (tirx.IfThenElse, on_if), (tirx.Select, on_select), (SBlockRealize, on_realize)],
            order="pre",
        )

    out = map_primfuncs(mod, per_func)
    return out


# ----- canonical form -----------------------------------------------------------------------------


def _integer_float_offset(e: Any) -> Any:
    """`float(a) < float(b) + c` with integer a, b and 0 < c <= 1 is `a <= b` (MutateNN's conditional offset,
    exact while the indices fit float32's 24-bit mantissa, as every loop index of an image classifier does)."""
    a, b = e.a, e.b
    if (isinstance(a, tirx.Cast) and isinstance(b, tirx.Add) and isinstance(b.a, tirx.Cast)
            and isinstance(b.b, tirx.FloatImm) and 0 < float(b.b.value) <= 1
            and "int" in dtype_of(a.value) and "int" in dtype_of(b.a.value)):
        return tirx.LE(a.value, b.a.value)
    return e


def canonical(mod: tvm.IRModule) -> tvm.IRModule:
    """`mod` with its PrimFuncs in a canonical form: integer comparisons written through floats brought back to
    integers, then TVM's statement simplifier (arithmetic canonicalisation, constant folding). Two mutants that
    are the same mutation after simplification (`a < b + 0.5` and `a <= b` on indices) become structurally
    equal; the form is only ever hashed, never built."""
    rewritten = map_primfuncs(mod, lambda _name, f: tvm_ffi.structural_map(f, [(tirx.LT, _integer_float_offset)]))
    prims = tvm.IRModule({gv: f for gv, f in rewritten.functions_items() if isinstance(f, tirx.PrimFunc)})
    simplified = tirx.transform.StmtSimplify()(prims)
    out = rewritten.clone()
    for gv, func in simplified.functions_items():
        out.update_func(out.get_global_var(gv.name_hint), func)
    return out
