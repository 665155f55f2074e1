#!/usr/bin/env bash
# Every benchmark of bench/, one after the other, each writing its CSV under OUT (default bench/out/).
# Run it on a quiet machine: the latency figures are only comparable within one run.
#   bash bench/run_all.sh [OUT]                         # latency, overhead, planning, submissions
#   DELTAMUT_BENCH_STUDY=1 bash bench/run_all.sh [OUT]  # and the default study's wall time
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "${1:-$repo/bench/out}")"
py="${PYTHON:-$repo/.venv/bin/python}"
mkdir -p "$out"
cd "$repo"
echo "== load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/load.txt"
"$py" bench/cpu_latency.py --models efficientnet_lite0,resnet50 --out "$out/cpu_latency.csv"
"$py" bench/pipeline_overhead.py --out "$out/pipeline_overhead.csv"
"$py" bench/plan_time.py --out "$out/plan_time.csv"
"$py" bench/submissions.py --out "$out/submissions.csv"
# the default study from scratch (30 minutes or more on 2 cores): only when asked
if [[ "${DELTAMUT_BENCH_STUDY:-0}" == 1 ]]; then
  "$py" bench/study_time.py --out "$out/study_time.csv"
fi
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"
echo "written: $(ls "$out" | tr '\n' ' ')"
