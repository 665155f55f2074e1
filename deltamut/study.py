"""The study: one source of truth that the config expands into.

`rules/common.smk` asks this module which models, optimisations, mutants, targets and devices form the
study and which result files it needs; the compare stage asks it which pairs to compare. It imports
neither TVM nor torch, so planning a large study with `snakemake -n` stays fast.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from deltamut.fsutil import read_json
from deltamut.mutations.sweep import is_sweep, site_mutant, site_spec, split_site_mutant

ORIGINAL = "original"
IDENTITY = {"operator": "identity"}
RESULTS = "results"
# A conversion of a model lives in its own result tree, `results/{model}@{conversion}/`, so that every
# rule (export, compile, deploy, infer) serves it unchanged; model names cannot contain `@` (schema).
CONVERSION_SEP = "@"
PRIMARY = "onnx"  # the conversion every optimisation and mutant starts from: `export:` (dynamo exporter)
FLOAT64 = "torch64"  # PyTorch in float64: the numeric noise floor of float32, not a study framework


class StudyError(ValueError):
    """The config is well-formed but refers to something that does not exist."""


def _operator_level(spec: dict[str, Any]) -> str:
    """The level (graph, kernel, model, input; identity: none) of a checked mutation spec, without importing
    TVM: always the operator's, never the spec's own `level:` (which `check_spec` holds to the operator's)."""
    from deltamut.mutations import operator_info

    return operator_info(spec["operator"])["level"]


def _checked_mutations(entries: Any, where: str) -> dict[str, dict[str, Any]]:
    """Mutation entries (name -> spec) checked against their operators' declared parameters before any job
    runs; a bad one stops planning with one line naming its key (`<where><name>.<key>: ...`)."""
    from deltamut.mutations.base import MutationSpecError, check_spec

    if not isinstance(entries, dict):
        raise StudyError(f"{where.rstrip(': .')}: must map mutation names to mappings with an `operator:`")
    for name, spec in entries.items():
        if split_site_mutant(str(name)):
            raise StudyError(f"{where}{name}: names ending in .site<k> are reserved for the mutants of a sweep")
        try:
            check_spec(spec)
        except MutationSpecError as exc:
            raise StudyError(f"{where}{name}.{exc}") from None
        if is_sweep(spec) and _operator_level(spec) not in ("graph", "model", "kernel"):
            raise StudyError(f"{where}{name}.sites: a {_operator_level(spec)}-level operator has no sites to "
                             f"sweep; give `sites: each` or `sites: {{sample: N}}` to graph, model or kernel ones")
    return entries


@dataclass
class Study:
    config: dict[str, Any]
    mutations: dict[str, dict[str, Any]]
    # (model, opt, sweep entry) -> the path of the sweep's census (`mutations.sweep.census`), once it exists: the
    # workflow points this at its checkpoint (which postpones what depends on a census not yet run)
    site_source: Callable[[str, str, str], str] | None = field(default=None, compare=False)
    _censuses: dict[tuple, tuple[float, dict[str, Any]]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_config(cls, config: dict[str, Any], base: str | Path = ".") -> Study:
        mutations: dict[str, dict[str, Any]] = {}
        catalog = config.get("mutation_catalog")
        if catalog:
            path = Path(base) / catalog
            if not path.is_file():
                raise StudyError(f"mutation_catalog: file {path} not found")
            try:
                entries = yaml.safe_load(path.read_text()) or {}
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise StudyError(f"mutation_catalog: {path} is not valid YAML: {exc}") from None
            mutations.update(_checked_mutations(entries, f"mutation_catalog {path}: "))
        mutations.update(_checked_mutations(config.get("mutations") or {}, "mutations."))
        if ORIGINAL in mutations:
            if mutations[ORIGINAL].get("operator") != "identity":
                raise StudyError(f"mutations: {ORIGINAL!r} is reserved for the unmutated module")
            del mutations[ORIGINAL]
        study = cls(config=config, mutations=mutations)
        study._check_references()
        return study

    # --- the axes -------------------------------------------------------------------------------
    @property
    def models(self) -> dict[str, dict[str, Any]]:
        return self.config["models"]

    @property
    def optimisations(self) -> dict[str, dict[str, Any]]:
        return self.config["optimisations"]

    def ablations(self, model: str) -> dict[str, dict[str, Any]]:
        """The ablated configurations of a model (`ablation:`): the base optimisation without each step."""
        spec = self.config.get("ablation")
        if not spec or model not in spec.get("models", list(self.models)) or CONVERSION_SEP in model:
            return {}
        return self._ablated

    @cached_property
    def _ablated(self) -> dict[str, dict[str, Any]]:
        """Every ablated configuration, built once: input functions ask for them on every job."""
        spec = self.config.get("ablation")
        if not spec:
            return {}
        from deltamut.ablation import ablated_optimisations

        return ablated_optimisations(spec["of"], self.optimisations[spec["of"]], spec.get("steps"))

    @property
    def throughput_batch(self) -> int:
        """`runner.batch_size`; above 1 it adds the throughput study (rules/throughput.smk)."""
        return int(self.config.get("runner", {}).get("batch_size") or 1)

    def reused_from(self, model: str, opt: str, stage: str) -> str | None:
        """The optimisation whose `stage` artifact ("graph": compile's graph.json, "lowering": the original's
        lowered module) an ablated configuration can copy instead of rebuilding: switching off a codegen step
        (fast-math, LLVM -O, schedules) leaves the graph and the lowering as they were."""
        from deltamut.compiler.optconfig import graph_slice, lowering_slice

        base = (self.config.get("ablation") or {}).get("of")
        if opt not in self.ablations(model.partition(CONVERSION_SEP)[0]) or CONVERSION_SEP in model:
            return None
        slices = [graph_slice] if stage == "graph" else [graph_slice, lowering_slice]
        same = all(f(self.optimisation(opt)) == f(self.optimisations[base]) for f in slices)
        return base if same else None

    def optimisation(self, name: str) -> dict[str, Any]:
        """A configured or an ablated optimisation, by name: what the compile, mutate and deploy rules read."""
        if name in self.optimisations:
            return self.optimisations[name]
        if name in self._ablated:
            return self._ablated[name]
        raise StudyError(f"unknown optimisation {name!r}")

    @property
    def targets(self) -> dict[str, dict[str, Any]]:
        return self.config["targets"]

    @property
    def devices(self) -> dict[str, dict[str, Any]]:
        return self.config["devices"]

    # --- conversions: other ways from the PyTorch model to a runtime --------------------------------------
    @staticmethod
    def split(model: str) -> tuple[str, str]:
        """`lite0@torch-export` -> (`lite0`, `torch-export`); a plain model -> (`lite0`, PRIMARY)."""
        base, _, conversion = model.partition(CONVERSION_SEP)
        return base, conversion or PRIMARY

    def conversions(self, model: str) -> dict[str, dict[str, Any]]:
        """The conversions of a model; an ONNX-file model has no PyTorch module to convert."""
        if self.models[model].get("source", "zoo") == "onnx":
            return {}
        return dict(self.config.get("conversions") or {})

    def export_settings(self, model: str) -> dict[str, Any]:
        """How `model` (plain or `base@conversion`) is exported: exporter and opset."""
        base, conversion = self.split(model)
        primary = {"exporter": "dynamo", "opset": 18, **(self.config.get("export") or {})}
        if conversion == PRIMARY:
            return primary
        spec = self.conversions(base)[conversion]
        return {"exporter": spec["exporter"], "opset": spec.get("opset", primary["opset"])}

    def converted_runs(self, model: str) -> list[tuple[str, str | None]]:
        """(converted model, optimisation or None for ONNX Runtime) of a base model's conversions."""
        runs: list[tuple[str, str | None]] = []
        for conversion, spec in self.conversions(model).items():
            converted = f"{model}{CONVERSION_SEP}{conversion}"
            if spec["exporter"] != "torch.export" and "onnxruntime" in self.frameworks(model):
                runs.append((converted, None))
            runs += [(converted, opt) for opt in spec.get("compile_under", list(self.optimisations))]
        return runs

    def float64_reference(self, model: str) -> bool:
        """Whether a float64 PyTorch run measures the float32 noise floor of `model` (zoo models only)."""
        return self.config.get("compare", {}).get("float64_reference", True) and "torch" in self.frameworks(model)

    def frameworks(self, model: str) -> list[str]:
        """Framework references of a model: an ONNX-file model has no PyTorch module."""
        fws = list(self.config.get("frameworks", ["torch", "onnxruntime"]))
        if self.models[model].get("source", "zoo") == "onnx":
            fws = [f for f in fws if f != "torch"]
        return fws

    def reference(self, model: str) -> str:
        """The framework every TVM variant of `model` is compared against."""
        wanted = self.config.get("compare", {}).get("reference", "torch")
        fws = self.frameworks(model)
        return wanted if wanted in fws else fws[0]

    def _entries(self, model: str) -> list[str]:
        """The catalog entries a model's `mutants:` names, patterns (`mnn*`) expanded, sweeps as entries."""
        chosen = self.models[model].get("mutants", [])
        names = sorted(self.mutations) if chosen == "all" else \
            [m for pattern in chosen for m in sorted(fnmatch.filter(self.mutations, pattern)) or [pattern]]
        return list(dict.fromkeys(m for m in names if m != ORIGINAL))

    def mutants(self, model: str, opt: str | None = None, expand: bool = True) -> list[str]:
        """The original plus the model's mutants; under an optimisation not in the model's `mutate_under`,
        only the original. Entries of `mutants` may be shell-style patterns (`mnn*`). Under an optimisation, a
        sweep entry stands for its per-site mutants (`<entry>.site<k>`), which its census chooses; with
        `expand=False` they are left out (what is known before any census ran)."""
        if CONVERSION_SEP in model:
            return [ORIGINAL]
        spec = self.models[model]
        if opt is not None and opt not in spec.get("mutate_under", list(self.optimisations)):
            return [ORIGINAL]
        out = [ORIGINAL]
        for name in self._entries(model):
            if opt is not None and name in self.mutations and is_sweep(self.mutations[name]):
                out += [site_mutant(name, k) for k in self.sweep(model, opt, name)["chosen"]] if expand else []
            else:
                out.append(name)
        return out

    def sweeps(self, model: str, opt: str) -> list[str]:
        """The sweep entries of (model, optimisation): each needs its census before its mutants are known."""
        if CONVERSION_SEP in model or opt not in self.models[model].get("mutate_under", list(self.optimisations)):
            return []
        return [m for m in self._entries(model) if m in self.mutations and is_sweep(self.mutations[m])]

    @staticmethod
    def sweep_path(model: str, opt: str, entry: str) -> str:
        return f"{RESULTS}/{model}/tvm/{opt}/sweeps/{entry}.json"

    def sweep_paths(self, model: str) -> list[str]:
        return [self.sweep_path(model, opt, e) for opt in self.optimisations for e in self.sweeps(model, opt)]

    def sweep(self, model: str, opt: str, entry: str) -> dict[str, Any]:
        """A sweep's census: candidates, each site's depth, the sites chosen. Read once per version of its file:
        planning a 200-site sweep asks for it on every job."""
        path = self.site_source(model, opt, entry) if self.site_source else self.sweep_path(model, opt, entry)
        try:
            stamp = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            raise StudyError(f"{path}: the census of sweep {entry!r} has not run yet (the workflow runs it "
                             f"before it plans the sweep's mutants)") from None
        key = (model, opt, entry)
        if key not in self._censuses or self._censuses[key][0] != stamp:
            self._censuses[key] = (stamp, read_json(path))
        return self._censuses[key][1]

    def site_of(self, model: str, opt: str, mutant: str) -> dict[str, Any]:
        """The site index and depth of a sweep's mutant (empty for any other mutant)."""
        split = split_site_mutant(mutant)
        if split is None or split[0] not in self.mutations:
            return {}
        entry, k = split
        depth = next((s["depth"] for s in self.sweep(model, opt, entry).get("sites", []) if s["site"] == k), None)
        return {"sweep": entry, "site": k, "depth": depth}

    def mutation(self, mutant: str) -> dict[str, Any]:
        if mutant == ORIGINAL:
            return IDENTITY
        if mutant in self.mutations:
            return self.mutations[mutant]
        split = split_site_mutant(mutant)
        if split is not None and split[0] in self.mutations and is_sweep(self.mutations[split[0]]):
            return site_spec(self.mutations[split[0]], split[1])
        raise StudyError(f"unknown mutation {mutant!r}")

    def mutation_info(self, mutant: str) -> dict[str, str]:
        """Operator, category and level of a mutant (of its catalog entry): the kill matrix's coordinates."""
        if mutant == ORIGINAL:
            return {}
        from deltamut.mutations import spec_info

        info = spec_info(self.mutation(mutant))
        return {"operator": info["name"], "category": info["category"], "level": info["level"]}

    def mutates_graph(self, mutant: str) -> bool:
        """Graph- and model-level mutants act on the graph as imported, before the graph passes."""
        return mutant != ORIGINAL and _operator_level(self.mutation(mutant)) in ("graph", "model")

    def is_input_mutant(self, mutant: str) -> bool:
        return mutant != ORIGINAL and _operator_level(self.mutation(mutant)) == "input"

    def target_of(self, device: str) -> str:
        return self.devices[device]["target"]

    def used_targets(self) -> list[str]:
        return sorted({self.target_of(d) for d in self.devices})

    def tvm_variants(self, model: str, expand: bool = True) -> list[tuple[str, str, str]]:
        """(optimisation, mutant, device) triples of a model; ablated optimisations run the original only."""
        return [(opt, mutant, dev) for opt in self.optimisations for mutant in self.mutants(model, opt, expand)
                for dev in self.devices] + \
            [(opt, ORIGINAL, dev) for opt in self.ablations(model) for dev in self.devices]

    # --- files ----------------------------------------------------------------------------------
    @staticmethod
    def inputs_path(model: str, mutant: str = ORIGINAL) -> str:
        model = model.partition(CONVERSION_SEP)[0]  # a conversion runs on its model's images
        return f"{RESULTS}/{model}/data/inputs.npz" if mutant == ORIGINAL else \
            f"{RESULTS}/{model}/data/{mutant}/inputs.npz"

    @staticmethod
    def reference_path(model: str, framework: str) -> str:
        return f"{RESULTS}/{model}/reference/{framework}.npz"

    @staticmethod
    def manifest_path(model: str, opt: str, mutant: str) -> str:
        return f"{RESULTS}/{model}/tvm/{opt}/{mutant}/manifest.json"

    @staticmethod
    def index_path(model: str, opt: str) -> str:
        return f"{RESULTS}/{model}/tvm/{opt}/mutants.json"

    def built_mutants(self, model: str, opt: str) -> list[str]:
        """The mutants of (model, opt) that lower to a module of their own: not the original, and not the
        input-level ones, which run the original's library on other images."""
        return [m for m in self.mutants(model, opt) if m != ORIGINAL and not self.is_input_mutant(m)]

    @staticmethod
    def outputs_path(model: str, opt: str, mutant: str, device: str) -> str:
        return f"{RESULTS}/{model}/tvm/{opt}/{mutant}/infer/{device}/outputs.npz"

    def model_spec(self, model: str) -> dict[str, Any]:
        """The model's entry without the study-level keys: what the model zoo reads. A conversion's is its
        model's."""
        base = self.split(model)[0]
        return {k: v for k, v in self.models[base].items() if k not in ("mutants", "mutate_under")}

    def variants(self, model: str, expand: bool = True) -> dict[str, dict[str, str]]:
        """Variant id -> its coordinates and result file, for every result of a model (`expand=False`: but
        the mutants of sweeps, known only once their census ran)."""
        out = {fw: {"framework": fw, "conversion": "" if fw == "torch" else PRIMARY,
                    "path": self.reference_path(model, fw)} for fw in self.frameworks(model)}
        if self.float64_reference(model):
            out[FLOAT64] = {"framework": FLOAT64, "conversion": "", "path": self.reference_path(model, FLOAT64)}
        for opt, mutant, dev in self.tvm_variants(model, expand):
            out[f"tvm/{opt}/{mutant}/{dev}"] = {
                "framework": "tvm", "conversion": PRIMARY, "opt": opt, "mutant": mutant, "device": dev,
                "target": self.target_of(dev), "path": self.outputs_path(model, opt, mutant, dev),
                "manifest": self.manifest_path(model, opt, ORIGINAL if self.is_input_mutant(mutant) else mutant),
                **self.mutation_info(mutant), **self.site_of(model, opt, mutant)}
        for converted, opt in self.converted_runs(model):
            conversion = self.split(converted)[1]
            if opt is None:
                out[f"onnxruntime{CONVERSION_SEP}{conversion}"] = {
                    "framework": "onnxruntime", "conversion": conversion,
                    "path": self.reference_path(converted, "onnxruntime")}
                continue
            for dev in self.devices:
                out[f"tvm{CONVERSION_SEP}{conversion}/{opt}/{ORIGINAL}/{dev}"] = {
                    "framework": "tvm", "conversion": conversion, "opt": opt, "mutant": ORIGINAL, "device": dev,
                    "target": self.target_of(dev), "path": self.outputs_path(converted, opt, ORIGINAL, dev),
                    "manifest": self.manifest_path(converted, opt, ORIGINAL)}
        return out

    def pairs(self, model: str) -> list[dict[str, Any]]:
        """The comparisons of a model, each `b` being the baseline `a` is judged against.

        framework: each framework against the reference; compiler: each unmutated TVM variant against the
        reference; mutant: each mutant against the original on the same optimisation and device;
        optimisation: each optimisation against the first one; device: each device against the first one;
        mutant_device: each mutant on each further device against the same mutant on the first device, with the
        original on those two devices as its `noise` pair.
        """
        ref = self.reference(model)
        opts, devs = list(self.optimisations), list(self.devices)
        pairs = [{"kind": "framework", "a": fw, "b": ref} for fw in self.frameworks(model) if fw != ref]
        for opt in opts:
            for dev in devs:
                original = f"tvm/{opt}/{ORIGINAL}/{dev}"
                pairs.append({"kind": "compiler", "a": original, "b": ref})
                pairs += [{"kind": "mutant", "a": f"tvm/{opt}/{m}/{dev}", "b": original}
                          for m in self.mutants(model, opt) if m != ORIGINAL]
                if opt != opts[0]:
                    pairs.append({"kind": "optimisation", "a": original, "b": f"tvm/{opts[0]}/{ORIGINAL}/{dev}"})
                if dev != devs[0]:
                    first = f"tvm/{opt}/{ORIGINAL}/{devs[0]}"
                    pairs.append({"kind": "device", "a": original, "b": first})
                    # MutateNN's headline: the same mutant on two devices, judged beyond the original's own
                    # cross-device difference on each image
                    pairs += [{"kind": "mutant_device", "a": f"tvm/{opt}/{m}/{dev}", "b": f"tvm/{opt}/{m}/{devs[0]}",
                               "noise": [original, first]} for m in self.mutants(model, opt) if m != ORIGINAL]
        base = (self.config.get("ablation") or {}).get("of")
        pairs += [{"kind": "ablation", "a": f"tvm/{opt}/{ORIGINAL}/{dev}", "b": f"tvm/{base}/{ORIGINAL}/{dev}"}
                  for opt in self.ablations(model) for dev in devs]
        if self.float64_reference(model):
            pairs.append({"kind": "precision", "a": "torch", "b": FLOAT64})
        for converted, opt in self.converted_runs(model):
            conversion = self.split(converted)[1]
            if opt is None:
                a = f"onnxruntime{CONVERSION_SEP}{conversion}"
                pairs += [{"kind": "framework", "a": a, "b": ref}, {"kind": "conversion", "a": a, "b": "onnxruntime"}]
                continue
            for dev in devs:
                a = f"tvm{CONVERSION_SEP}{conversion}/{opt}/{ORIGINAL}/{dev}"
                pairs += [{"kind": "compiler", "a": a, "b": ref},
                          {"kind": "conversion", "a": a, "b": f"tvm/{opt}/{ORIGINAL}/{dev}"}]
        return pairs + self._extra_pairs(model)

    def _sweep_variant(self, model: str, vid: str) -> bool:
        """Whether `vid` names a one-site mutant of one of the model's sweeps (`tvm/<opt>/<entry>.site<k>/<dev>`)."""
        parts = vid.split("/")
        split = split_site_mutant(parts[2]) if len(parts) == 4 and parts[0] == "tvm" else None
        return bool(split) and parts[1] in self.optimisations and parts[3] in self.devices and \
            split[0] in self.sweeps(model, parts[1])

    def _extra_pairs(self, model: str) -> list[dict[str, str]]:
        """The config's `compare.pairs`: any two variants of a model, by id (see `variants`)."""
        return [{"kind": "custom", "a": p["a"], "b": p["b"]} for p in self.config.get("compare", {}).get("pairs", [])
                if p.get("model", model) == model]

    def model_outputs(self, model: str, expand: bool = True) -> list[str]:
        return [v["path"] for v in self.variants(model, expand).values()]

    def model_manifests(self, model: str) -> list[str]:
        return sorted({v["manifest"] for v in self.variants(model).values() if "manifest" in v})

    def model_indexes(self, model: str) -> dict[str, str]:
        """Optimisation -> the mutant index of (model, optimisation), where it has mutants of its own to build."""
        return {opt: self.index_path(model, opt) for opt in self.optimisations if self.built_mutants(model, opt)}

    def final_outputs(self) -> list[str]:
        from deltamut.plots import PLOTS as plots  # the report's figures (rules/report.smk)

        per_model = [f"{RESULTS}/{m}/compare/summary.md" for m in self.models]
        per_model += [f"{RESULTS}/{m}/report/{p}.png" for m in self.models for p in plots]
        if self.throughput_batch > 1:  # the throughput study (zoo models)
            per_model += [f"{RESULTS}/{m}/compare/throughput.{ext}" for m in self.models for ext in ("csv", "md")
                          if self.models[m].get("source", "zoo") == "zoo"]
        # Every result known before a sweep's census runs, and the censuses: so that a dry run shows the whole
        # plan but a sweep's one-site mutants (which compare then waits for)
        per_model += [p for m in self.models for p in self.model_outputs(m, expand=False) + self.sweep_paths(m)]
        return per_model + [f"{RESULTS}/compare/per_pair.csv", f"{RESULTS}/summary.md"]

    # --- checks the schema cannot express ---------------------------------------------------------
    def _check_references(self) -> None:
        from deltamut.compiler.optconfig import GRAPH_PASSES
        from deltamut.models.names import ZOO_ARCHS

        for model, spec in self.models.items():
            if spec.get("source", "zoo") == "zoo":
                arch = spec.get("arch") or model
                if arch not in ZOO_ARCHS:
                    key = f"models.{model}.arch" if spec.get("arch") else f"models.{model} (no arch: the name is used)"
                    raise StudyError(f"{key}: unknown architecture {arch!r}; known: {', '.join(ZOO_ARCHS)}")
            elif not spec.get("path"):
                raise StudyError(f"models.{model}.path: a model with source 'onnx' needs the path of its ONNX file")
            unknown_opts = [o for o in spec.get("mutate_under", []) if o not in self.optimisations]
            if unknown_opts:
                raise StudyError(f"models.{model}.mutate_under: unknown optimisation(s) {unknown_opts}; "
                                 f"known: {', '.join(self.optimisations)}")
            if spec.get("mutants", []) != "all":
                unknown = [m for m in self.mutants(model) if m != ORIGINAL and m not in self.mutations]
                if unknown:
                    raise StudyError(
                        f"models.{model}.mutants: unknown mutation(s) {unknown}; "
                        f"known: {', '.join(sorted(self.mutations)) or '(none)'}"
                    )
        for opt, spec in self.optimisations.items():
            unknown_passes = [p for p in spec.get("passes", []) if p not in GRAPH_PASSES]
            if unknown_passes:
                raise StudyError(f"optimisations.{opt}.passes: unknown pass(es) {unknown_passes}; "
                                 f"known: {', '.join(GRAPH_PASSES)}")
        for device, spec in self.devices.items():
            if spec["target"] not in self.targets:
                raise StudyError(
                    f"devices.{device}.target: unknown target {spec['target']!r}; known: {', '.join(self.targets)}"
                )
        ablation = self.config.get("ablation")
        if ablation:
            if ablation["of"] not in self.optimisations:
                raise StudyError(f"ablation.of: unknown optimisation {ablation['of']!r}; "
                                 f"known: {', '.join(self.optimisations)}")
            unknown_models = [m for m in ablation.get("models", []) if m not in self.models]
            if unknown_models:
                raise StudyError(f"ablation.models: unknown model(s) {unknown_models}; known: {', '.join(self.models)}")
            from deltamut.ablation import ablation_steps

            steps = ablation_steps(self.optimisations[ablation["of"]])
            unknown_steps = [s for s in ablation.get("steps", []) if s not in steps]
            if unknown_steps:
                raise StudyError(f"ablation.steps: {ablation['of']} has no step(s) {unknown_steps}; "
                                 f"its steps: {', '.join(steps)}")
        for conversion, spec in (self.config.get("conversions") or {}).items():
            unknown_opts = [o for o in spec.get("compile_under", []) if o not in self.optimisations]
            if unknown_opts:
                raise StudyError(f"conversions.{conversion}.compile_under: unknown optimisation(s) {unknown_opts}; "
                                 f"known: {', '.join(self.optimisations)}")
            if spec["exporter"] == "torch.export" and "opset" in spec:
                raise StudyError(f"conversions.{conversion}.opset: torch.export makes no ONNX, it has no opset")
        for i, pair in enumerate(self.config.get("compare", {}).get("pairs", [])):
            models = [pair["model"]] if "model" in pair else list(self.models)
            if pair.get("model", models[0]) not in self.models:
                raise StudyError(f"compare.pairs[{i}].model: unknown model {pair['model']!r}")
            for model in models:
                ids = self.variants(model, expand=False)  # a sweep's mutants are known after its census only
                for side in ("a", "b"):
                    if pair[side] not in ids and not self._sweep_variant(model, pair[side]):
                        raise StudyError(f"compare.pairs[{i}].{side}: {model} has no variant {pair[side]!r}; "
                                         f"its variants: {', '.join(ids)}")
        ref = self.config.get("compare", {}).get("reference")
        fws = self.config.get("frameworks", ["torch", "onnxruntime"])
        if ref and ref not in fws:
            raise StudyError(f"compare.reference: {ref!r} is not one of the study's frameworks {fws}")
        for name in self.mutations:
            if _operator_level(self.mutation(name)) == "none":
                raise StudyError(f"mutations.{name}.operator: identity is the unmutated original, not a mutant")
