"""The study: one source of truth that the config expands into.

`rules/common.smk` asks it which models, optimisations, mutants, targets and devices form the study and
which result files it needs; the compare stage asks it which pairs to compare. Paths come from
`deltamut.paths`, names of models and variants from `refs`, mutations from `catalog`. It imports neither TVM
nor torch, so planning a large study with `snakemake -n` stays fast.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from deltamut import paths
from deltamut.fsutil import as_files, read_json
from deltamut.mutations.sweep import site_mutant, split_site_mutant
from deltamut.study.catalog import Catalog, StudyError
from deltamut.study.placement import Placement, placement, runtime_settings
from deltamut.study.refs import FLOAT64, ORIGINAL, PRIMARY, ModelRef, framework_id, variant_id
from deltamut.study.shards import Shard, plan_shards


@dataclass
class Study:
    config: dict[str, Any]
    catalog: Catalog
    # (model, opt, sweep entry) -> the path of the sweep's census (`mutations.sweep.census`), once it exists: the
    # workflow points this at its checkpoint (which postpones what depends on a census not yet run)
    site_source: Callable[[str, str, str], str] | None = field(default=None, compare=False)
    _censuses: dict[tuple, tuple[float, dict[str, Any]]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_config(cls, config: dict[str, Any], base: str | Path = ".") -> Study:
        from deltamut.study.checks import check_study

        study = cls(config=config, catalog=Catalog.from_config(config, base))
        check_study(study)
        return study

    # --- the axes -------------------------------------------------------------------------------
    @property
    def models(self) -> dict[str, dict[str, Any]]:
        return self.config["models"]

    @property
    def optimisations(self) -> dict[str, dict[str, Any]]:
        return self.config["optimisations"]

    @property
    def targets(self) -> dict[str, dict[str, Any]]:
        return self.config["targets"]

    @property
    def devices(self) -> dict[str, dict[str, Any]]:
        return self.config["devices"]

    def target_of(self, device: str) -> str:
        return self.devices[device]["target"]

    @cached_property
    def _placements(self) -> dict[str, Placement]:
        return {d: placement(spec, self.targets[spec["target"]]) for d, spec in self.devices.items()}

    def placement(self, device: str) -> Placement:
        """Where the device's infer jobs run on a cluster (`deltamut.study.placement`): worked out once per
        device, since every infer job's resources and environment ask for it while the DAG is built."""
        return self._placements[device]

    def device_settings(self, device: str) -> dict[str, Any]:
        """What an infer job needs of its device's entry, its placement left out."""
        return runtime_settings(self.devices[device])

    def spec_of(self, model: str) -> dict[str, Any]:
        """The config entry of a model (a conversion's or a batched build's is its model's)."""
        return self.models[ModelRef.parse(model).base]

    def is_onnx_file(self, model: str) -> bool:
        return self.spec_of(model).get("source", "zoo") == "onnx"

    def model_spec(self, model: str) -> dict[str, Any]:
        """The model's entry without the study-level keys: what the model zoo reads."""
        return {k: v for k, v in self.spec_of(model).items() if k not in ("mutants", "mutate_under")}

    def ablations(self, model: str) -> dict[str, dict[str, Any]]:
        """The ablated configurations of a model (`ablation:`): the base optimisation without each step."""
        spec = self.config.get("ablation")
        if not spec or ModelRef.parse(model).is_derived or model not in spec.get("models", list(self.models)):
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

    def optimisation(self, name: str) -> dict[str, Any]:
        """A configured or an ablated optimisation, by name: what the compile, mutate and deploy rules read."""
        if name in self.optimisations:
            return self.optimisations[name]
        if name in self._ablated:
            return self._ablated[name]
        raise StudyError(f"unknown optimisation {name!r}")

    def source_opt(self, model: str, opt: str, stage: str) -> str:
        """The optimisation whose `stage` artifact ("graph": compile's graph.json; "lowering": the original's
        lowered module) a configuration uses: its own, or, for an ablated step that leaves that stage alone,
        its base's (switching off fast-math, LLVM -O or the schedules changes neither graph nor lowering)."""
        from deltamut.compiler.optconfig import graph_slice, lowering_slice

        base = (self.config.get("ablation") or {}).get("of")
        if opt not in self.ablations(model):
            return opt
        slices = [graph_slice] if stage == "graph" else [graph_slice, lowering_slice]
        same = all(f(self.optimisation(opt)) == f(self.optimisations[base]) for f in slices)
        return base if same else opt

    def frameworks(self, model: str) -> list[str]:
        """Framework references of a model: an ONNX-file model has no PyTorch module."""
        fws = list(self.config["frameworks"])
        return [f for f in fws if f != "torch"] if self.is_onnx_file(model) else fws

    def reference(self, model: str) -> str:
        """The framework every TVM variant of `model` is compared against."""
        wanted, fws = self.config["compare"].get("reference", "torch"), self.frameworks(model)
        return wanted if wanted in fws else fws[0]

    def float64_reference(self, model: str) -> bool:
        """Whether a float64 PyTorch run measures the float32 noise floor of `model` (zoo models only)."""
        return bool(self.config["compare"]["float64_reference"]) and "torch" in self.frameworks(model)

    # --- conversions and batched builds: other trees of one model ---------------------------------------
    def conversions(self, model: str) -> dict[str, dict[str, Any]]:
        """The conversions of a model; an ONNX-file model has no PyTorch module to convert."""
        return {} if self.is_onnx_file(model) else dict(self.config.get("conversions") or {})

    def export_settings(self, model: str) -> dict[str, Any]:
        """How `model` (plain, converted or batched) is exported: exporter, opset and batch size."""
        ref = ModelRef.parse(model)
        primary = dict(self.config["export"])
        if ref.is_conversion:
            spec = self.conversions(ref.base)[ref.conversion]
            primary = {"exporter": spec["exporter"], "opset": spec.get("opset", primary["opset"])}
        return {**primary, "batch": ref.batch}

    def converted_runs(self, model: str) -> list[tuple[ModelRef, str | None]]:
        """(converted model, optimisation or None for ONNX Runtime) of a base model's conversions."""
        runs: list[tuple[ModelRef, str | None]] = []
        for conversion, spec in self.conversions(model).items():
            converted = ModelRef(model, conversion)
            if spec["exporter"] != "torch.export" and "onnxruntime" in self.frameworks(model):
                runs.append((converted, None))
            runs += [(converted, opt) for opt in spec.get("compile_under", list(self.optimisations))]
        return runs

    @property
    def throughput_batch(self) -> int:
        """`runner.batch_size`; above 1 it adds the throughput study (rules/throughput.smk)."""
        return int(self.config["runner"]["batch_size"])

    def throughput_models(self) -> list[str]:
        """The models of the throughput study: zoo models (an ONNX file is fixed at its own batch size)."""
        return [m for m in self.models if not self.is_onnx_file(m)] if self.throughput_batch > 1 else []

    @property
    def throughput_target(self) -> str:
        """Throughput is measured where its job runs: the target of the first device that needs no board."""
        local = [d for d, spec in self.devices.items() if not (spec.get("rpc") or spec.get("tracker"))]
        return self.target_of((local or list(self.devices))[0])

    def throughput_variants(self, model: str) -> list[str]:
        """`torch`, `onnxruntime` and `tvm-<opt>` for every optimisation: the throughput records of a model."""
        return [fw for fw in self.frameworks(model)] + [f"tvm-{opt}" for opt in self.optimisations]

    # --- mutants ----------------------------------------------------------------------------------
    def _entries(self, model: str) -> list[str]:
        """The catalog entries a model's `mutants:` names, patterns (`mnn*`) expanded, sweeps as entries."""
        chosen = self.spec_of(model).get("mutants", [])
        names = sorted(self.catalog) if chosen == "all" else \
            [m for pattern in chosen for m in sorted(fnmatch.filter(self.catalog, pattern)) or [pattern]]
        return list(dict.fromkeys(m for m in names if m != ORIGINAL))

    def _mutated_under(self, model: str, opt: str | None) -> bool:
        if ModelRef.parse(model).is_derived:
            return False
        return opt is None or opt in self.spec_of(model).get("mutate_under", list(self.optimisations))

    def mutants(self, model: str, opt: str | None = None, expand: bool = True) -> list[str]:
        """The original plus the model's mutants; under an optimisation not in the model's `mutate_under`,
        only the original. Entries of `mutants` may be shell-style patterns (`mnn*`). Under an optimisation, a
        sweep entry stands for its per-site mutants (`<entry>.site<k>`), which its census chooses; with
        `expand=False` they are left out (what is known before any census ran)."""
        if not self._mutated_under(model, opt):
            return [ORIGINAL]
        out = [ORIGINAL]
        for name in self._entries(model):
            if opt is not None and self.catalog.is_sweep(name):
                out += [site_mutant(name, k) for k in self.sweep(model, opt, name)["chosen"]] if expand else []
            else:
                out.append(name)
        return out

    def mutation(self, mutant: str) -> dict[str, Any]:
        return self.catalog.spec(mutant)

    def mutates_graph(self, mutant: str) -> bool:
        """Graph- and model-level mutants act on the graph as imported, before the graph passes."""
        return mutant != ORIGINAL and self.catalog.level(mutant) in ("graph", "model")

    def is_input_mutant(self, mutant: str) -> bool:
        return mutant != ORIGINAL and self.catalog.level(mutant) == "input"

    def built_mutants(self, model: str, opt: str) -> list[str]:
        """The mutants of (model, opt) that lower to a module of their own: not the original, and not the
        input-level ones, which run the original's library on other images."""
        return [m for m in self.mutants(model, opt) if m != ORIGINAL and not self.is_input_mutant(m)]

    # --- sweeps: one mutant per site, chosen by a census ---------------------------------------------
    def sweeps(self, model: str, opt: str) -> list[str]:
        """The sweep entries of (model, optimisation): each needs its census before its mutants are known."""
        if opt is None or not self._mutated_under(model, opt):
            return []
        return [m for m in self._entries(model) if self.catalog.is_sweep(m)]

    def sweep_paths(self, model: str) -> list[str]:
        return [paths.fill(paths.CENSUS, model=model, opt=opt, entry=e)
                for opt in self.optimisations for e in self.sweeps(model, opt)]

    def sweep(self, model: str, opt: str, entry: str) -> dict[str, Any]:
        """A sweep's census: candidates, each site's depth, the sites chosen. Read once per version of its file:
        planning a 200-site sweep asks for it on every job."""
        path = self.site_source(model, opt, entry) if self.site_source else \
            paths.fill(paths.CENSUS, model=model, opt=opt, entry=entry)
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
        if split is None or split[0] not in self.catalog:
            return {}
        entry, k = split
        depth = next((s["depth"] for s in self.sweep(model, opt, entry).get("sites", []) if s["site"] == k), None)
        return {"sweep": entry, "site": k, "depth": depth}

    # --- files ----------------------------------------------------------------------------------
    @cached_property
    def _shards(self) -> dict[str, Shard]:
        return {s.suffix: s for s in plan_shards(self.config["dataset"])}

    @property
    def shards(self) -> list[str]:
        """The `{shard}` wildcard of every shard of the dataset, in image order (one empty one unsharded)."""
        return list(self._shards)

    @property
    def sharded(self) -> bool:
        return bool(self.config["dataset"].get("shard_size"))

    def shard_window(self, shard: str) -> dict[str, int] | None:
        """The file positions one dataset job reads (`deltamut.study.shards`); None: all of them."""
        return self._shards[shard].window() if self.sharded else None

    @staticmethod
    def inputs_path(model: str, mutant: str = ORIGINAL, shard: str = paths.UNSHARDED) -> str:
        """The images a model runs (a conversion or a batched build runs its model's), or one shard of them."""
        base = ModelRef.parse(model).base
        return paths.fill(paths.INPUTS, model=base, shard=shard) if mutant == ORIGINAL else \
            paths.fill(paths.MUTANT_INPUTS, model=base, mutant=mutant, shard=shard)

    def inputs_paths(self, model: str, template: str = paths.INPUTS) -> list[str]:
        """Every shard's file of a model's images (`template`: its preprocessed images, or their manifest)."""
        return [paths.fill(template, model=ModelRef.parse(model).base, shard=s) for s in self.shards]

    def result_path(self, template: str, **where: str) -> str | list[str]:
        """A variant's result file, or, in a sharded study, its shards' files in image order: what
        `runner.outputs.load_outputs` reads as one."""
        files = [paths.fill(template, **where, shard=s) for s in self.shards]
        return files if self.sharded else files[0]

    def artifact(self, template: str, model: str, opt: str, mutant: str = ORIGINAL, **more: str) -> str:
        """A file of a mutant's chain (module, IR, manifest, library...) under the optimisation whose artifact
        it really is: an input-level mutant runs the original's module; an ablated step that leaves the
        lowering alone runs its base's."""
        if self.is_input_mutant(mutant):
            mutant = ORIGINAL
        if mutant == ORIGINAL:
            opt = self.source_opt(model, opt, "lowering")
        return paths.fill(template, model=model, opt=opt, mutant=mutant, **more)

    def tvm_variants(self, model: str, expand: bool = True) -> list[tuple[str, str, str]]:
        """(optimisation, mutant, device) triples of a model; ablated optimisations run the original only."""
        return [(opt, mutant, dev) for opt in self.optimisations for mutant in self.mutants(model, opt, expand)
                for dev in self.devices] + \
            [(opt, ORIGINAL, dev) for opt in self.ablations(model) for dev in self.devices]

    def _tvm_variant(self, model: ModelRef, opt: str, mutant: str, dev: str) -> dict[str, Any]:
        name = str(model)
        return {"framework": "tvm", "conversion": model.conversion, "opt": opt, "mutant": mutant, "device": dev,
                "target": self.target_of(dev),
                "path": self.result_path(paths.OUTPUTS, model=name, opt=opt, mutant=mutant, device=dev),
                "manifest": self.artifact(paths.MANIFEST, name, opt, mutant),
                **self.catalog.info(mutant), **(self.site_of(name, opt, mutant) if mutant != ORIGINAL else {})}

    def variants(self, model: str, expand: bool = True) -> dict[str, dict[str, Any]]:
        """Variant id -> its coordinates and result file, for every result of a model (`expand=False`: but
        the mutants of sweeps, known only once their census ran)."""
        out = {fw: {"framework": fw, "conversion": "" if fw == "torch" else PRIMARY,
                    "path": self.result_path(paths.REFERENCE, model=model, framework=fw)}
               for fw in self.frameworks(model)}
        if self.float64_reference(model):
            out[FLOAT64] = {"framework": FLOAT64, "conversion": "",
                            "path": self.result_path(paths.REFERENCE, model=model, framework=FLOAT64)}
        ref = ModelRef.parse(model)
        for opt, mutant, dev in self.tvm_variants(model, expand):
            out[variant_id(opt, mutant, dev)] = self._tvm_variant(ref, opt, mutant, dev)
        for converted, opt in self.converted_runs(model):
            if opt is None:
                out[framework_id("onnxruntime", converted.conversion)] = {
                    "framework": "onnxruntime", "conversion": converted.conversion,
                    "path": self.result_path(paths.REFERENCE, model=str(converted), framework="onnxruntime")}
            else:
                out.update({variant_id(opt, ORIGINAL, dev, converted.conversion):
                            self._tvm_variant(converted, opt, ORIGINAL, dev) for dev in self.devices})
        return out

    # --- pairs ----------------------------------------------------------------------------------
    def pairs(self, model: str) -> list[dict[str, Any]]:
        """The comparisons of a model, each `b` being the baseline `a` is judged against.

        framework: each framework against the reference; compiler: each unmutated TVM variant against the
        reference; mutant: each mutant against the original on the same optimisation and device;
        optimisation: each optimisation against the first one; device: each device against the first one;
        mutant_device: each mutant on each further device against the same mutant on the first device, with the
        original on those two devices as its `noise` pair; ablation, precision, conversion, custom.
        """
        ref = self.reference(model)
        pairs = [{"kind": "framework", "a": fw, "b": ref} for fw in self.frameworks(model) if fw != ref]
        for opt in self.optimisations:
            for dev in self.devices:
                pairs += self._tvm_pairs(model, opt, dev, ref)
        base = (self.config.get("ablation") or {}).get("of")
        pairs += [{"kind": "ablation", "a": variant_id(opt, ORIGINAL, dev), "b": variant_id(base, ORIGINAL, dev)}
                  for opt in self.ablations(model) for dev in self.devices]
        if self.float64_reference(model):
            pairs.append({"kind": "precision", "a": "torch", "b": FLOAT64})
        return pairs + self._conversion_pairs(model, ref) + self._extra_pairs(model)

    def _tvm_pairs(self, model: str, opt: str, dev: str, ref: str) -> list[dict[str, Any]]:
        """The pairs of one (optimisation, device): its original against the reference, the first optimisation
        and the first device; its mutants against the original, and against themselves on the first device."""
        opts, devs = list(self.optimisations), list(self.devices)
        original = variant_id(opt, ORIGINAL, dev)
        mutants = [m for m in self.mutants(model, opt) if m != ORIGINAL]
        pairs = [{"kind": "compiler", "a": original, "b": ref}]
        pairs += [{"kind": "mutant", "a": variant_id(opt, m, dev), "b": original} for m in mutants]
        if opt != opts[0]:
            pairs.append({"kind": "optimisation", "a": original, "b": variant_id(opts[0], ORIGINAL, dev)})
        if dev != devs[0]:
            first = variant_id(opt, ORIGINAL, devs[0])
            pairs.append({"kind": "device", "a": original, "b": first})
            # MutateNN's headline: the same mutant on two devices, judged beyond the original's own
            # cross-device difference on each image
            pairs += [{"kind": "mutant_device", "a": variant_id(opt, m, dev), "b": variant_id(opt, m, devs[0]),
                       "noise": [original, first]} for m in mutants]
        return pairs

    def _conversion_pairs(self, model: str, ref: str) -> list[dict[str, Any]]:
        """Each conversion against the reference, and against the same runtime on the primary ONNX."""
        pairs = []
        for converted, opt in self.converted_runs(model):
            if opt is None:
                a = framework_id("onnxruntime", converted.conversion)
                pairs += [{"kind": "framework", "a": a, "b": ref}, {"kind": "conversion", "a": a, "b": "onnxruntime"}]
                continue
            for dev in self.devices:
                a = variant_id(opt, ORIGINAL, dev, converted.conversion)
                pairs += [{"kind": "compiler", "a": a, "b": ref},
                          {"kind": "conversion", "a": a, "b": variant_id(opt, ORIGINAL, dev)}]
        return pairs

    def _extra_pairs(self, model: str) -> list[dict[str, str]]:
        """The config's `compare.pairs`: any two variants of a model, by id (see `variants`)."""
        return [{"kind": "custom", "a": p["a"], "b": p["b"]} for p in self.config["compare"].get("pairs", [])
                if p.get("model", model) == model]

    # --- what the rules ask for ------------------------------------------------------------------
    def model_outputs(self, model: str, expand: bool = True) -> list[str]:
        """Every result file of a model, each shard's one by one."""
        return [f for v in self.variants(model, expand).values() for f in as_files(v["path"])]

    def model_manifests(self, model: str) -> list[str]:
        return sorted({v["manifest"] for v in self.variants(model).values() if "manifest" in v})

    def model_indexes(self, model: str) -> dict[str, str]:
        """Optimisation -> the mutant index of (model, optimisation), where it has mutants of its own to build."""
        return {opt: paths.fill(paths.INDEX, model=model, opt=opt) for opt in self.optimisations
                if self.built_mutants(model, opt)}

    def final_outputs(self) -> list[str]:
        from deltamut.localise.plan import probe_paths
        from deltamut.plots import PLOTS  # the report's figures (rules/report.smk)
        from deltamut.timing.groups import timing_paths

        out = [paths.fill(paths.SUMMARY, model=m) for m in self.models]
        out += [paths.fill(paths.PLOT, model=m, name=p) for m in self.models for p in PLOTS]
        out += [paths.table("throughput", ext, m) for m in self.throughput_models() for ext in ("csv", "md")]
        # Every result known before a sweep's census runs, and the censuses: so that a dry run shows the whole
        # plan but a sweep's one-site mutants (which compare then waits for)
        out += [p for m in self.models for p in self.model_outputs(m, expand=False) + self.sweep_paths(m)]
        out += [p for m in self.models for p in timing_paths(self, m, expand=False).values()]
        out += probe_paths(self)
        return out + [paths.table("per_pair", "csv"), paths.STUDY_SUMMARY]
