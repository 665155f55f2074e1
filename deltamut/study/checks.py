"""Checks the schema cannot express: references between sections of the config, one function per section.

Each raises `StudyError` with one line naming the key (`models.lite0.mutate_under: unknown optimisation(s)
['fastest']; known: basic, default`), so `snakemake -n` stops before any job runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deltamut.mutations.sweep import split_site_mutant
from deltamut.study.catalog import StudyError
from deltamut.study.refs import ORIGINAL, parse_variant_id

if TYPE_CHECKING:
    from deltamut.study.plan import Study


def _unknown(where: str, what: str, names: list[str], known) -> None:
    """`what` names the kind in its plural-or-not form: "optimisation(s)", "pass(es)"."""
    if names:
        raise StudyError(f"{where}: unknown {what} {names}; known: {', '.join(known) or '(none)'}")


def check_models(study: Study) -> None:
    from deltamut.models.names import ZOO_ARCHS

    for model, spec in study.models.items():
        if spec.get("source", "zoo") == "zoo":
            arch = spec.get("arch") or model
            if arch not in ZOO_ARCHS:
                key = f"models.{model}.arch" if spec.get("arch") else f"models.{model} (no arch: the name is used)"
                raise StudyError(f"{key}: unknown architecture {arch!r}; known: {', '.join(ZOO_ARCHS)}")
        elif not spec.get("path"):
            raise StudyError(f"models.{model}.path: a model with source 'onnx' needs the path of its ONNX file")
        _check_model_data(model, spec)
        _unknown(f"models.{model}.mutate_under", "optimisation(s)",
                 [o for o in spec.get("mutate_under", []) if o not in study.optimisations], study.optimisations)
        if spec.get("mutants", []) != "all":
            _unknown(f"models.{model}.mutants", "mutation(s)",
                     [m for m in study.mutants(model) if m != ORIGINAL and m not in study.catalog],
                     sorted(study.catalog))


def _check_model_data(model: str, spec: dict) -> None:
    """What a model entry says about its data that can be known before any job: preprocessing fields that
    contradict each other (one mean for three channels) and a class names file that cannot be read."""
    from deltamut.data.preprocessing import TORCHVISION, Preprocessing
    from deltamut.models.labels import read_class_names

    if isinstance(spec.get("preprocessing"), dict):
        try:
            Preprocessing.from_dict(spec["preprocessing"], base=TORCHVISION)
        except ValueError as err:
            raise StudyError(f"models.{model}.preprocessing: {err}") from None
    if spec.get("labels") is not None:
        try:
            read_class_names(spec["labels"])
        except ValueError as err:
            raise StudyError(f"models.{model}.labels: {err}") from None


def check_optimisations(study: Study) -> None:
    from deltamut.compiler.optconfig import GRAPH_PASSES

    for opt, spec in study.optimisations.items():
        unknown = [p for p in spec.get("passes", []) if p not in GRAPH_PASSES]
        _unknown(f"optimisations.{opt}.passes", "pass(es)", unknown, GRAPH_PASSES)


def check_devices(study: Study) -> None:
    for device, spec in study.devices.items():
        if spec["target"] not in study.targets:
            raise StudyError(f"devices.{device}.target: unknown target {spec['target']!r}; "
                             f"known: {', '.join(study.targets)}")


def check_ablation(study: Study) -> None:
    ablation = study.config.get("ablation")
    if not ablation:
        return
    if ablation["of"] not in study.optimisations:
        raise StudyError(f"ablation.of: unknown optimisation {ablation['of']!r}; "
                         f"known: {', '.join(study.optimisations)}")
    _unknown("ablation.models", "model(s)", [m for m in ablation.get("models", []) if m not in study.models],
             study.models)
    from deltamut.ablation import ablation_steps

    steps = ablation_steps(study.optimisations[ablation["of"]])
    unknown = [s for s in ablation.get("steps", []) if s not in steps]
    if unknown:
        raise StudyError(f"ablation.steps: {ablation['of']} has no step(s) {unknown}; its steps: {', '.join(steps)}")


def check_conversions(study: Study) -> None:
    for conversion, spec in (study.config.get("conversions") or {}).items():
        _unknown(f"conversions.{conversion}.compile_under", "optimisation(s)",
                 [o for o in spec.get("compile_under", []) if o not in study.optimisations], study.optimisations)
        if spec["exporter"] == "torch.export" and "opset" in spec:
            raise StudyError(f"conversions.{conversion}.opset: torch.export makes no ONNX, it has no opset")


def _is_sweep_variant(study: Study, model: str, vid: str) -> bool:
    """Whether `vid` names a one-site mutant of one of the model's sweeps (`tvm/<opt>/<entry>.site<k>/<dev>`):
    known only once its census ran, so a pair may name it before."""
    c = parse_variant_id(vid)
    split = split_site_mutant(c["mutant"]) if c["framework"] == "tvm" else None
    return bool(split) and c["device"] in study.devices and split[0] in study.sweeps(model, c["opt"])


def check_pairs(study: Study) -> None:
    for i, pair in enumerate(study.config["compare"].get("pairs", [])):
        if "model" in pair and pair["model"] not in study.models:
            raise StudyError(f"compare.pairs[{i}].model: unknown model {pair['model']!r}")
        for model in [pair["model"]] if "model" in pair else list(study.models):
            ids = study.variants(model, expand=False)
            for side in ("a", "b"):
                if pair[side] not in ids and not _is_sweep_variant(study, model, pair[side]):
                    raise StudyError(f"compare.pairs[{i}].{side}: {model} has no variant {pair[side]!r}; "
                                     f"its variants: {', '.join(ids)}")


def check_reference(study: Study) -> None:
    ref, fws = study.config["compare"].get("reference"), study.config["frameworks"]
    if ref and ref not in fws:
        raise StudyError(f"compare.reference: {ref!r} is not one of the study's frameworks {fws}")


CHECKS = (check_models, check_optimisations, check_devices, check_ablation, check_conversions, check_pairs,
          check_reference)


def check_study(study: Study) -> None:
    for check in CHECKS:
        check(study)
