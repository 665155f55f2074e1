"""Kernel-level operators: MutateNN's arithmetic-type, store and conditional mutations on lowered TIR.

They act on the PrimFuncs of the lowered module, so they reach the generated kernels directly. TVM is
imported inside `apply` only (see base.py for why).
"""

from __future__ import annotations

from typing import Any

from .base import MutationSpecError, Operator, Report, register

CMP_OPS = ("<", "<=", ">", ">=", "==", "!=")


@register
class CastStore(Operator):
    name = "cast_store"
    category = "Arithmetic Types"
    level = "kernel"
    description = (
        "Round-trip every stored float32 value through `dtype` (float16, int32, int16, int8) and back, so "
        "each kernel computes at that precision/range while the store still type-checks. Literal values "
        "are converted in numpy (floats overflow to inf, ints saturate); computed values use TVM casts, "
        "whose out-of-range float->int conversion is undefined on the device."
    )
    params = {"dtype": "float16", "source_dtype": "float32"}

    def validate(self) -> None:
        if self.p["dtype"] not in ("float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8"):
            raise MutationSpecError(f"cast_store: unsupported dtype {self.p['dtype']!r}")

    def apply(self, module: Any) -> tuple[Any, Report]:
        from . import _tir as T

        dt, src = self.p["dtype"], self.p["source_dtype"]
        report = Report()

        def value_fn(v: Any) -> Any:
            return T.fold_or(v, lambda x: T.saturate(x, dt), lambda e: T.tirx.Cast(src, T.tirx.Cast(dt, e)))

        out = T.rewrite_stores(module, self.sites, report, value_fn, f"BufferStore {src}->{dt}->{src}", src)
        return out, report


@register
class StoreSubtract(Operator):
    name = "store_subtract"
    category = "Kernel Variables & Stores"
    level = "kernel"
    description = (
        "Store `value - delta` instead of `value` in every float32 store. The default delta (2**-10) is "
        "visible in float32 for values up to ~2**13; MutateNN's 1e-8 vanished below float32 resolution. "
        "A reduction's accumulator store is hit once per reduction step, so the error grows with it."
    )
    params = {"delta": 2.0**-10}

    def validate(self) -> None:
        if not isinstance(self.p["delta"], int | float) or self.p["delta"] == 0:
            raise MutationSpecError("store_subtract: delta must be a non-zero number")

    def apply(self, module: Any) -> tuple[Any, Report]:
        import numpy as np

        from . import _tir as T

        d = float(self.p["delta"])
        report = Report()

        def value_fn(v: Any) -> Any:
            return T.fold_or(v, lambda x: x - np.float32(d), lambda e: e - T.tirx.FloatImm("float32", d))

        return T.rewrite_stores(module, self.sites, report, value_fn, f"BufferStore - {d!r}"), report


@register
class StoreScale(Operator):
    name = "store_scale"
    category = "Kernel Variables & Stores"
    level = "kernel"
    description = (
        "Store `value * (1 + eps)` instead of `value` in every float32 store. The default eps (2**-10) "
        "is 8192 float32 ulps; MutateNN's 1.00000001 rounds to exactly 1.0 in float32."
    )
    params = {"eps": 2.0**-10}

    def validate(self) -> None:
        import math

        eps = self.p["eps"]
        if not isinstance(eps, int | float) or eps == 0 or abs(eps) < 2.0**-23:
            raise MutationSpecError("store_scale: |eps| must be >= 2**-23 (float32 epsilon) to change anything")
        if not math.isfinite(eps):
            raise MutationSpecError("store_scale: eps must be finite")

    def apply(self, module: Any) -> tuple[Any, Report]:
        import numpy as np

        from . import _tir as T

        f = float(np.float32(1.0 + float(self.p["eps"])))
        report = Report()

        def value_fn(v: Any) -> Any:
            return T.fold_or(v, lambda x: x * np.float32(f), lambda e: e * T.tirx.FloatImm("float32", f))

        return T.rewrite_stores(module, self.sites, report, value_fn, f"BufferStore * {f!r}"), report


@register
class CmpSwap(Operator):
    name = "cmp_swap"
    category = "Conditional Statement Operations"
    level = "kernel"
    description = (
        "Replace comparison `from` by `to` wherever it forms part of a condition (if_then_else, "
        "IfThenElse, Select, block predicate). Lowered TVM 0.27 kernels spell bounds guards as < and <=: "
        "'>' sources usually have no site. Flipped bounds guards read or write out of bounds: run "
        "these mutants isolated."
    )
    params = {"from": "<", "to": "<="}
    param_schema = {"from": {"enum": list(CMP_OPS)}, "to": {"enum": list(CMP_OPS)}}

    def validate(self) -> None:
        if self.p["from"] not in CMP_OPS or self.p["to"] not in CMP_OPS or self.p["from"] == self.p["to"]:
            raise MutationSpecError(f"cmp_swap: from/to must be two different ones of {CMP_OPS}")

    def no_site_reason(self) -> str | None:
        if self.p["from"] in (">", ">="):
            return (f"TVM 0.27 writes every {self.p['from']} of a legalised kernel as the mirrored "
                    f"{'<' if self.p['from'] == '>' else '<='} (te.create_prim_func swaps the operands), so no "
                    "kernel its frontends import has one (docs/mutations.md)")
        return None

    def apply(self, module: Any) -> tuple[Any, Report]:
        from . import _tir as T

        src, dst = T.CMP_CLASSES[self.p["from"]], T.CMP_CLASSES[self.p["to"]]
        report = Report()
        out = T.rewrite_conditions(
            module, self.sites, report, src, lambda e: dst(e.a, e.b), f"{self.p['from']} -> {self.p['to']}"
        )
        return out, report


@register
class CmpFloatOffset(Operator):
    name = "cmp_float_offset"
    category = "Conditional Statement Operations"
    level = "kernel"
    description = (
        "Rewrite `a < b` in conditions as `float(a) < float(b) + offset`: for integer indices this "
        "admits a == b (one step past a bound) while keeping the comparison's form, as MutateNN did."
    )
    params = {"offset": 0.5, "dtype": "float32"}

    def apply(self, module: Any) -> tuple[Any, Report]:
        from . import _tir as T

        off, dt = float(self.p["offset"]), self.p["dtype"]

        def cmp_fn(e: Any) -> Any:
            a, b = T.tirx.Cast(dt, e.a), T.tirx.Cast(dt, e.b)
            return T.tirx.LT(a, T.tirx.Add(b, T.tirx.FloatImm(dt, off)))

        report = Report()
        out = T.rewrite_conditions(module, self.sites, report, T.tirx.LT, cmp_fn, f"< -> float < float + {off}")
        return out, report
