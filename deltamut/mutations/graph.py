"""Graph-level operators: MutateNN's node input/output, arithmetic-node and layer-node mutations on Relax.

They act on the graph-level module before lowering, so what they change is fused and scheduled like
any other node. TVM is imported inside `apply` only (see base.py for why).
"""

from __future__ import annotations

from typing import Any

from .base import OP_NAMES, MutationSpecError, Operator, Report, register

# Binary arithmetic ops: replacing one by another is an "Arithmetic Node Replacement"; anything else
# replace_op touches (activations) is a "Layer Node Replacement".
ARITHMETIC_OPS = frozenset(
    {
        "relax.add",
        "relax.subtract",
        "relax.multiply",
        "relax.divide",
        "relax.power",
        "relax.maximum",
        "relax.minimum",
        "relax.floor_divide",
    }
)
UNARY_OPS = frozenset(
    {
        "relax.exp",
        "relax.log",
        "relax.round",
        "relax.floor",
        "relax.ceil",
        "relax.abs",
        "relax.negative",
        "relax.sqrt",
        "relax.rsqrt",
        "relax.sigmoid",
        "relax.tanh",
        "relax.sin",
        "relax.cos",
        "relax.square",
        "relax.nn.relu",
        "relax.nn.gelu",
        "relax.nn.gelu_tanh",
        "relax.nn.silu",
        "relax.nn.selu",
        "relax.nn.softplus",
        "relax.erf",
        "relax.sign",
    }
)


def _as_list(v: Any) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


@register
class Identity(Operator):
    name = "identity"
    category = "Original"
    level = "none"
    description = "No mutation: the lowered original, the reference every mutant is compared with."

    def apply(self, module: Any) -> tuple[Any, Report]:
        return module, Report()


@register
class TransposeInput(Operator):
    name = "transpose_input"
    category = "Node Input/Output Modification"
    level = "graph"
    description = (
        "Swap two equal-size axes (default the last two: H and W of NCHW data, kH and kW of OIHW "
        "weights) of input `input` of every matching op; shapes stay valid, the data order does not."
    )
    params = {"ops": ["relax.nn.conv2d"], "input": 0, "axes": [-2, -1]}
    param_schema = {"ops": OP_NAMES, "input": {"type": "integer", "minimum": 0},
                    "axes": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}}
    op_params = ("ops",)

    def validate(self) -> None:
        axes = self.p["axes"]
        if not isinstance(axes, list | tuple) or len(axes) != 2 or axes[0] == axes[1]:
            raise MutationSpecError(f"transpose_input: axes must be two different axes, got {axes!r}")

    def apply(self, module: Any) -> tuple[Any, Report]:
        from . import _relax as R

        ops, idx = _as_list(self.p["ops"]), int(self.p["input"])
        report = Report()

        def rewrite(fname: str, call: Any, m: Any, b: Any) -> Any:
            name = R.op_name(call)
            if name not in ops or idx >= len(call.args):
                return None
            arg = call.args[idx]
            shape = R.static_shape(arg)
            if shape is None:
                report.skipped.append({"function": fname, "op": name, "why": "input has no static tensor shape"})
                return None
            nd = len(shape)
            a0, a1 = (int(a) % nd for a in self.p["axes"]) if nd >= 2 else (0, 0)
            if nd < 2 or a0 == a1 or shape[a0] != shape[a1]:
                report.skipped.append(
                    {"function": fname, "op": name, "why": f"axes {self.p['axes']} of shape {shape} differ"}
                )
                return None
            site = report.take_site(self.sites)
            if site is None:
                return None
            perm = list(range(nd))
            perm[a0], perm[a1] = perm[a1], perm[a0]
            new_arg = m.builder_.emit(R.relax.op.permute_dims(arg, perm))
            args = list(call.args)
            args[idx] = new_arg
            new = R.relax.Call(call.op, args, call.attrs, call.ty_args)
            report.add(
                fname,
                site,
                name,
                R.call_text(call),
                f"{R.call_text(new)} with {new_arg.name} = permute_dims({R.arg_text(arg)}, {perm})",
            )
            return new

        out = R.rewrite_calls(module, rewrite)
        return out, report


@register
class InsertUnary(Operator):
    name = "insert_unary"
    category = "Node Input/Output Modification"
    level = "graph"
    description = (
        "Insert a unary op (exp, round, ...) on input `input` of (before) or on the output of (after) "
        "every matching op."
    )
    params = {"ops": ["relax.nn.conv2d"], "unary": "relax.exp", "position": "before", "input": 0}
    param_schema = {"ops": OP_NAMES, "position": {"enum": ["before", "after"]},
                    "input": {"type": "integer", "minimum": 0}}
    op_params = ("ops", "unary")

    def validate(self) -> None:
        if self.p["position"] not in ("before", "after"):
            raise MutationSpecError("insert_unary: position must be 'before' or 'after'")
        if self.p["unary"] not in UNARY_OPS:
            raise MutationSpecError(f"insert_unary: {self.p['unary']!r} is not a known unary op")

    def apply(self, module: Any) -> tuple[Any, Report]:
        from . import _relax as R

        ops, idx, unary = _as_list(self.p["ops"]), int(self.p["input"]), self.p["unary"]
        before = self.p["position"] == "before"
        report = Report()

        def rewrite(fname: str, call: Any, m: Any, b: Any) -> Any:
            name = R.op_name(call)
            if name not in ops:
                return None
            target = call.args[idx] if before and idx < len(call.args) else (None if before else call)
            if target is None or R.static_shape(target) is None:
                report.skipped.append({"function": fname, "op": name, "why": "not a tensor value"})
                return None
            site = report.take_site(self.sites)
            if site is None:
                return None
            if before:
                v = m.builder_.emit(R.make_call(unary, [target]))
                args = list(call.args)
                args[idx] = v
                new = R.relax.Call(call.op, args, call.attrs, call.ty_args)
                report.add(
                    fname,
                    site,
                    name,
                    R.call_text(call),
                    f"{R.call_text(new)} with {v.name} = {unary}({R.arg_text(target)})",
                )
                return new
            v = m.builder_.emit(call)
            new = R.make_call(unary, [v])
            report.add(fname, site, name, R.call_text(call), f"{unary}({v.name}) with {v.name} = {R.call_text(call)}")
            return new

        out = R.rewrite_calls(module, rewrite)
        return out, report


@register
class ReplaceOp(Operator):
    name = "replace_op"
    category = "Layer Node Replacement"
    level = "graph"
    description = (
        "Replace every call of op(s) `from` by op `to` on the same data inputs (add->subtract, "
        "relu->sigmoid, ...). `from` may include 'pattern.relu6', the maximum/minimum kernel pair that "
        "ONNX Clip(0, 6) becomes in Relax."
    )
    params = {"from": "relax.nn.relu", "to": "relax.sigmoid"}
    param_schema = {"from": OP_NAMES}
    op_params = ("from", "to")

    @classmethod
    def category_for(cls, spec: dict[str, Any]) -> str:
        src = _as_list(spec.get("from", cls.params["from"]))
        if src and all(s in ARITHMETIC_OPS for s in src):
            return "Arithmetic Node Replacement"
        return "Layer Node Replacement"

    def validate(self) -> None:
        src, dst = _as_list(self.p["from"]), self.p["to"]
        unary_src = [s for s in src if s in UNARY_OPS or s == "pattern.relu6"]
        binary_src = [s for s in src if s in ARITHMETIC_OPS]
        if len(unary_src) + len(binary_src) != len(src):
            raise MutationSpecError(f"replace_op: unsupported source op(s) in {src}")
        if (dst in UNARY_OPS and binary_src) or (dst in ARITHMETIC_OPS and unary_src):
            raise MutationSpecError("replace_op: from and to must have the same arity")
        if dst not in UNARY_OPS and dst not in ARITHMETIC_OPS:
            raise MutationSpecError(f"replace_op: unsupported target op {dst!r}")

    def apply(self, module: Any) -> tuple[Any, Report]:
        from . import _relax as R

        src, dst = _as_list(self.p["from"]), self.p["to"]
        report = Report()
        used_pattern = [False]

        def rewrite(fname: str, call: Any, m: Any, b: Any) -> Any:
            if not R.matches(call, src, b):
                return None
            site = report.take_site(self.sites)
            if site is None:
                return None
            name = R.op_name(call)
            if name is not None and name in src:
                args = [call.args[0]] if dst in UNARY_OPS else list(call.args[:2])
                what = name
            else:  # the relu6 kernel pair: its bounds go, its data input stays
                x = R.relu6_parts(call, b)[0]
                args = [R.remap(m, x)]
                what = R.RELU6_PATTERN
                used_pattern[0] = True
            new = R.make_call(dst, args)
            report.add(fname, site, what, R.call_text(call), R.call_text(new))
            return new

        out = R.rewrite_calls(module, rewrite)
        if used_pattern[0]:
            out = R.relax.transform.DeadCodeElimination()(out)
            report.notes.append("dead maximum kernels of replaced relu6 patterns removed")
        return out, report
