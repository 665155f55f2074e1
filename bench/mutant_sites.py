"""Where does each catalog entry act? Candidate and applied sites of every mutation on a real model.

For each model and optimisation, the model is exported as the study exports it, imported into TVM, and every
catalog entry (or those matching `--mutants`) is applied the way the mutate stage applies it: graph- and
model-level operators to the graph as imported, then the configuration's graph passes; kernel-level
operators to the lowered original. A row per entry: candidates, applied sites, whether the lowered mutant
equals the original (vacuous), and the operator's note. This is the figure behind "every MutateNN operator
acts where MutateNN's did" (docs/mutations.md).

Usage (about 2 minutes per model and optimisation on 2 cores):

    .venv/bin/python bench/mutant_sites.py --models efficientnet_lite0 --opts extended --mutants 'mnn*'
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="efficientnet_lite0")
    ap.add_argument("--opts", default="extended")
    ap.add_argument("--mutants", default="mnn*", help="shell pattern(s) of catalog entries, comma-separated")
    ap.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "mutant_sites.csv"))
    args = ap.parse_args()

    from deltamut.compiler.importer import import_onnx
    from deltamut.compiler.optconfig import OptConfig, graph_slice, lowering_slice
    from deltamut.compiler.passes import lower, optimise_graph
    from deltamut.config import validate_config
    from deltamut.export import export_model
    from deltamut.models import load_model
    from deltamut.mutations import is_equivalent, mutate, operator_info

    config = validate_config(yaml.safe_load(Path(args.config).read_text()))  # fills the default optimisations
    catalog = yaml.safe_load((ROOT / config.get("mutation_catalog", "config/mutations.yaml")).read_text())
    catalog.update(config.get("mutations") or {})
    patterns = args.mutants.split(",")
    names = [n for n in catalog if n != "original" and any(fnmatch.fnmatch(n, p) for p in patterns)]
    rows = []
    for model in args.models.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = Path(tmp) / "model.onnx"
            entry = {k: v for k, v in config.get("models", {}).get(model, {"source": "zoo"}).items()
                     if k not in ("mutants", "mutate_under")}
            export_model(load_model(model, entry), onnx_path)
            imported = import_onnx(onnx_path)
        for opt_name in args.opts.split(","):
            spec = config["optimisations"][opt_name]
            opt = OptConfig.from_dict(opt_name, {**graph_slice(spec), **lowering_slice(spec)})
            graph = optimise_graph(imported, opt)
            original = lower(graph, opt)
            def from_imported(g, opt=opt):
                return lower(optimise_graph(g, opt), opt)

            def from_lowered(g, graph=graph, original=original, opt=opt):
                return original if g is graph else lower(g, opt)

            for name in names:
                entry = catalog[name]
                level = operator_info(entry["operator"])["level"]
                started = time.perf_counter()
                if level in ("graph", "model"):
                    m = mutate(imported, entry, from_imported)
                elif level == "kernel":
                    m = mutate(graph, entry, from_lowered)
                else:
                    continue
                mf = m.manifest
                rows.append({"model": model, "opt": opt_name, "mutant": name, "operator": entry["operator"],
                             "level": level, "candidates": mf["candidates"], "applied": mf["applied"],
                             "vacuous": is_equivalent(m.module, original), "note": mf["note"],
                             "seconds": round(time.perf_counter() - started, 1)})
                print(f"{model} {opt_name} {name}: {mf['candidates']} candidates, {mf['applied']} applied"
                      f"{' (vacuous)' if rows[-1]['vacuous'] else ''}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    vacuous = sorted({r["mutant"] for r in rows if r["vacuous"]})
    print(f"{len(vacuous)} vacuous: {', '.join(vacuous) or 'none'}; table in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
