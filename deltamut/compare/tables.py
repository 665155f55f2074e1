"""Per-image and per-pair tables of one model's comparisons: tidy, so pandas users can pivot them.

Each row carries the coordinates of both sides (framework, optimisation, mutant, device) and the
provenance of side `a` (TVM / torch / ONNX Runtime versions, target, host), so a row can be traced to what
made it; the thresholds used are stored with the tables so a saved comparison can be re-judged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deltamut.compare import metrics
from deltamut.compare.duplicates import output_twins
from deltamut.compare.stats import compare_rounds, mcnemar
from deltamut.compare.verdicts import LatencyVerdict, Thresholds, failed_side, grade_images, grade_latency, grade_pair
from deltamut.fsutil import as_files
from deltamut.numeric import max_abs_diff
from deltamut.outcome import Status
from deltamut.runner.outputs import Outputs, load_outputs
from deltamut.study import FLOAT64
from deltamut.timing.records import compare_members, pair_timing

OK = Status.OK.value
COORDS = ("framework", "conversion", "opt", "mutant", "device", "target")


def _provenance(out: Outputs) -> dict[str, Any]:
    m = out.meta
    versions = m.get("versions", {})
    return {"tvm": versions.get("apache-tvm"), "torch": versions.get("torch"),
            "onnxruntime": versions.get("onnxruntime"), "host": m.get("host", {}).get("hostname"),
            "target_str": (m.get("deploy") or {}).get("target")}


def _schedule(out: Outputs) -> tuple[str, list[str]]:
    """How a TVM build was scheduled (its deploy record): the rule, and the kernels the rules left unscheduled."""
    record = (out.meta.get("deploy") or {}).get("schedule") or {}
    return str(record.get("rule", "")), sorted(record.get("fallbacks", {}))


def latency_caveat(a: Outputs, b: Outputs) -> str:
    """Why a latency verdict between two builds may not be about what differs between them: their kernels
    were not scheduled alike (a kernel the CPU rules could not schedule runs 10-100x slower)."""
    (rule_a, fall_a), (rule_b, fall_b) = _schedule(a), _schedule(b)
    if not rule_a or not rule_b:
        return ""
    if rule_a != rule_b:
        return f"schedules differ: {rule_a} vs {rule_b}"
    if fall_a != fall_b:
        only_a, only_b = sorted(set(fall_a) - set(fall_b)), sorted(set(fall_b) - set(fall_a))
        parts = [f"{side} left {len(k)} kernel(s) unscheduled ({', '.join(k[:3])}{', ...' if len(k) > 3 else ''})"
                 for side, k in (("a", only_a), ("b", only_b)) if k]
        return "schedules differ: " + "; ".join(parts)
    return ""


def _usable(out: Outputs, width: int) -> np.ndarray | None:
    return out.logits if out.logits.shape[1] == width and width > 0 else None


def _check_outputs(model: str, vid: str, out: Outputs) -> None:
    """Refuse a malformed result file with its name and field, before numpy fails somewhere inside."""
    n = np.shape(out.ids)[0] if np.ndim(out.ids) == 1 else None
    expected = {"ids": (1, None), "logits": (2, n), "latency_ms": (2, n), "status": (1, n),
                "repeat_spread": (1, n), "rerun_spread": (1, n)}
    for name, (ndim, rows) in expected.items():
        shape = np.shape(getattr(out, name))
        if len(shape) != ndim or (rows is not None and shape[0] != rows):
            want = "(N,)" if ndim == 1 else "(N, C)"
            raise ValueError(f"{model}: result {vid}: {name} has shape {shape}, expected {want} with N = "
                             f"{n} images")


def _pair_side(side: np.ndarray) -> str:
    """Which side failed on some image of a pair: "a", "b", "both" (each failed somewhere) or ""."""
    fa, fb = bool(np.isin(side, ["a", "both"]).any()), bool(np.isin(side, ["b", "both"]).any())
    return "both" if fa and fb else "a" if fa else "b" if fb else ""


def _nanmean(values: pd.Series) -> float:
    return float(np.nanmean(values)) if values.notna().any() else np.nan


def _against_float64(a: Outputs, b: Outputs, la: np.ndarray | None, lb: np.ndarray | None,
                     float64: np.ndarray | None, width: int) -> dict[str, np.ndarray]:
    """Each side's RMSE against the float64 run, per image (NaN where a side or the float64 run is missing)."""
    n = len(a.ids)
    out = {}
    for side, out_, logits in (("a", a, la), ("b", b, lb)):
        ok = out_.observed_status == OK
        if logits is None or float64 is None or float64.shape != (n, width):
            out[f"rmse_vs_float64_{side}"] = np.full(n, np.nan)
        else:
            out[f"rmse_vs_float64_{side}"] = np.where(ok, metrics.rmse(logits, float64).astype(np.float64), np.nan)
    return out


@dataclass(frozen=True)
class _Sides:
    """The two sides of one pair as compare sees them: each side's usable logits (None where its width is not
    the pair's), what each was observed to do, and per image where both ran, who failed and the verdict."""

    a: Outputs
    b: Outputs
    la: np.ndarray | None
    lb: np.ndarray | None
    width: int
    status_a: np.ndarray
    status_b: np.ndarray
    both: np.ndarray
    side: np.ndarray
    flaky: np.ndarray
    verdict: np.ndarray

    def top1(self, name: str) -> np.ndarray:
        logits, status = (self.la, self.status_a) if name == "a" else (self.lb, self.status_b)
        return np.where(status == OK, logits.argmax(1), -1) if logits is not None else np.full(len(self.a.ids), -1)

    def metric(self, fn, **kw) -> np.ndarray:
        """A per-image metric of the two sides, NaN wherever either side failed."""
        if self.la is None or self.lb is None:
            return np.full(len(self.a.ids), np.nan)
        return np.where(self.both, fn(self.la, self.lb, **kw).astype(np.float64), np.nan)


def _validated(model: str, a_id: str, b_id: str, a: Outputs, b: Outputs,
               labels: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None, int]:
    """Refuse two result files that cannot be compared (malformed, other images, other labels, ok images
    without logits of the pair's width), naming the file; else each side's usable logits and the width."""
    _check_outputs(model, a_id, a)
    _check_outputs(model, b_id, b)
    if list(a.ids) != list(b.ids):
        raise ValueError(f"{model}: {a_id} and {b_id} ran on different images")
    if np.shape(labels) != (len(a.ids),):
        raise ValueError(f"{model}: labels have shape {np.shape(labels)}, expected ({len(a.ids)},): the inputs "
                         f"file does not belong to these results")
    width = max(a.logits.shape[1], b.logits.shape[1])
    la, lb = _usable(a, width), _usable(b, width)
    for vid, out, usable in ((a_id, a, la), (b_id, b, lb)):
        if usable is None and (out.observed_status == OK).any():
            raise ValueError(f"{model}: result {vid} has images with status ok but logits of shape "
                             f"{out.logits.shape}, while the pair needs {width} classes ({a_id}: "
                             f"{a.logits.shape}, {b_id}: {b.logits.shape})")
    return la, lb, width


def _graded(a: Outputs, b: Outputs, la: np.ndarray | None, lb: np.ndarray | None, width: int,
            thresholds: Thresholds, extra_noise: list[np.ndarray | None]) -> _Sides:
    """Grade every image: each side's measured run-to-run spread, the float32 floor and the pair kind's own
    noise widen its tolerance (see `compare_pair`)."""
    status_a, status_b = a.observed_status, b.observed_status
    noise = a.spread + b.spread + sum(np.nan_to_num(np.asarray(v, np.float64), nan=0.0, posinf=0.0)
                                      for v in extra_noise if v is not None)
    verdict = grade_images(la, lb, status_a, status_b, noise, thresholds)
    both = (status_a == OK) & (status_b == OK) & (la is not None) & (lb is not None)
    return _Sides(a, b, la, lb, width, status_a, status_b, both, failed_side(status_a, status_b),
                  a.nondeterministic | b.nondeterministic, verdict)


def _identity(model: str, kind: str, a_id: str, b_id: str, coords: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The columns that say which pair a row belongs to: its kind, both ids and both sides' coordinates."""
    return {"model": model, "kind": kind, "a": a_id, "b": b_id,
            **{f"{c}_a": coords[a_id].get(c, "") for c in COORDS},
            **{f"{c}_b": coords[b_id].get(c, "") for c in COORDS}}


def _image_rows(s: _Sides, identity: dict[str, Any], labels: np.ndarray, thresholds: Thresholds,
                float64: np.ndarray | None, floor: np.ndarray | None) -> pd.DataFrame:
    """One row per image: both sides' statuses and top-1, every metric where both ran, the verdict."""
    a, b = s.a, s.b
    top1_a, top1_b = s.top1("a"), s.top1("b")
    return pd.DataFrame({
        **identity,
        "image": a.ids, "label": labels, "status_a": s.status_a, "status_b": s.status_b,
        "intermittent_a": a.intermittent, "intermittent_b": b.intermittent, "failed_side": s.side,
        "top1_a": top1_a, "top1_b": top1_b,
        "top1_agree": np.where(s.both, top1_a == top1_b, False),
        f"top{thresholds.topk}_jaccard": s.metric(metrics.topk_jaccard, k=thresholds.topk),
        "kendall_tau": s.metric(metrics.kendall_tau), "rbo": s.metric(metrics.rbo),
        "max_abs_err": s.metric(metrics.max_abs_err), "max_rel_err": s.metric(metrics.max_rel_err),
        "cosine": s.metric(metrics.cosine),
        **_against_float64(a, b, s.la, s.lb, float64, s.width),
        "float32_floor": np.full(len(a.ids), np.nan) if floor is None else floor,
        "correct_a": (top1_a == labels) & (labels >= 0), "correct_b": (top1_b == labels) & (labels >= 0),
        "latency_a_ms": a.median_latency_ms(), "latency_b_ms": b.median_latency_ms(),
        "repeat_spread_a": a.repeat_spread, "repeat_spread_b": b.repeat_spread,
        "rerun_spread_a": a.rerun_spread, "rerun_spread_b": b.rerun_spread,
        "nondeterministic": s.flaky,
        "verdict": s.verdict.astype(str),
    })


def _agreement(s: _Sides, rows: pd.DataFrame, labels: np.ndarray, thresholds: Thresholds) -> dict[str, Any]:
    """How far the outputs agree where both sides ran, and each side's accuracy on the labelled images."""
    n_both, labelled = int(s.both.sum()), labels >= 0
    mc = mcnemar(rows["correct_a"][labelled].to_numpy(), rows["correct_b"][labelled].to_numpy()) \
        if labelled.any() else None
    jaccard = f"top{thresholds.topk}_jaccard"
    return {
        "top1_disagreement_pct": 100.0 * float((~rows["top1_agree"][s.both]).sum()) / n_both if n_both else np.nan,
        f"{jaccard}_mean": float(np.nanmean(rows[jaccard])) if n_both else np.nan,
        "kendall_tau_mean": float(np.nanmean(rows["kendall_tau"])) if n_both else np.nan,
        "max_abs_err": float(np.nanmax(rows["max_abs_err"])) if n_both else np.nan,
        **{f"rmse_vs_float64_{x}": _nanmean(rows[f"rmse_vs_float64_{x}"]) for x in "ab"},
        "nondeterministic_images": int(s.flaky.sum()),
        "n_labelled": int(labelled.sum()),
        "accuracy_a": float(rows["correct_a"][labelled].mean()) if labelled.any() else np.nan,
        "accuracy_b": float(rows["correct_b"][labelled].mean()) if labelled.any() else np.nan,
        "mcnemar_p": mc.pvalue if mc else np.nan,
    }


def _latency(s: _Sides, thresholds: Thresholds, timing: dict[str, Any] | None) -> dict[str, Any]:
    """The speed verdict, from the interleaved rounds of the timing group that held both sides
    (`deltamut.timing.records.pair_timing`), and what may make it not about the variant (schedules that
    differ). A pair no group timed, or whose group could not time a side, gets no verdict and says why."""
    timing = timing or {"untimed": "not timed: no timing records"}
    why = timing.get("untimed") or timing.get("failed") or ""
    # The baseline goes first: ratio = variant / baseline and "slower" means the variant `a` is slower.
    if why:
        lat = compare_rounds([], [])
    else:
        lat, why = compare_members(timing["b"], timing["a"], timing.get("settings", {}).get("min_undisturbed_share"))
    verdict = LatencyVerdict.NOT_TIMED.value if "untimed" in timing else \
        LatencyVerdict.UNKNOWN.value if why else grade_latency(lat, thresholds)
    return {
        "median_latency_a_ms": lat.median_b, "median_latency_b_ms": lat.median_a,
        "latency_ratio": lat.ratio, "latency_ci_low": lat.ci_low, "latency_ci_high": lat.ci_high,
        "latency_p": lat.pvalue, "latency_effect": lat.effect_size, "latency_rounds": lat.n_a,
        "latency_group": timing.get("group", ""),
        "latency_verdict": verdict,
        "latency_caveat": "; ".join(c for c in (why, latency_caveat(s.a, s.b)) if c),
        "schedule_fallbacks_a": ", ".join(_schedule(s.a)[1]), "schedule_fallbacks_b": ", ".join(_schedule(s.b)[1]),
    }


def _pair_summary(s: _Sides, identity: dict[str, Any], rows: pd.DataFrame, labels: np.ndarray,
                  thresholds: Thresholds, timing: dict[str, Any] | None) -> dict[str, Any]:
    """The pair's row: who failed where, how far the outputs agree, the speed verdict and the pair's grade."""
    a, b, side = s.a, s.b, s.side
    return {
        **identity,
        "n_images": len(a.ids), "n_ok_a": int((s.status_a == OK).sum()), "n_ok_b": int((s.status_b == OK).sum()),
        "n_compared": int(s.both.sum()),
        # who failed where: a's own failures are findings about a, b's make those images not comparable
        "n_failed_a": int(np.isin(side, ["a", "both"]).sum()), "n_failed_b": int(np.isin(side, ["b", "both"]).sum()),
        "n_intermittent_a": int(a.intermittent.sum()), "n_intermittent_b": int(b.intermittent.sum()),
        "failed_side": _pair_side(side),
        **_agreement(s, rows, labels, thresholds),
        **_latency(s, thresholds, timing),
        "verdict": grade_pair(s.verdict),
        **{f"n_{v}": int((s.verdict == v).sum()) for v in sorted(set(s.verdict))},
        # Where a failing side failed (compile / mutate / deploy / run), for the failure's stage x symptom.
        "failed_stage_a": a.meta.get("failed_stage", ""), "failed_stage_b": b.meta.get("failed_stage", ""),
        **{f"{k}_a": v for k, v in _provenance(a).items()},
    }


def compare_pair(model: str, kind: str, a_id: str, b_id: str, a: Outputs, b: Outputs, labels: np.ndarray,
                 coords: dict[str, dict[str, str]], thresholds: Thresholds, float64: np.ndarray | None = None,
                 floor: np.ndarray | None = None, baseline_noise: np.ndarray | None = None,
                 timing: dict[str, Any] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The per-image rows and the summary row of one pair (`a` judged against baseline `b`).

    `float64`: the model's logits computed in float64 (N, C), against which each side's RMSE is given.
    `floor`: per image, how far float32 arithmetic alone moves the logits (|torch float32 - torch float64|,
    max over classes); it widens the tolerance of every image, since two float32 implementations may each
    sit that far from the exact result. It is not applied to the float32-vs-float64 pair itself.

    Nondeterminism: an image whose repeats or reruns disagreed on either side (`Outputs.nondeterministic`) gets
    both sides' measured spread (the larger of repeat and rerun spread; unbounded where the runs ended with
    different statuses) added to its tolerance: a difference the backend's own run-to-run variation explains
    is `within_noise`, never a finding, while a change far beyond it still is (a mutant whose out-of-bounds
    read jitters its logits by 0.2 but moves them by 7 and flips labels is killed, not excused). The pair
    row counts such images in `nondeterministic_images`, so the flag stays visible beside any finding.
    Failures: each side's status is what it was observed to do in any run, main run or rerun
    (`Outputs.observed_status`); an intermittent failure is a failure of that side, flagged `intermittent_*`.
    Where the baseline `b` failed the image is `not_comparable` (counted, excluded from the pair's grade), so
    a variant is never credited with its baseline's failures; `failed_side` names who failed.

    `baseline_noise`: per image, a further tolerance that the pair's own kind calls for: for a mutant on two
    devices, how far the original itself moves between those devices, so that only divergence beyond the
    original's cross-device noise is a finding.
    """
    la, lb, width = _validated(model, a_id, b_id, a, b, labels)
    sides = _graded(a, b, la, lb, width, thresholds, [floor, baseline_noise])
    identity = _identity(model, kind, a_id, b_id, coords)
    rows = _image_rows(sides, identity, labels, thresholds, float64, floor)
    return rows, _pair_summary(sides, identity, rows, labels, thresholds, timing)


@dataclass
class ModelComparison:
    """One model's comparisons: the per-image and per-pair tables, and the mutants whose outputs repeat
    another mutant's within noise ((opt, device, mutant) -> that mutant; see `compare.duplicates`)."""

    per_image: pd.DataFrame
    per_pair: pd.DataFrame
    output_twins: dict[tuple, str]


def _cross_noise(a: Outputs, b: Outputs) -> np.ndarray:
    """Per image, max |a - b| where both ran (0 elsewhere): how far one variant moves between two sides."""
    ok = (a.observed_status == OK) & (b.observed_status == OK)
    if not ok.any() or a.logits.shape != b.logits.shape or a.logits.shape[1] == 0:
        return np.zeros(len(a.ids))
    diff = max_abs_diff(a.logits, b.logits, axis=1)
    return np.where(ok & np.isfinite(diff), diff, 0.0)


def _labels(inputs: str | Path | Sequence[str | Path]) -> tuple[np.ndarray, list[str] | None]:
    """The images' labels and the model's class names, from the preprocessed images (each shard's, in order)."""
    labels, names = [], None
    for f in as_files(inputs):
        with np.load(f) as z:
            labels.append(z["labels"].astype(np.int64))
            names = names if names is not None else (z["classes"].tolist() if "classes" in z.files else None)
    return np.concatenate(labels), names


def compare_model(model: str, variants: dict[str, dict[str, str]], pairs: list[dict[str, Any]],
                  inputs: str | Path | Sequence[str | Path], thresholds: dict[str, Any] | None,
                  timings: list[dict[str, Any]] | None = None) -> ModelComparison:
    """All pairs of one model; each result file is read once. A pair may name a `noise` pair of variants whose
    per-image difference widens its tolerance (a mutant across devices: the original across the same ones).
    `timings`: the model's timing records (`deltamut.timing`), whence every latency verdict."""
    t = Thresholds.from_dict(thresholds)
    labels, names = _labels(inputs)
    cache: dict[str, Outputs] = {}

    def get(v: str) -> Outputs:
        if v not in cache:
            cache[v] = load_outputs(variants[v]["path"])
        return cache[v]

    float64 = floor = None
    if FLOAT64 in variants:
        ref64, ref32 = get(FLOAT64), get("torch")
        if (ref64.status == OK).all() and (ref32.status == OK).all() and ref64.logits.shape == ref32.logits.shape:
            float64 = ref64.logits.astype(np.float64)
            floor = np.abs(ref32.logits.astype(np.float64) - float64).max(axis=1)
    per_image, per_pair = [], []
    for p in pairs:
        extra = _cross_noise(*(get(v) for v in p["noise"])) if p.get("noise") else None
        rows, summary = compare_pair(model, p["kind"], p["a"], p["b"], get(p["a"]), get(p["b"]), labels,
                                     variants, t, float64=float64, floor=None if p["kind"] == "precision" else floor,
                                     baseline_noise=extra, timing=pair_timing(timings or [], variants, p["a"], p["b"]))
        per_image.append(rows)
        per_pair.append(summary)
    pair_table = pd.DataFrame(per_pair)
    counts = [c for c in pair_table.columns if c.startswith("n_")]
    pair_table[counts] = pair_table[counts].fillna(0).astype(int)
    for k, v in t.to_dict().items():
        pair_table[f"threshold_{k}"] = v
    groups: dict[tuple, list[tuple[str, str]]] = {}
    for p in pairs:
        if p["kind"] == "mutant":
            c = variants[p["a"]]
            groups.setdefault((c["opt"], c["device"]), []).append((c["mutant"], p["a"]))
    twins = output_twins(groups.items(), get, t, floor)
    per_image = _named(pd.concat(per_image, ignore_index=True), names)
    pair_table["top_flip"] = _top_flips(per_image, pair_table)
    return ModelComparison(per_image, pair_table, twins)


def _top_flips(per_image: pd.DataFrame, pair_table: pd.DataFrame) -> list[str]:
    """Per pair, its most frequent top-1 change in the model's class names, from the baseline's class to the
    variant's (`tabby → tiger cat ×3`: side b said tabby, side a tiger cat): what a mutant or a conversion does
    to the model's decisions, in words its users read."""
    named = "class_a" in per_image.columns
    a_col, b_col = ("class_a", "class_b") if named else ("top1_a", "top1_b")
    flipped = per_image[~per_image["top1_agree"] & (per_image["status_a"] == OK) & (per_image["status_b"] == OK)]
    counts = flipped.groupby(["a", "b", a_col, b_col], sort=False).size().reset_index(name="n")
    counts = counts.sort_values("n", ascending=False, kind="stable").drop_duplicates(["a", "b"])
    best = {(r.a, r.b): f"{r[b_col]} → {r[a_col]} ×{r.n}" for _, r in counts.iterrows()}
    return [best.get((a, b), "") for a, b in zip(pair_table["a"], pair_table["b"], strict=True)]


def _named(per_image: pd.DataFrame, names: list[str] | None) -> pd.DataFrame:
    """The ground truth and both top-1 classes by the model's own names too, beside their ids, so a reader of
    the table need not look ids up (empty where there is no class: unlabelled, or the side did not run). The
    columns are added to `per_image` itself (a study's table is large; it is not copied)."""
    if not names:
        return per_image
    table = np.asarray([*names, ""], dtype=object)

    def name(ids: pd.Series) -> np.ndarray:
        ids = ids.to_numpy()
        return table[np.where((ids >= 0) & (ids < len(names)), ids, len(names))]

    at = per_image.columns.get_loc("label") + 1
    per_image.insert(at, "label_name", name(per_image["label"]))
    at = per_image.columns.get_loc("top1_b") + 1
    per_image.insert(at, "class_a", name(per_image["top1_a"]))
    per_image.insert(at + 1, "class_b", name(per_image["top1_b"]))
    return per_image
