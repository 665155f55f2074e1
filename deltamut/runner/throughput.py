"""Throughput at batch B, kept apart from the infer stage's per-image latency at batch 1.

A library compiled for batch 1 cannot honestly be timed on a batch of B, so the throughput study builds the
model for batch B through the pipeline's own rules (`model+b<B>`, a `deltamut.study.ModelRef` with a result
tree of its own: the export, import, compile, mutate and deploy jobs, with their cache, failure records and
isolation): the same compiler configuration, only the batch dimension differs. The batch-1 figure it is
divided by is measured in the same job by the same loop, its passes interleaved with the batch-B passes, so
drift in machine load hits both alike and the speedup is a like-for-like ratio. Latency tables elsewhere stay
per image at batch 1.

Timing runs in an isolated child (deltamut.isolation): a crash or a hang is a recorded result, never a dead
job, and an artifact that could not be built is recorded with the stage that failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deltamut import provenance
from deltamut.failure import describe, read_failure, root_cause
from deltamut.fsutil import write_json, write_text
from deltamut.isolation import call_isolated
from deltamut.numeric import max_abs_diff
from deltamut.outcome import Stage, Status

FRAMEWORKS = ("torch", "onnxruntime", "tvm")
TVM_PREFIX = "tvm-"


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


def padded_batches(n: int, batch_size: int) -> list[np.ndarray]:
    """Image indices of each batch; the last batch is filled up by repeating images from the start, so every
    call has the shape the artifact was compiled for. Callers keep only the first `n` results."""
    if n < 1 or batch_size < 1:
        raise ValueError(f"need at least one image and a batch size >= 1, got n={n}, batch_size={batch_size}")
    order = np.arange(-(-n // batch_size) * batch_size) % n
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@dataclass(frozen=True)
class ThroughputSettings:
    """The timing protocol (the config's `runner:`): `warmup` untimed passes over the dataset, then `passes`
    timed ones (`repeats`), within `timeout_s`."""

    batch_size: int
    warmup: int
    passes: int
    timeout_s: float
    threads: int | None = None

    def __post_init__(self) -> None:
        if int(self.batch_size) < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if int(self.passes) < 1:
            raise ValueError(f"timed passes must be >= 1, got {self.passes}")


def backend_specs(framework: str, model: str, model_spec: dict[str, Any], artifacts: Mapping[str, str],
                  batch_size: int, target_kind: str = "llvm") -> dict[str, dict[str, Any]]:
    """The infer stage's backend spec at batch 1 and at batch B, from the artifacts the rules built: the ONNX
    files (ONNX Runtime) or libraries (TVM) of the model and of its batch-B build (`_batched` keys)."""
    sizes = {"1": "", str(batch_size): "_batched"}
    if framework == "torch":  # one module runs any batch
        return {b: {"kind": "torch", "model": model, "model_spec": model_spec} for b in sizes}
    if framework == "onnxruntime":
        return {b: {"kind": "onnxruntime", "onnx": str(artifacts[f"onnx{k}"])} for b, k in sizes.items()}
    return {b: {"kind": "tvm", "lib": str(artifacts[f"lib{k}"]), "target_kind": target_kind} for b, k in sizes.items()}


# --- child side: timing --------------------------------------------------------------------------------

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


def _failed_artifact(artifacts: Mapping[str, str]) -> dict[str, Any] | None:
    """The failure behind the first artifact that is a failure record (a batch-B build TVM could not make)."""
    for path in artifacts.values():
        record = read_failure(path) if Path(path).is_file() else None
        if record is not None:
            root = root_cause(record)
            return {"status": root.get("status", Status.ERROR.value), "error": describe(record),
                    "failed_stage": root.get("stage", Stage.DEPLOY.value)}
    return None


def measure_throughput(model: str, model_spec: dict[str, Any], framework: str, inputs: str | Path,
                       settings: ThroughputSettings, log: str | Path, artifacts: Mapping[str, str] | None = None,
                       opt: str | None = None, target: dict[str, Any] | None = None) -> dict[str, Any]:
    """Images/s of one variant at batch `settings.batch_size` and at batch 1, measured in the same job.

    `artifacts` holds what the rules built for the variant at both sizes (see `backend_specs`). Never raises for
    a failing variant: the record's status says what happened (ok, nan, crash, timeout, error) and, for an
    artifact that could not be built, at which stage.
    """
    artifacts = dict(artifacts or {})
    b = int(settings.batch_size)
    with np.load(inputs) as z:
        n = int(z["x"].shape[0])
    record: dict[str, Any] = {
        "model": model, "variant": variant_name(framework, opt), "framework": framework,
        "opt": opt if framework == "tvm" else None, "batch_size": b, "measure": measure_label(b),
        "images": n, "padding": (-n) % b, "warmup": settings.warmup, "passes": settings.passes,
        "threads": settings.threads, "target": target if framework == "tvm" else None,
        "artifacts": artifacts, "versions": provenance.versions(), "host": provenance.host(),
        "status": Status.OK.value, "error": "",
    }
    failed = _failed_artifact(artifacts)
    if failed is not None:
        return {**record, **failed}
    specs = backend_specs(framework, model, model_spec, artifacts, b, (target or {}).get("kind", "llvm"))
    with tempfile.TemporaryDirectory(prefix="deltamut-throughput-") as workdir, _thread_env(settings.threads):
        timed = call_isolated(_timing_worker, {
            "specs": specs, "inputs": str(inputs), "sizes": [1, b], "warmup": int(settings.warmup),
            "passes": int(settings.passes), "threads": settings.threads, "workdir": workdir},
            settings.timeout_s, log)
        if not timed.ok:
            return {**record, **timed.as_record(), "failed_stage": Stage.RUN.value}
        logits = {s: np.load(Path(workdir) / f"logits_b{s}.npy") for s in (1, b)}
    batched, single = _rates(n, timed.value["seconds"][str(b)]), _rates(n, timed.value["seconds"]["1"])
    record.update(
        images_per_s=batched["median"], images_per_s_min=batched["min"], images_per_s_max=batched["max"],
        images_per_s_per_pass=batched["per_pass"], images_per_s_batch1=single["median"],
        images_per_s_batch1_min=single["min"], images_per_s_batch1_max=single["max"],
        images_per_s_batch1_per_pass=single["per_pass"], speedup=batched["median"] / single["median"],
        max_abs_diff_vs_batch1=max_abs_diff(logits[b], logits[1]), calls=timed.value["calls"],
        backend_info=timed.value["info"], tvm_num_threads=timed.value["tvm_num_threads"],
    )
    if not np.all(np.isfinite(logits[b])):
        record.update(status=Status.NAN.value, error="non-finite values in the batch-B outputs")
    return record


def throughput_stage(*, inputs: Mapping[str, str], outputs: Mapping[str, str], model: str, model_spec: dict[str, Any],
                     variant: str, settings: ThroughputSettings, log: str | Path,
                     target: dict[str, Any] | None = None) -> dict[str, Any]:
    """The throughput rule's entry point: one variant's record, written as JSON whatever happened. `inputs`:
    the images (`inputs`) and the variant's artifacts at both batch sizes (see `backend_specs`)."""
    framework, opt = parse_variant(variant)
    artifacts = {k: v for k, v in inputs.items() if k != "inputs"}
    record = measure_throughput(model, model_spec, framework, inputs["inputs"], settings, log, artifacts=artifacts,
                                opt=opt, target=target)
    write_json(outputs["record"], record)
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
        if r["status"] == Status.OK:
            lines.append(f"| {r['variant']} | {r['measure']} | {r['images_per_s']:.1f} | "
                         f"{r['images_per_s_min']:.1f}-{r['images_per_s_max']:.1f} | {r['images_per_s_batch1']:.1f} | "
                         f"{r['speedup']:.2f}x | {r['max_abs_diff_vs_batch1']:.2e} | ok |")
        else:
            why = str(r["error"]).splitlines()[0][:120].replace("|", "/") if isinstance(r.get("error"), str) else ""
            lines.append(f"| {r['variant']} | {r['measure']} | - | - | - | - | - | {r['status']}: {why} |")
    return "\n".join(lines) + "\n"


def throughput_table_stage(*, inputs: Mapping[str, Any], outputs: Mapping[str, str], model: str) -> None:
    """The throughput_table rule's entry point: gather a model's records into a CSV and a markdown note."""
    table = throughput_table([json.loads(Path(p).read_text()) for p in inputs["records"]])
    write_text(outputs["csv"], table.to_csv(index=False))
    write_text(outputs["md"], throughput_markdown(model, table))
