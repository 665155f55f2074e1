"""Relax (graph-level) rewriting machinery shared by the graph- and model-level operators.

Imports TVM at module level: only ever imported lazily from an operator's `apply`.
Sites are visited function by function in sorted name order, and within a function in the order
`PyExprMutator` visits calls (bindings in program order, nested calls post-order), so a site index
means the same call on every run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tvm
from tvm import relax

from .base import short

# The ops a "layer" means in a Relax graph imported from ONNX: Gemm/MatMul arrive as relax.matmul
# (with a permute_dims of the weight for Gemm's transB), dense no longer exists.
LAYER_OPS = ("relax.nn.conv1d", "relax.nn.conv2d", "relax.nn.conv3d", "relax.matmul")

ACTIVATION_OPS = (
    "relax.nn.relu",
    "relax.nn.leakyrelu",
    "relax.nn.gelu",
    "relax.nn.gelu_tanh",
    "relax.nn.silu",
    "relax.nn.selu",
    "relax.nn.softplus",
    "relax.sigmoid",
    "relax.tanh",
)

# ONNX Clip (opset >= 11) is imported as two call_tir kernels, `maximum(x, lo)` then `minimum(., hi)`,
# not as relax.clip; with lo == 0 that is ReLU6 (EfficientNet-Lite, MobileNetV2). This pseudo-op name
# lets a spec target that pair.
RELU6_PATTERN = "pattern.relu6"


def op_name(call: Any) -> str | None:
    return call.op.name if isinstance(call, relax.Call) and isinstance(call.op, tvm.ir.Op) else None


def relax_functions(mod: tvm.IRModule) -> list[tuple[str, Any, Any]]:
    out = [(gv.name_hint, gv, f) for gv, f in mod.functions_items() if isinstance(f, relax.Function)]
    return sorted(out, key=lambda t: t[0])


def static_shape(expr: Any) -> list[int] | None:
    ty = getattr(expr, "ty", None)
    if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr):
        return None
    dims = []
    for d in ty.shape.values:
        if not isinstance(d, tvm.tirx.IntImm):
            return None
        dims.append(int(d.value))
    return dims


def arg_text(expr: Any) -> str:
    if isinstance(expr, relax.Var):
        return expr.name
    if isinstance(expr, tvm.ir.GenericConst):
        shape = static_shape(expr)
        return f"const{tuple(shape) if shape is not None else '?'}"
    if isinstance(expr, relax.Call):
        return call_text(expr)
    return type(expr).__name__


def call_text(call: Any) -> str:
    """Compact `op(args)` text; the full script of a call inlines whole weight tensors."""
    name = op_name(call)
    if name is None:
        name = getattr(call.op, "name_hint", type(call.op).__name__)
    if name == "relax.call_tir" and len(call.args) >= 2:
        callee = getattr(call.args[0], "name_hint", "?")
        inner = ", ".join(arg_text(a) for a in call.args[1].fields)
        return f"call_tir({callee}, ({inner}))"
    return f"{name}({', '.join(arg_text(a) for a in call.args)})"


class Bindings:
    """Var -> bound value for every binding of a function, to see through `lv = permute_dims(w)`."""

    def __init__(self, func: Any) -> None:
        self.pairs: list[tuple[Any, Any]] = []
        for block in getattr(func.body, "blocks", []):
            for b in block.bindings:
                if isinstance(b, relax.VarBinding):
                    self.pairs.append((b.var, b.value))

    def value(self, var: Any) -> Any:
        for v, val in self.pairs:
            if v.same_as(var):
                return val
        return None

    def resolve_scalar(self, expr: Any) -> float | None:
        """Value of a scalar constant, seen through the importer's `where(isnan(c), inf, c)` guard."""
        for _ in range(4):
            if isinstance(expr, relax.Var):
                expr = self.value(expr)
            elif op_name(expr) == "relax.where" and len(expr.args) == 3:
                expr = expr.args[2]
            else:
                break
        if isinstance(expr, tvm.ir.GenericConst):
            arr = expr.value.numpy()
            if arr.size == 1:
                return float(arr.reshape(-1)[0])
        return None


def callee_name(call: Any) -> str | None:
    if op_name(call) == "relax.call_tir":
        return getattr(call.args[0], "name_hint", None)
    return None


def relu6_parts(call: Any, bindings: Bindings) -> tuple[Any, float] | None:
    """(x, upper bound) when `call` is the minimum(maximum(x, 0), hi) kernel pair of an ONNX Clip."""
    name = callee_name(call)
    if name is None or not name.startswith("minimum") or len(call.args[1].fields) != 2:
        return None
    inner, hi_expr = call.args[1].fields
    inner_val = bindings.value(inner) if isinstance(inner, relax.Var) else inner
    iname = callee_name(inner_val) if inner_val is not None else None
    if iname is None or not iname.startswith("maximum") or len(inner_val.args[1].fields) != 2:
        return None
    x, lo_expr = inner_val.args[1].fields
    lo, hi = bindings.resolve_scalar(lo_expr), bindings.resolve_scalar(hi_expr)
    if lo != 0.0 or hi is None:
        return None
    return x, hi


def matches(call: Any, names: tuple[str, ...] | list[str], bindings: Bindings) -> bool:
    name = op_name(call)
    if name is not None and name in names:
        return True
    return RELU6_PATTERN in names and relu6_parts(call, bindings) is not None


def data_input(call: Any, bindings: Bindings) -> Any:
    """The activation input of an op or of a recognised pattern."""
    parts = relu6_parts(call, bindings)
    return parts[0] if parts is not None else call.args[0]


def rewrite_calls(
    mod: tvm.IRModule, rewrite: Callable[[str, Any, Any, Bindings], Any | None], cleanup: bool = False
) -> tvm.IRModule:
    """Run `rewrite(function_name, call, mutator, bindings)` on every call; a non-None result replaces it.

    The call handed over already has its arguments rewritten. `mutator.builder_.emit` inserts a binding
    before the current one. `bindings` describes the *original* function (for pattern matching).
    `cleanup` drops kernels a pattern rewrite left unused, so the mutant does not compute dead code.
    """

    @relax.expr_functor.mutator
    class _Mutator(relax.PyExprMutator):
        def __init__(self, m: tvm.IRModule) -> None:
            super().__init__(m)
            self.fname = ""
            self.bindings: Bindings | None = None

        def visit_call_(self, call: Any) -> Any:
            orig = call
            call = self.visit_expr_post_order(call)
            out = rewrite(self.fname, call if call is not None else orig, self, self.bindings)
            return call if out is None else out

    mutator = _Mutator(mod)
    for name, gv, func in relax_functions(mod):
        mutator.fname = name
        mutator.bindings = Bindings(func)
        mutator.builder_.update_func(gv, mutator.visit_expr(func))
    out = mutator.builder_.get()
    if cleanup:
        out = relax.transform.DeadCodeElimination()(out)
    return out


def remap(mutator: Any, expr: Any) -> Any:
    """`expr` as the rewritten function knows it (a var of the original may have been re-emitted). The
    mutator's own visit resolves it: its remap table alone misses a var that other bindings and the function's
    output both read (a model with every ONNX tensor an output, deltamut.localise.named), and returning the
    original var there leaves a dangling reference that TVM rejects as a null node."""
    return mutator.visit_expr(expr) if isinstance(expr, relax.Var) else expr


def make_call(op: str, args: list[Any], attrs: Any = None) -> Any:
    return relax.Call(tvm.ir.Op.get(op), args, attrs)


# ----- weights ------------------------------------------------------------------------------------


class Weight:
    """A layer's weight constant and which of its axes indexes the layer's output neurons."""

    def __init__(self, function: str, layer: int, op: str, const: Any, out_axis: int) -> None:
        self.function, self.layer, self.op, self.const, self.out_axis = function, layer, op, const, out_axis

    @property
    def array(self) -> np.ndarray:
        return self.const.value.numpy()


def layer_weights(mod: tvm.IRModule, ops: tuple[str, ...] | list[str] = LAYER_OPS) -> list[Weight]:
    """Float weight constants of conv/matmul layers, in site order.

    A matmul weight may sit behind `permute_dims` (ONNX Gemm with transB) or be folded already; the
    output axis is tracked through the permutation so "a neuron's weights" stays a neuron's.
    """
    found: list[Weight] = []
    for fname, _gv, func in relax_functions(mod):
        bindings = Bindings(func)
        calls: list[Any] = []
        for _var, val in bindings.pairs:
            if op_name(val) in ops:
                calls.append(val)
        for call in calls:
            name = op_name(call)
            w = call.args[1]
            axes = None
            if isinstance(w, relax.Var):
                val = bindings.value(w)
                if op_name(val) == "relax.permute_dims" and isinstance(val.args[0], tvm.ir.GenericConst):
                    axes = val.attrs.axes
                    w = val.args[0]
            if not isinstance(w, tvm.ir.GenericConst) or "float" not in str(w.ty.dtype):
                continue
            ndim = len(static_shape(w) or [])
            if ndim < 2:
                continue
            if name == "relax.matmul":
                out_axis = ndim - 1
                if axes is not None:
                    out_axis = int(axes[out_axis]) if len(axes) == ndim else ndim - 1 - out_axis
            else:
                out_axis = str(call.attrs.kernel_layout).index("O")
            if any(x.const.same_as(w) for x in found):
                continue
            found.append(Weight(fname, len(found), name, w, out_axis))
    return found


def replace_constants(mod: tvm.IRModule, replacements: list[tuple[Any, np.ndarray]]) -> tvm.IRModule:
    """A copy of `mod` in which each listed constant object is swapped for a new array."""
    if not replacements:
        return mod

    @relax.expr_functor.mutator
    class _Swap(relax.PyExprMutator):
        def visit_generic_const_(self, op: Any) -> Any:
            for old, arr in replacements:
                if op.same_as(old):
                    return relax.const(arr.astype(old.value.numpy().dtype, copy=False))
            return op

    swap = _Swap(mod)
    for _name, gv, func in relax_functions(mod):
        swap.builder_.update_func(gv, swap.visit_expr(func))
    return swap.builder_.get()


def weight_text(arr: np.ndarray) -> str:
    return short(f"{arr.dtype}{list(arr.shape)} mean={arr.mean():.6g} std={arr.std():.6g}")
