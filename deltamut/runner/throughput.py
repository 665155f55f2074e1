"""Throughput at batch B, kept apart from the infer stage's per-image latency at batch 1.

A library compiled for batch 1 cannot honestly be timed on a batch of B, so a throughput study builds its
own batch-B artifacts with the pipeline's own functions (the export stage's exporter, the compile stage's
import and graph passes, the mutate stage's lowering, the deploy stage's `build_library`): the same compiler
configuration, only the batch dimension differs. The batch-1 figure it is divided by is measured in the same
job by the same loop, its passes interleaved with the batch-B passes, so drift in machine load hits both
alike and the speedup is a like-for-like ratio. Latency tables elsewhere stay per image at batch 1.

Building and timing each run in an isolated child (deltamut.isolation): a crash or a hang is a recorded
result, never a dead job.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from deltamut import provenance
from deltamut.fsutil import write_json, write_text
from deltamut.isolation import call_isolated

FRAMEWORKS = ("torch", "onnxruntime", "tvm")
TVM_PREFIX = "tvm-"
#: A host CPU target: throughput is measured where the job runs, like the infer stage's local devices.
HOST_TARGET: dict[str, Any] = {"kind": "llvm"}


def measure_label(batch_size: int) -> str:
    """The words every throughput figure carries, so no table can pass it off as batch-1 latency."""
    return f"throughput at batch {batch_size}"


def variant_name(framework: str, opt: str | None = None) -> str:
    """`torch`, `onnxruntime` or `tvm-{opt}`: the file name of a throughput record."""
    if framework == "tvm":
        if not opt:
            raise ValueError("a TVM throughput variant needs an optimisation name")
        return f"{TVM_PREFIX}{opt}"
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}")
    return framework


def parse_variant(variant: str) -> tuple[str, str | None]:
    """The inverse of `variant_name`."""
    if variant.startswith(TVM_PREFIX) and len(variant) > len(TVM_PREFIX):
        return "tvm", variant[len(TVM_PREFIX):]
    if variant in ("torch", "onnxruntime"):
        return variant, None
    raise ValueError(f"throughput variant {variant!r}: expected torch, onnxruntime or tvm-<optimisation>")


def opt_of(variant: str) -> str | None:
    """The optimisation a variant was compiled under (None for a framework)."""
    return parse_variant(variant)[1]


def needs_onnx(variant: str) -> bool:
    """Whether a variant starts from the export stage's ONNX (everything but PyTorch eager)."""
    return parse_variant(variant)[0] != "torch"


def throughput_variants(frameworks: list[str], optimisations: list[str] | dict[str, Any]) -> list[str]:
    """A model's throughput variants: its frameworks, then the original under every optimisation."""
    return [variant_name(fw) for fw in frameworks] + [variant_name("tvm", opt) for opt in optimisations]


def padded_batches(n: int, batch_size: int) -> list[np.ndarray]:
    """Image indices of each batch; the last batch is filled up by repeating images from the start, so every
    call has the shape the artifact was compiled for. Callers keep only the first `n` results."""
    if n < 1 or batch_size < 1:
        raise ValueError(f"need at least one image and a batch size >= 1, got n={n}, batch_size={batch_size}")
    order = np.arange(-(-n // batch_size) * batch_size) % n
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@dataclass(frozen=True)
class ThroughputSettings:
    """The timing protocol: `warmup` untimed passes over the dataset, then `passes` timed ones."""

    batch_size: int
    warmup: int = 2
    passes: int = 5
    threads: int | None = None
    timeout_s: float = 1800.0

    def __post_init__(self) -> None:
        if int(self.batch_size) < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if int(self.passes) < 1:
            raise ValueError(f"timed passes must be >= 1, got {self.passes}")


# --- child side: artifacts ------------------------------------------------------------------------------

def _export(model: str, model_spec: dict[str, Any], batch_size: int, out: str, opset: int, exporter: str) -> None:
    from deltamut.export import export_model
    from deltamut.models import load_model

    info = load_model(model, model_spec)
    if info.module is None:
        raise ValueError(f"model {model!r} is an ONNX file fixed at its own batch size: it cannot be re-exported "
                         f"at batch {batch_size}")
    export_model(replace(info, input_shape=(batch_size, *info.input_shape[1:])), out, opset=opset, exporter=exporter)


def _build(onnx: str, batch_shape: list[int], opt_name: str, opt_spec: dict[str, Any], target_spec: dict[str, Any],
           out: str) -> dict[str, Any]:
    from deltamut.compiler.build import build_library
    from deltamut.compiler.importer import import_onnx
    from deltamut.compiler.optconfig import OptConfig
    from deltamut.compiler.passes import lower, optimise_graph

    opt = OptConfig.from_dict(opt_name, opt_spec)
    mod = lower(optimise_graph(import_onnx(onnx, tuple(batch_shape)), opt), opt)
    return build_library(mod, target_spec, opt, out)


def _artifacts_worker(framework: str, model: str, model_spec: dict[str, Any], sizes: list[int], image_shape: list[int],
                      workdir: str, onnx_batch1: str | None, opset: int, exporter: str, opt_name: str | None,
                      opt_spec: dict[str, Any] | None, target_spec: dict[str, Any]) -> dict[str, Any]:
    """Export (and for TVM build) the model at each batch size; return the backend spec of each."""
    specs: dict[str, Any] = {}
    builds: dict[str, Any] = {}
    for b in sizes:
        if framework == "torch":
            specs[str(b)] = {"kind": "torch", "model": model, "model_spec": model_spec}
            continue
        onnx = onnx_batch1 if b == 1 and onnx_batch1 else str(Path(workdir) / f"model_b{b}.onnx")
        if onnx != onnx_batch1:
            _export(model, model_spec, b, onnx, opset, exporter)
        if framework == "onnxruntime":
            specs[str(b)] = {"kind": "onnxruntime", "onnx": onnx}
            continue
        lib = str(Path(workdir) / f"lib_b{b}.so")
        builds[str(b)] = _build(onnx, [b, *image_shape], opt_name or "", opt_spec or {}, target_spec, lib)
        specs[str(b)] = {"kind": "tvm", "lib": lib, "target_kind": target_spec.get("kind", "llvm")}
    return {"specs": specs, "builds": builds}


# --- child side: timing ---------------------------------------------------------------------------------

def _timing_worker(specs: dict[str, Any], inputs: str, sizes: list[int], warmup: int, passes: int,
                   threads: int | None, workdir: str) -> dict[str, Any]:
    """Time every batch size with the infer stage's own backends (deltamut.devices), passes interleaved."""
    from deltamut.devices import open_backend

    with np.load(inputs) as z:
        x = z["x"].astype(np.float32)
    n = x.shape[0]
    # PyTorch runs any batch with one module: both sizes share it (and loading the model once saves seconds).
    opened: dict[str, Any] = {}
    backends = {}
    for b in sizes:
        key = json.dumps(specs[str(b)], sort_keys=True)
        if key not in opened:
            opened[key] = open_backend({**specs[str(b)], "threads": threads})
        backends[b] = opened[key]
    batches = {b: [np.ascontiguousarray(x[idx]) for idx in padded_batches(n, b)] for b in sizes}
    info = {str(b): backends[b].info() for b in sizes}

    def one_pass(b: int) -> tuple[float, np.ndarray]:
        outs = []
        t0 = time.perf_counter()
        for batch in batches[b]:
            outs.append(np.asarray(backends[b](batch), dtype=np.float32).reshape(len(batch), -1))
        return time.perf_counter() - t0, np.concatenate(outs)[:n]  # padding dropped

    for _ in range(warmup):
        for b in sizes:
            one_pass(b)
    seconds: dict[str, list[float]] = {str(b): [] for b in sizes}
    logits: dict[int, np.ndarray] = {}
    for _ in range(passes):
        for b in sizes:
            s, logits[b] = one_pass(b)
            seconds[str(b)].append(s)
    for backend in opened.values():
        backend.close()
    for b in sizes:
        np.save(Path(workdir) / f"logits_b{b}.npy", logits[b])
    return {"seconds": seconds, "info": info, "images": n, "calls": {str(b): len(batches[b]) for b in sizes},
            "tvm_num_threads": os.environ.get("TVM_NUM_THREADS")}


# --- parent side ----------------------------------------------------------------------------------------

@contextlib.contextmanager
def _thread_env(threads: int | None) -> Iterator[None]:
    """Thread counts for a child, set in the environment it inherits: an isolated child imports TVM before it
    runs our function, and TVM's thread pool must see TVM_NUM_THREADS (as the infer stage's workers do)."""
    names = ("TVM_NUM_THREADS", "OMP_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in names}
    if threads:
        os.environ.update({k: str(threads) for k in names})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _rates(n: int, seconds: list[float]) -> dict[str, Any]:
    rates = [n / s for s in seconds]
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "per_pass": rates}


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| per image over all images; inf where non-finite values do not line up."""
    if a.shape != b.shape:
        return float("inf")
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return float("inf")
    ok = np.isfinite(a)
    return float(np.max(np.abs(a[ok].astype(np.float64) - b[ok]), initial=0.0))


def measure_throughput(model: str, model_spec: dict[str, Any], framework: str, inputs: str | Path,
                       settings: ThroughputSettings, log: str | Path, opt: str | None = None,
                       opt_spec: dict[str, Any] | None = None, onnx_batch1: str | Path | None = None,
                       opset: int = 18, exporter: str = "dynamo",
                       target_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """Images/s of one variant at batch `settings.batch_size` and at batch 1, measured in the same job.

    `onnx_batch1` is the export stage's model.onnx: given, the batch-1 figure runs the very file the infer
    stage's latency comes from; the batch-B ONNX is exported beside it with the same `opset` and `exporter`.
    Never raises for a failing variant: the record's status says what happened (ok, nan, crash, timeout, error).
    """
    target_spec = dict(target_spec or HOST_TARGET)
    b = int(settings.batch_size)
    sizes = [1] if b == 1 else [1, b]
    with np.load(inputs) as z:
        image_shape = list(z["x"].shape[1:])
        n = int(z["x"].shape[0])
    record: dict[str, Any] = {
        "model": model, "variant": variant_name(framework, opt), "framework": framework,
        "opt": opt if framework == "tvm" else None, "batch_size": b, "measure": measure_label(b),
        "images": n, "padding": (-n) % b, "warmup": settings.warmup, "passes": settings.passes,
        "threads": settings.threads, "target": target_spec if framework == "tvm" else None,
        "onnx_batch1": str(onnx_batch1) if onnx_batch1 and framework != "torch" else None,
        "versions": provenance.versions(), "host": provenance.host(), "status": "ok", "error": "",
    }
    with tempfile.TemporaryDirectory(prefix="deltamut-throughput-") as workdir:
        made = call_isolated("deltamut.runner.throughput:_artifacts_worker", {
            "framework": framework, "model": model, "model_spec": model_spec, "sizes": sizes,
            "image_shape": image_shape, "workdir": workdir,
            "onnx_batch1": str(onnx_batch1) if onnx_batch1 else None, "opset": int(opset), "exporter": exporter,
            "opt_name": opt, "opt_spec": opt_spec, "target_spec": target_spec}, settings.timeout_s, log)
        if not made.ok:
            return {**record, **made.as_record(), "failed_stage": "build"}
        record["builds"] = made.value["builds"]
        with _thread_env(settings.threads):
            timed = call_isolated("deltamut.runner.throughput:_timing_worker", {
                "specs": made.value["specs"], "inputs": str(inputs), "sizes": sizes, "warmup": int(settings.warmup),
                "passes": int(settings.passes), "threads": settings.threads, "workdir": workdir},
                settings.timeout_s, log)
        if not timed.ok:
            return {**record, **timed.as_record(), "failed_stage": "run"}
        logits = {s: np.load(Path(workdir) / f"logits_b{s}.npy") for s in sizes}
    batched, single = _rates(n, timed.value["seconds"][str(b)]), _rates(n, timed.value["seconds"]["1"])
    record.update(
        images_per_s=batched["median"], images_per_s_min=batched["min"], images_per_s_max=batched["max"],
        images_per_s_per_pass=batched["per_pass"], images_per_s_batch1=single["median"],
        images_per_s_batch1_min=single["min"], images_per_s_batch1_max=single["max"],
        images_per_s_batch1_per_pass=single["per_pass"], speedup=batched["median"] / single["median"],
        max_abs_diff_vs_batch1=_max_abs_diff(logits[b], logits[1]), calls=timed.value["calls"],
        backend_info=timed.value["info"], tvm_num_threads=timed.value["tvm_num_threads"],
    )
    if not np.all(np.isfinite(logits[b])):
        record.update(status="nan", error="non-finite values in the batch-B outputs")
    return record


def throughput_stage(model: str, model_spec: dict[str, Any], variant: str, inputs: str | Path,
                     settings: ThroughputSettings, out: str | Path, log: str | Path,
                     opt_spec: dict[str, Any] | None = None, onnx_batch1: str | Path | None = None,
                     opset: int = 18, exporter: str = "dynamo",
                     target_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """The throughput rule's entry point: one variant's record, written as JSON whatever happened."""
    framework, opt = parse_variant(variant)
    record = measure_throughput(model, model_spec, framework, inputs, settings, log, opt=opt, opt_spec=opt_spec,
                                onnx_batch1=onnx_batch1, opset=opset, exporter=exporter, target_spec=target_spec)
    write_json(out, record)
    return record


# --- tables ---------------------------------------------------------------------------------------------

TABLE_COLUMNS = ("model", "variant", "framework", "opt", "measure", "batch_size", "images", "padding", "passes",
                 "threads", "images_per_s", "images_per_s_min", "images_per_s_max", "images_per_s_batch1",
                 "speedup", "max_abs_diff_vs_batch1", "status", "error")


def throughput_table(records: list[dict[str, Any]]):
    """One row per variant (a pandas DataFrame); the `measure` column names the batch of every figure."""
    import pandas as pd

    rows = [{c: r.get(c) for c in TABLE_COLUMNS} for r in records]
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS)).sort_values("variant", kind="stable")


def throughput_markdown(model: str, table) -> str:
    """A short note that says in words which figures are throughput and which are latency."""
    sizes = sorted({int(b) for b in table["batch_size"].dropna()})
    batch = ", ".join(str(s) for s in sizes) or "?"
    lines = [
        f"# Throughput of {model}",
        "",
        f"These figures are **throughput at batch {batch}**: images per second over the whole dataset run in "
        f"batches of {batch} (the last batch padded by repeating images; padded results are dropped), median over "
        "timed passes with the slowest and fastest pass beside it. Each variant was built for that batch size "
        "with the same exporter, graph passes, lowering and code generation as the pipeline.",
        "",
        "Latency everywhere else in the results (infer outputs, compare tables, the latency plot) is **per image "
        "at batch 1**. `images_per_s_batch1` here is the same variant at batch 1, timed in the same job by the "
        "same loop, so `speedup` is a like-for-like ratio; it is not the infer stage's latency.",
        "",
        "`max_abs_diff_vs_batch1` is the largest logit difference between batch-B and batch-1 outputs of the same "
        "image: batching should change results only by float noise.",
        "",
        "| variant | measure | images/s | range | images/s at batch 1 | speedup | max abs diff vs batch 1 | status |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in table.to_dict("records"):
        if r["status"] == "ok":
            lines.append(f"| {r['variant']} | {r['measure']} | {r['images_per_s']:.1f} | "
                         f"{r['images_per_s_min']:.1f}-{r['images_per_s_max']:.1f} | {r['images_per_s_batch1']:.1f} | "
                         f"{r['speedup']:.2f}x | {r['max_abs_diff_vs_batch1']:.2e} | ok |")
        else:
            why = str(r["error"]).splitlines()[0][:120].replace("|", "/") if isinstance(r.get("error"), str) else ""
            lines.append(f"| {r['variant']} | {r['measure']} | - | - | - | - | - | {r['status']}: {why} |")
    return "\n".join(lines) + "\n"


def throughput_table_stage(model: str, records: list[str | Path], out_csv: str | Path, out_md: str | Path) -> None:
    """The throughput_table rule's entry point: gather a model's records into a CSV and a markdown note."""
    table = throughput_table([json.loads(Path(p).read_text()) for p in records])
    write_text(out_csv, table.to_csv(index=False))
    write_text(out_md, throughput_markdown(model, table))
