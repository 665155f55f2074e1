"""Which variants are timed together: the comparison groups of a model, one timing job each.

A latency verdict compares two variants, so both must be timed in the same interleaved rounds
(`deltamut.timing.rounds`). The groups of a model, per device that runs on the study's own machines:

- `main-<device>`: every unmutated TVM build on the device (each optimisation, ablated configuration and
  conversion), and on a host CPU device also the frameworks (PyTorch, ONNX Runtime and its conversions),
  which run on the host: the framework, compiler, optimisation, ablation and conversion pairs.
- `mutants-<opt>-<device>-<k>`: the original of (optimisation, device) and up to `timing.mutants_per_group`
  of its mutants (the k-th run of them in the study's order): the mutant pairs, in groups small enough that a
  job's worker processes fit in memory. `sweep-<entry>-<opt>-<device>-<k>`: the same for a sweep's one-site
  mutants, apart, since its census chooses them.

Not timed, and said so in the pair's `latency_caveat`: pairs across devices (the ratio would compare two
machines, which cannot be interleaved), the float64 reference, input-level mutants (they run the original's
library: their latency is the original's by construction), and devices reached over RPC (a board serves one
session at a time, so its variants cannot be loaded side by side).
"""

from __future__ import annotations

from typing import Any

from deltamut import paths
from deltamut.mutations.sweep import split_site_mutant
from deltamut.study import ORIGINAL, ModelRef
from deltamut.study.placement import is_host_cpu, is_local
from deltamut.study.refs import variant_id

MAIN = "main"
MUTANTS = "mutants"
SWEEP = "sweep"
WILDCARD = rf"({MAIN}|{MUTANTS}|{SWEEP})-[A-Za-z0-9_.-]+"


def _mutant_runs(study, model: str, opt: str, expand: bool) -> dict[str, list[str]]:
    """The mutants of (model, opt) that have a library of their own, by the group family they are timed in:
    the catalog's own mutants (known when the study is planned) apart from each sweep's one-site mutants
    (known once its census ran), so that a sweep's census never renames the other groups."""
    runs: dict[str, list[str]] = {MUTANTS: []}
    for m in study.mutants(model, opt, expand):
        if m == ORIGINAL or study.is_input_mutant(m):
            continue
        site = split_site_mutant(m)
        runs.setdefault(f"{SWEEP}-{site[0]}" if site else MUTANTS, []).append(m)
    return runs


def timing_groups(study, model: str, expand: bool = True) -> dict[str, list[str]]:
    """Group name -> the variant ids timed in it, in the order the study lists them (`expand=False`: without
    the groups of sweeps, whose mutants a census chooses)."""
    local = [d for d in study.devices if is_local(study.devices[d])]
    variants = study.variants(model, expand)
    size = int(study.config.get("timing", {}).get("mutants_per_group", 8))
    groups: dict[str, list[str]] = {}
    for dev in local:
        host = is_host_cpu(study.devices[dev], study.targets[study.target_of(dev)])
        members = [fw for fw, v in variants.items() if host and v["framework"] in ("torch", "onnxruntime")]
        members += [vid for vid, v in variants.items()
                    if v["framework"] == "tvm" and v["device"] == dev and v["mutant"] == ORIGINAL]
        if len(members) > 1:
            groups[f"{MAIN}-{dev}"] = members
        for opt in study.optimisations:
            for family, mutants in _mutant_runs(study, model, opt, expand).items():
                ids = [variant_id(opt, m, dev) for m in mutants]
                for k in range(0, len(ids), size):
                    groups[f"{family}-{opt}-{dev}-{k // size}"] = [variant_id(opt, ORIGINAL, dev), *ids[k:k + size]]
    return groups


def group_of(groups: dict[str, list[str]], a: str, b: str) -> str | None:
    """The group in which both sides of a pair were timed, if any."""
    return next((name for name, members in groups.items() if a in members and b in members), None)


def timing_members(study, model: str, group: str) -> dict[str, dict[str, Any]]:
    """What each member of a group runs: a framework (with the ONNX file ONNX Runtime loads), or a TVM library
    with its deploy record, for the device of the group."""
    variants = study.variants(model)
    out: dict[str, dict[str, Any]] = {}
    for vid in timing_groups(study, model)[group]:
        v = variants[vid]
        if v["framework"] == "torch":
            out[vid] = {"framework": "torch"}
        elif v["framework"] == "onnxruntime":
            tree = str(ModelRef.parse(model).converted(v["conversion"]))
            out[vid] = {"framework": "onnxruntime", "onnx": paths.fill(paths.ONNX, model=tree)}
        else:
            tree = str(ModelRef.parse(model).converted(v["conversion"]))
            where = {"model": tree, "opt": v["opt"], "mutant": v["mutant"], "target": v["target"]}
            out[vid] = {"framework": "tvm", "device": v["device"], "lib": paths.fill(paths.LIB, **where),
                        "info": paths.fill(paths.DEPLOY, **where)}
    return out


def group_device(study, model: str, group: str) -> str:
    """The device a group runs on (its TVM members'), for the job's placement."""
    devices = [m["device"] for m in timing_members(study, model, group).values() if "device" in m]
    return devices[0] if devices else next(iter(study.devices))


def member_files(members: dict[str, dict[str, Any]]) -> list[str]:
    """The files a group's job reads (each once)."""
    return list(dict.fromkeys(f for m in members.values() for k in ("onnx", "lib", "info") if (f := m.get(k))))


def timing_paths(study, model: str, expand: bool = True) -> dict[str, str]:
    """Group name -> its record's path, for the compare job (`expand=False`: those known before any census)."""
    return {g: paths.fill(paths.TIMING, model=model, group=g) for g in timing_groups(study, model, expand)}
