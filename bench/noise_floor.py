"""How large is "no change"? Numeric and latency noise floors that the verdict thresholds are set against.

For real pretrained models on the study photos, per image:

- torch float32 against the same module in float64 (``fp32_vs_fp64``): the error that float32 rounding
  alone causes, which is the ``fp32_error`` term of ``deltamut.compare.stats.noise_budget``;
- torch float32 with 1 thread against 2 threads (``threads_1_vs_2``) and one call against the next
  (``torch_repeat``): reduction-order and run-to-run noise of one framework;
- ONNX Runtime against torch (``ort_vs_torch``), and optionally TVM libraries that a study already built
  (``tvm_<opt>_vs_torch``, found under ``--results``; nothing is compiled here);
- each such pair graded as compare grades it (``deltamut.compare.verdicts.grade_images``), with the default
  thresholds, once with no noise term and once with the float32 error of the reference as noise;
- the logit scale (|logit| of the top-5) and the top-1 margin (top1 - top2 logit), to read atol / rtol
  against and to see how close an image comes to flipping;
- latency: for each runner, several sessions of ``--latency-calls`` calls on one image, interleaved
  between runners; the within-session spread and, for every pair of sessions of the *same* runner (an
  A/A comparison: nothing changed), the median ratio, the Mann-Whitney p and the latency verdict that
  ``grade_latency`` gives. Any slower / faster there is a false finding.

Usage (about 3-4 minutes on 2 shared cores):

    .venv/bin/python bench/noise_floor.py --models efficientnet_lite0,efficientnet_lite1 --out bench/out/noise_floor.csv

The CSV is long-form: one row per (model, comparison, quantity) with n, median, p95, max (and min / p5
where a small value is the interesting end, e.g. margins).
"""

from __future__ import annotations

import argparse
import copy
import csv
import itertools
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="efficientnet_lite0,efficientnet_lite1",
                    help="zoo names; models without packaged weights run with seeded weights")
    ap.add_argument("--images", type=Path, default=ROOT / "resources" / "photos")
    ap.add_argument("--limit", type=int, default=None, help="first N photos (default: all)")
    ap.add_argument("--threads", type=int, default=2, help="threads of the multi-threaded runs")
    ap.add_argument("--results", type=Path, default=ROOT / "results",
                    help="a study's results folder: TVM libraries <model>/tvm/<opt>/original/deploy/*/lib.so "
                         "found there are run too (nothing is compiled); absent: TVM is skipped")
    ap.add_argument("--tvm-opts", default="extended",
                    help="which optimisations' libraries to run (comma-separated; unscheduled ones take ~1 s "
                         "an image on 2 cores); empty: no TVM")
    ap.add_argument("--half", type=int, default=0,
                    help="also run torch float16 on the first N images (slow on CPU: ~10 s an image)")
    ap.add_argument("--latency-model", default=None, help="model whose latency is measured (default: the first)")
    ap.add_argument("--latency-calls", type=int, default=30, help="timed calls per session")
    ap.add_argument("--latency-sessions", type=int, default=6, help="sessions per runner")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "noise_floor.csv")
    return ap.parse_args(argv)


def _summary(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0, "min": np.nan, "p5": np.nan, "median": np.nan, "p95": np.nan, "max": np.nan}
    return {"n": int(v.size), "min": float(v.min()), "p5": float(np.percentile(v, 5)),
            "median": float(np.median(v)), "p95": float(np.percentile(v, 95)), "max": float(v.max())}


class Table:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, model: str, comparison: str, quantity: str, values, note: str = "") -> None:
        self.rows.append({"model": model, "comparison": comparison, "quantity": quantity,
                          **_summary(np.atleast_1d(values)), "note": note})

    def add_count(self, model: str, comparison: str, quantity: str, count: int, n: int, note: str = "") -> None:
        self.rows.append({"model": model, "comparison": comparison, "quantity": quantity, "n": n, "min": count,
                          "p5": np.nan, "median": np.nan, "p95": np.nan, "max": count, "note": note})


def _photos(folder: Path, limit: int | None):
    from deltamut.data import gather_default_images, load_dataset

    if not folder.is_dir() or not any(folder.iterdir()):
        gather_default_images(folder)
    return load_dataset(folder, limit=limit)


def _run_all(fn, batch: np.ndarray) -> np.ndarray:
    return np.stack([np.asarray(fn(batch[i:i + 1])).reshape(-1) for i in range(batch.shape[0])])


def _diffs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: max |a - b| and that divided by the largest |logit| of b (the scale rtol multiplies)."""
    d = np.abs(a.astype(np.float64) - b.astype(np.float64)).max(axis=1)
    return d, d / np.abs(b.astype(np.float64)).max(axis=1)


def _tol_used(a: np.ndarray, b: np.ndarray, noise) -> np.ndarray:
    """Per image, the largest fraction of the within_noise tolerance that any class uses (default thresholds)."""
    from deltamut.compare.verdicts import Thresholds

    t = Thresholds()
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    tol = np.broadcast_to(np.asarray(noise, np.float64), (a.shape[0],))[:, None] + t.atol + t.rtol * np.abs(b64)
    return (np.abs(a64 - b64) / tol).max(axis=1)


def _grade_counts(a: np.ndarray, b: np.ndarray, noise) -> dict[str, int]:
    from deltamut.compare.verdicts import Thresholds, grade_images

    ok = np.full(a.shape[0], "ok")
    verdicts = grade_images(a.astype(np.float32), b.astype(np.float32), ok, ok, noise, Thresholds())
    values, counts = np.unique(verdicts.astype(str), return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


def _fmt_counts(c: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(c.items()))


def _numeric(name: str, args, table: Table, dataset, runners_out: dict) -> None:
    import torch

    from deltamut.data import build_inputs
    from deltamut.export.onnx_export import export_model
    from deltamut.models import load_model

    info = load_model(name, {"source": "zoo"})
    batch = build_inputs(dataset, info.preprocessing)
    print(f"\n== {name}: {batch.shape[0]} photos, input {info.input_shape}, "
          f"{'pretrained ' + str(info.weights) if info.pretrained else 'seeded weights'}", flush=True)
    m32 = info.module.eval()
    m64 = copy.deepcopy(m32).double().eval()

    def torch_fn(module, dtype):
        def fn(x):
            with torch.no_grad():
                return module(torch.from_numpy(x).to(dtype)).to(torch.float64).numpy()
        return fn

    t32 = torch_fn(m32, torch.float32)
    torch.set_num_threads(args.threads)
    t32(batch[:1])  # warm-up: the first call allocates and picks kernels
    ref = _run_all(t32, batch).astype(np.float32)
    again = _run_all(t32, batch).astype(np.float32)
    torch.set_num_threads(1)
    one = _run_all(t32, batch).astype(np.float32)
    torch.set_num_threads(args.threads)
    f64 = _run_all(torch_fn(m64, torch.float64), batch)

    outputs = {"torch_repeat": (again, ref), "threads_1_vs_2": (one, ref)}

    with tempfile.TemporaryDirectory() as tmp:
        import onnxruntime as ort

        onnx_path = Path(tmp) / f"{name}.onnx"
        export_model(info, onnx_path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        in_name = sess.get_inputs()[0].name
        ort_fn = lambda x: sess.run(None, {in_name: x})[0]  # noqa: E731
        ort_fn(batch[:1])
        outputs["ort_vs_torch"] = (_run_all(ort_fn, batch).astype(np.float32), ref)
        runners = {"torch": lambda x: t32(x), "onnxruntime": ort_fn}

        opts_wanted = [o.strip() for o in args.tvm_opts.split(",") if o.strip()]
        for opt in opts_wanted if args.results.is_dir() else []:
            for lib in sorted((args.results / name / "tvm" / opt).glob("original/deploy/*/lib.so")):
                from deltamut.devices.tvm_backend import TvmBackend

                try:
                    backend = TvmBackend({"lib": str(lib), "target_kind": "llvm"})
                    backend(batch[:1])
                    outputs[f"tvm_{opt}_vs_torch"] = (_run_all(backend, batch).astype(np.float32), ref)
                    runners[f"tvm_{opt}"] = backend
                except Exception as exc:  # a library from another TVM build or model version: report, go on
                    print(f"  skipped TVM library {lib}: {type(exc).__name__}: {exc}")

        if args.half:
            m16 = copy.deepcopy(m32).half().eval()
            n = min(args.half, batch.shape[0])
            h = _run_all(torch_fn(m16, torch.float16), batch[:n]).astype(np.float32)
            d, r = _diffs(h, f64[:n])
            table.add(name, "fp16_vs_fp64", "max_abs", d, "torch float16 on CPU")
            table.add(name, "fp16_vs_fp64", "max_abs_over_max_logit", r)

        if name == (args.latency_model or args.models.split(",")[0]):
            runners_out.update({"model": name, "x": batch[:1], "runners": runners})
            _latency(args, table, runners_out)

    # the float32 noise floor of the reference, per image: the fp32_error term of noise_budget
    fp32_err, fp32_rel = _diffs(ref, f64)
    table.add(name, "fp32_vs_fp64", "max_abs", fp32_err, "torch fp32 vs the same module in float64")
    table.add(name, "fp32_vs_fp64", "max_abs_over_max_logit", fp32_rel)
    for comparison, (a, b) in outputs.items():
        d, r = _diffs(a, b)
        table.add(name, comparison, "max_abs", d)
        table.add(name, comparison, "max_abs_over_max_logit", r)
        table.add(name, comparison, "max_abs_over_fp32_error", d / np.maximum(fp32_err, 1e-30),
                  "> 1: the pair differs by more than the reference's own float32 error")
        table.add(name, comparison, "tolerance_used[defaults]", _tol_used(a, b, 0.0),
                  "max over classes |a-b| / (atol + rtol|b|): <= 1 is within_noise")
        table.add(name, comparison, "tolerance_used[defaults+fp32_error]", _tol_used(a, b, fp32_err))
        n = a.shape[0]
        for label, noise in (("defaults", None), ("defaults+fp32_error", fp32_err)):
            counts = _grade_counts(a, b, noise)
            for verdict, count in counts.items():
                table.add_count(name, comparison, f"verdict[{label}]={verdict}", count, n)
        if comparison.endswith("_vs_torch"):
            table.add(name, comparison.replace("_vs_torch", "_vs_fp64"), "max_abs", _diffs(a, f64)[0])

    top = np.sort(f64, axis=1)[:, ::-1]
    table.add(name, "logits", "abs_top5_logit", np.abs(top[:, :5]).ravel(), "float64 reference")
    table.add(name, "logits", "max_abs_logit", np.abs(f64).max(axis=1))
    margin = top[:, 0] - top[:, 1]
    table.add(name, "logits", "top1_margin", margin, "top1 - top2 logit")
    table.add(name, "logits", "top1_margin_over_fp32_error", margin / np.maximum(fp32_err, 1e-30))
    worst = np.max([_diffs(a, b)[0] for a, b in outputs.values()], axis=0)
    table.add(name, "logits", "top1_margin_over_worst_backend_diff", margin / np.maximum(worst, 1e-30),
              "margin / largest |delta| of any pair above; < 1 would be a noise flip")
    top5_gap = top[:, 3] - top[:, 4]
    table.add(name, "logits", "top4_top5_gap", top5_gap, "closest call in the top-5 order is often here")
    gaps = (-np.diff(top[:, :6], axis=1)).min(axis=1)
    table.add(name, "logits", "min_gap_in_top6", gaps, "smallest adjacent gap, top-1..top-6")
    table.add_count(name, "logits", "images_with_top6_gap_below_worst_backend_diff",
                    int((gaps < worst).sum()), len(gaps), "a top-k reorder by noise is possible on these")


def _latency(args, table: Table, state: dict) -> None:
    """Sessions of calls on one image, interleaved between runners; A/A comparisons between sessions."""
    from deltamut.compare.stats import compare_latency
    from deltamut.compare.verdicts import Thresholds, grade_latency

    name, x, runners = state["model"], state["x"], state["runners"]
    print(f"  latency: {len(runners)} runners x {args.latency_sessions} sessions x {args.latency_calls} calls",
          flush=True)
    sessions: dict[str, list[np.ndarray]] = {k: [] for k in runners}
    for _ in range(args.latency_sessions):
        for key, fn in runners.items():
            fn(x)  # one warm-up per session, as the runner's `warmup: 1`
            times = []
            for _ in range(args.latency_calls):
                t0 = time.perf_counter()
                fn(x)
                times.append((time.perf_counter() - t0) * 1e3)
            sessions[key].append(np.asarray(times))
    t = Thresholds()
    for key, runs in sessions.items():
        comp = f"latency_{key}"
        table.add(name, comp, "ms", np.concatenate(runs))
        table.add(name, comp, "iqr_over_median_per_session",
                  [np.subtract(*np.percentile(r, [75, 25])) / np.median(r) for r in runs])
        table.add(name, comp, "range_over_median_per_session", [np.ptp(r) / np.median(r) for r in runs])
        medians = np.array([np.median(r) for r in runs])
        table.add(name, comp, "session_median_ms", medians)
        ratios, pvalues, verdicts = [], [], []
        for i, j in itertools.combinations(range(len(runs)), 2):
            c = compare_latency(runs[i], runs[j])
            ratios.append(c.ratio)
            pvalues.append(c.pvalue)
            verdicts.append(grade_latency(c, t))
        table.add(name, comp, "aa_ratio", ratios, "median ratio between two sessions of the same runner")
        table.add(name, comp, "aa_abs_log_ratio", np.abs(np.log(ratios)), "|ln ratio|: 0.049 = 5%")
        table.add(name, comp, "aa_pvalue", pvalues)
        n = len(pvalues)
        table.add_count(name, comp, f"aa_p_below_alpha({t.alpha})", int((np.asarray(pvalues) < t.alpha).sum()), n,
                        "significant with no change: what alpha alone would call slower/faster")
        for rel in (0.05, 0.10, 0.20):
            hits = sum(p < t.alpha and (r >= 1 + rel or r <= 1 / (1 + rel)) for p, r in zip(pvalues, ratios,
                                                                                             strict=True))
            table.add_count(name, comp, f"aa_false_verdict(min_rel_change={rel})", int(hits), n,
                            "false slower/faster among A/A pairs")
        table.add_count(name, comp, "aa_false_verdict(defaults)", sum(v != "same_speed" for v in verdicts), n)


def _print(table: Table) -> None:
    print(f"\n{'model':19s} {'comparison':22s} {'quantity':48s} {'n':>4s} {'median':>10s} {'p95':>10s} "
          f"{'max':>10s} {'min':>10s}")
    for r in table.rows:
        if r["quantity"].startswith(("verdict[", "aa_false", "aa_p_below", "images_with")):
            print(f"{r['model']:19s} {r['comparison']:22s} {r['quantity']:48s} {r['n']:4d} "
                  f"{'count':>10s} {'':>10s} {r['max']:10d}")
            continue
        print(f"{r['model']:19s} {r['comparison']:22s} {r['quantity']:48s} {r['n']:4d} {r['median']:10.3g} "
              f"{r['p95']:10.3g} {r['max']:10.3g} {r['min']:10.3g}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    os.environ.setdefault("TVM_NUM_THREADS", str(args.threads))
    sys.path.insert(0, str(ROOT))
    import torch

    started = time.perf_counter()
    dataset = _photos(args.images, args.limit)
    if len(dataset) < 2:
        raise SystemExit(f"need photos in {args.images}, found {len(dataset)}")
    table = Table()
    state: dict = {}
    for name in args.models.split(","):
        _numeric(name.strip(), args, table, dataset, state)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    header = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "host": platform.node(),
              "cpus": os.cpu_count(), "torch": torch.__version__, "threads": args.threads,
              "images": len(dataset), "load_avg": " ".join(f"{v:.2f}" for v in os.getloadavg())}
    with args.out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*table.rows[0], *header])
        writer.writeheader()
        writer.writerows({**r, **header} for r in table.rows)
    _print(table)
    print(f"\n{header}\nwritten {args.out} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
