"""The benchmark scripts' bookkeeping: reading Snakemake's benchmark TSVs and logs, and the overhead table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import pipeline_overhead as po
from bench import plan_time
from deltamut.runner.outputs import Outputs, save_outputs

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _tsv(path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:{int(seconds):02d}\t1\t1\t1\t1\t0\t0\t50\t1\n")


def _outputs(path, latency_ms: np.ndarray, warmup: int, runs: int) -> None:
    n = latency_ms.shape[0]
    meta = {"settings": {"warmup": warmup, "repeats": latency_ms.shape[1]}, "reruns": {"runs": runs, "images": n}}
    save_outputs(path, Outputs(ids=np.array([f"i{k}" for k in range(n)]), logits=np.zeros((n, 4), np.float32),
                               latency_ms=latency_ms, status=np.full(n, "ok"), error=np.full(n, ""), meta=meta))


def test_run_work_counts_untimed_calls_at_the_median():
    lat = np.array([[10.0, 10.0], [20.0, np.nan], [30.0, 30.0]])
    # 100 ms timed; 1 warm-up + 2 extra passes over 3 images = 7 untimed calls at the 20 ms median.
    assert po.run_work_s(lat, {"settings": {"warmup": 1}, "reruns": {"runs": 3, "images": 3}}) == pytest.approx(0.24)
    assert po.run_work_s(lat, {}) == pytest.approx(0.1)
    assert po.run_work_s(np.full((2, 2), np.nan), {"settings": {"warmup": 5}}) == 0.0


def test_run_work_is_the_time_between_first_and_last_image_when_the_workers_stamped_it():
    lat = np.array([[10.0, 10.0]])
    timeline = [{"ready": [100.0], "first_image": 102.0, "last_image": 105.5},
                {"ready": [100.2], "first_image": 105.6, "last_image": 106.1}]
    assert po.run_work_s(lat, {"timeline": timeline}) == pytest.approx(4.0)
    # a run that never reached an image leaves the estimate from the latencies
    assert po.run_work_s(lat, {"timeline": [{"ready": [], "first_image": None, "last_image": None}]}) == \
        pytest.approx(0.02)


def test_overhead_table_from_a_synthetic_run(tmp_path):
    bench = tmp_path / "results" / "benchmarks"
    _tsv(bench / "infer/m/default/original/cpu.tsv", 5.0)
    _tsv(bench / "infer/m/default/mnn1/cpu.tsv", 2.0)
    _tsv(bench / "deploy/m/default/original/x86_64.tsv", 9.0)
    _tsv(bench / "mutate/m/default/original.tsv", 4.0)
    _tsv(bench / "mutate/m/default/mnn1.tsv", 6.0)
    _outputs(tmp_path / "results/m/tvm/default/original/infer/cpu/outputs.npz", np.full((2, 2), 250.0), 0, 1)
    _outputs(tmp_path / "results/m/tvm/default/mnn1/infer/cpu/outputs.npz", np.full((2, 2), 100.0), 1, 2)
    deploy = tmp_path / "results/m/tvm/default/original/deploy/x86_64/deploy.json"
    deploy.parent.mkdir(parents=True)
    deploy.write_text(json.dumps({"status": "ok", "compile_s": 4.0, "export_s": 1.5}))
    (tmp_path / "results/m/tvm/default/mnn1/manifest.json").write_text(json.dumps({"status": "ok", "mutate_s": 5.5}))

    jobs = po.collect(tmp_path)
    assert {(j["rule"], j["key"]) for j in jobs} == {
        ("infer", "m/default/original/cpu"), ("infer", "m/default/mnn1/cpu"),
        ("deploy", "m/default/original/x86_64"), ("mutate", "m/default/original"), ("mutate", "m/default/mnn1")}
    table = {r["rule"]: r for r in po.summarise(jobs)}
    # infer: 5 s - 1 s of calls, and 2 s - (0.4 s timed + 3 untimed calls of 0.1 s)
    assert table["infer"]["jobs"] == 2 and table["infer"]["max_overhead_s"] == 4.0
    assert table["infer"]["median_overhead_s"] == pytest.approx((4.0 + 1.3) / 2)
    assert table["infer"]["verdict"] == "over 3 s"
    assert table["deploy"]["median_work_s"] == 5.5 and table["deploy"]["verdict"] == "over 3 s"
    assert table["infer"]["median_cpu_s"] == 1.0
    # mutate: only the job whose manifest records `mutate_s` has work; the wall median covers both jobs
    assert table["mutate"]["median_wall_s"] == 5.0 and table["mutate"]["median_work_s"] == 5.5
    assert table["mutate"]["median_overhead_s"] == 0.5 and table["mutate"]["verdict"] == "ok"


LOG = """\
[Mon Nov 23 19:36:25 2026]
localrule export:
    output: results/tiny/export/model.onnx
    jobid: 3
    resources: tmpdir=/tmp

[Mon Nov 23 19:36:25 2026]
localrule photos:
    jobid: 5

[Mon Nov 23 19:36:28 2026]
Finished jobid: 5 (Rule: photos)
1 of 3 steps (33%) done

[Mon Nov 23 19:36:44 2026]
Finished jobid: 3 (Rule: export)
"""


def test_log_jobs_pair_start_and_finish_stamps():
    jobs = {j["rule"]: j for j in po.log_jobs(LOG)}
    assert jobs["photos"]["wall_s"] == 3.0 and jobs["export"]["wall_s"] == 19.0
    assert jobs["export"]["key"] == "jobid 3" and jobs["export"]["wall_source"] == "log"
    assert po.log_jobs(LOG.split("[Mon Nov 23 19:36:44 2026]")[0])[0]["rule"] == "photos"  # export never finished


def test_plan_job_count_reads_the_total_row():
    stats = "Job stats:\njob        count\n-------  -------\ninfer       1932\nall            1\ntotal       3930\n"
    assert plan_time.job_count(stats) == 3930
    with pytest.raises(ValueError):
        plan_time.job_count("Building DAG of jobs...\n")
