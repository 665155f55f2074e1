"""Model-level operators (DeepMutation-style): weights and layers of the graph-level Relax module.

Weights are the conv/matmul weight constants (see `_relax.layer_weights`); randomness comes from
`numpy.random.default_rng(seed)` drawn in site order, so a (spec, seed, model) triple always gives the
same mutant. TVM is imported inside `apply` only (see base.py for why).
"""

from __future__ import annotations

from typing import Any

from .base import OP_NAMES, MutationSpecError, Operator, Report, register


def _fraction(op: Operator, key: str = "fraction") -> None:
    v = op.p[key]
    if not isinstance(v, int | float) or not 0 < v <= 1:
        raise MutationSpecError(f"{op.name}: {key} must be in (0, 1], got {v!r}")


class _WeightOperator(Operator):
    """Shared loop: pick selected layer weights, let `mutate_array` change each, swap the constants."""

    category = "Model-level"
    level = "model"

    def mutate_array(self, arr: Any, out_axis: int, rng: Any) -> tuple[Any, str]:  # pragma: no cover
        raise NotImplementedError

    def choose(self, selected: list[Any], rng: Any) -> list[Any]:
        return selected

    def apply(self, module: Any) -> tuple[Any, Report]:
        import numpy as np

        from . import _relax as R

        weights = R.layer_weights(module)
        report = Report(candidates=len(weights))
        rng = np.random.default_rng(self.seed)
        chosen = self.choose([w for i, w in enumerate(weights) if self.sites(i)], rng)
        replacements = []
        for w in chosen:
            before = w.array
            after, detail = self.mutate_array(before.copy(), w.out_axis, rng)
            replacements.append((w.const, after))
            report.add(w.function, w.layer, w.op, R.weight_text(before), R.weight_text(after) + f" ({detail})")
        return R.replace_constants(module, replacements), report


def _channels(n: int, fraction: float, rng: Any) -> Any:
    k = max(1, int(round(fraction * n)))
    return sorted(int(i) for i in rng.choice(n, size=k, replace=False))


@register
class GaussianFuzz(_WeightOperator):
    name = "gaussian_fuzz"
    description = (
        "Add N(0, (std_scale * std(W))^2) noise to a `fraction` of the layer weight tensors (chosen with "
        "the seed among the selected sites)."
    )
    params = {"fraction": 1.0, "std_scale": 0.1}

    def validate(self) -> None:
        _fraction(self)
        if not isinstance(self.p["std_scale"], int | float) or self.p["std_scale"] <= 0:
            raise MutationSpecError("gaussian_fuzz: std_scale must be > 0")

    def choose(self, selected: list[Any], rng: Any) -> list[Any]:
        if not selected or self.p["fraction"] >= 1:
            return selected
        idx = _channels(len(selected), float(self.p["fraction"]), rng)
        return [selected[i] for i in idx]

    def mutate_array(self, arr: Any, out_axis: int, rng: Any) -> tuple[Any, str]:
        sd = float(self.p["std_scale"]) * float(arr.std() or 1.0)
        return arr + rng.normal(0.0, sd, size=arr.shape).astype(arr.dtype), f"noise std {sd:.4g}"


@register
class WeightShuffle(_WeightOperator):
    name = "weight_shuffle"
    description = "Permute the incoming weights of a `fraction` of each selected layer's output neurons."
    params = {"fraction": 0.1}

    def validate(self) -> None:
        _fraction(self)

    def mutate_array(self, arr: Any, out_axis: int, rng: Any) -> tuple[Any, str]:
        import numpy as np

        moved = np.moveaxis(arr, out_axis, 0)
        chans = _channels(moved.shape[0], float(self.p["fraction"]), rng)
        for c in chans:
            flat = moved[c].reshape(-1)
            moved[c] = flat[rng.permutation(flat.size)].reshape(moved[c].shape)
        return np.moveaxis(moved, 0, out_axis), f"shuffled output neurons {chans}"


@register
class NeuronEffectBlock(_WeightOperator):
    name = "neuron_effect_block"
    description = "Zero all weights of a `fraction` of each selected layer's output neurons (channels)."
    params = {"fraction": 0.1}

    def validate(self) -> None:
        _fraction(self)

    def mutate_array(self, arr: Any, out_axis: int, rng: Any) -> tuple[Any, str]:
        import numpy as np

        moved = np.moveaxis(arr, out_axis, 0)
        chans = _channels(moved.shape[0], float(self.p["fraction"]), rng)
        moved[chans] = 0
        return np.moveaxis(moved, 0, out_axis), f"zeroed output neurons {chans}"


class _ActivationOperator(Operator):
    category = "Model-level"
    level = "model"
    params = {
        "ops": [
            "relax.nn.relu",
            "pattern.relu6",
            "relax.nn.silu",
            "relax.nn.gelu",
            "relax.nn.gelu_tanh",
            "relax.nn.leakyrelu",
            "relax.sigmoid",
            "relax.tanh",
        ]
    }
    param_schema = {"ops": OP_NAMES}
    op_params = ("ops",)

    def replacement(self, R: Any, m: Any, x: Any, call: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def apply(self, module: Any) -> tuple[Any, Report]:
        from . import _relax as R

        ops = list(self.p["ops"])
        report, pattern = Report(), [False]

        def rewrite(fname: str, call: Any, m: Any, b: Any) -> Any:
            if not R.matches(call, ops, b):
                return None
            site = report.take_site(self.sites)
            if site is None:
                return None
            name = R.op_name(call) if R.op_name(call) in ops else R.RELU6_PATTERN
            x = R.remap(m, R.data_input(call, b))
            if name == R.RELU6_PATTERN:
                pattern[0] = True
            new = self.replacement(R, m, x, call)
            report.add(fname, site, name, R.call_text(call), R.arg_text(new))
            return new

        out = R.rewrite_calls(module, rewrite)
        if pattern[0]:
            out = R.relax.transform.DeadCodeElimination()(out)
        return out, report


@register
class ActivationInversion(_ActivationOperator):
    name = "activation_inversion"
    description = "Negate the output of each selected activation: act(x) -> -act(x)."

    def replacement(self, R: Any, m: Any, x: Any, call: Any) -> Any:
        return R.make_call("relax.negative", [m.builder_.emit(call)])


@register
class ActivationRemoval(_ActivationOperator):
    name = "activation_removal"
    description = "Replace each selected activation by the identity: act(x) -> x."

    def replacement(self, R: Any, m: Any, x: Any, call: Any) -> Any:
        return x


@register
class LayerDeactivation(Operator):
    name = "layer_deactivation"
    category = "Model-level"
    level = "model"
    description = (
        "Skip each selected layer whose output has the type of its input (op(x, ...) -> x); layers that "
        "change the shape cannot be skipped and are no candidates. A separate bias add stays."
    )
    params = {"ops": ["relax.nn.conv2d", "relax.matmul"]}
    param_schema = {"ops": OP_NAMES}
    op_params = ("ops",)

    def apply(self, module: Any) -> tuple[Any, Report]:
        from . import _relax as R

        ops = list(self.p["ops"])
        report = Report()

        def rewrite(fname: str, call: Any, m: Any, b: Any) -> Any:
            name = R.op_name(call)
            if name not in ops:
                return None
            x = call.args[0]
            shape_in, shape_out = R.static_shape(x), R.static_shape(call)
            if shape_in is None or shape_in != shape_out or str(x.ty.dtype) != str(call.ty.dtype):
                report.skipped.append({"function": fname, "op": name, "why": f"shape {shape_in} -> {shape_out}"})
                return None
            site = report.take_site(self.sites)
            if site is None:
                return None
            report.add(fname, site, name, R.call_text(call), R.arg_text(x))
            return x

        out = R.rewrite_calls(module, rewrite)
        return out, report
