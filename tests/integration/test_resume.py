"""Nothing lost: a study killed with SIGKILL mid-way finishes when run again, redoing no completed job.

The study is tests/configs/tiny.yaml with its model swapped for the small ONNX classifier of
tests/conftest.py (every stage runs, but compiles take seconds instead of minutes). Snakemake runs with
the repository's local profile, whose `rerun-incomplete: true` lets a rerun redo the jobs the kill cut short.
The run is killed twice, with the workflow in different states: right after the first compile output
appears, and right after the first infer output appears. A killed Snakemake leaves its directory lock
behind, so before each rerun the test checks that a plain rerun refuses with a message that names the cure,
and then runs `snakemake --unlock` as that message says. Every process of the run goes down, as when the
machine is lost: the Snakemake process group and the isolated workers, which run in sessions of their own.

Which jobs had completed is read from Snakemake's own report of the killed run ("Finished jobid: N"), so
the test does not trust the code it checks: the outputs of those jobs must keep their bytes and mtimes,
and no later run may schedule them again. At the end every result file must parse.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
RUN_TIMEOUT_S = 360


def _study(workdir: Path, small_onnx: Path) -> Path:
    config = copy.deepcopy(yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text()))
    shutil.copy(small_onnx, workdir / "small.onnx")
    config["models"] = {"tiny": {"source": "onnx", "path": "small.onnx"}}
    config["frameworks"] = ["onnxruntime"]  # an ONNX-file model has no PyTorch reference
    config["compare"] = {"reference": "onnxruntime"}
    config["dataset"]["limit"] = 2
    path = workdir / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _command(workdir: Path, configfile: Path, *args: str) -> list[str]:
    return [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--profile", str(REPO / "profiles/local"),
            "--configfile", str(configfile), "-d", str(workdir), "--cores", "2", *args]


def _start(workdir: Path, configfile: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(_command(workdir, configfile), stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
                                start_new_session=True)


def _unlock(workdir: Path, configfile: Path, expect_refusal: bool) -> None:
    """A killed Snakemake leaves its lock behind; a plain rerun refuses, saying how to go on (--unlock)."""
    if expect_refusal:
        proc = subprocess.run(_command(workdir, configfile), capture_output=True, text=True, cwd=workdir,
                              timeout=RUN_TIMEOUT_S)
        assert proc.returncode != 0 and "Directory cannot be locked" in proc.stderr, proc.stderr[-2000:]
        assert "--unlock" in proc.stderr
    proc = subprocess.run(_command(workdir, configfile, "--unlock"), capture_output=True, text=True, cwd=workdir,
                          timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _processes_in(workdir: Path) -> list[int]:
    """Processes working in `workdir`: Snakemake, its jobs and their isolated workers (all chdir there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == str(workdir) or cwd.startswith(f"{workdir}/"):
            found.append(int(entry.name))
    return found


def _kill_when(proc: subprocess.Popen, workdir: Path, pattern: str, log: Path) -> list[str]:
    """SIGKILL the whole run as soon as a file matching `pattern` exists and a job is in flight (the run's
    log shows a job started and not finished: jobs are quick, and a kill between two jobs would cut
    nothing short); return the command lines of the processes that outlived the kill of Snakemake's
    process group (workers in sessions of their own)."""
    deadline = time.monotonic() + RUN_TIMEOUT_S

    def in_flight() -> bool:
        started, finished = _jobs(log)
        return bool(set(started) - finished)

    while not (list(workdir.glob(pattern)) and in_flight()):
        assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before {pattern} appeared mid-job"
        assert time.monotonic() < deadline, f"{pattern} did not appear within {RUN_TIMEOUT_S} s"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.2)
    survivors = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[-120:]
                 for pid in _processes_in(workdir)]
    for _ in range(50):
        left = _processes_in(workdir)
        if not left:
            break
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    assert not _processes_in(workdir)
    return survivors


def _jobs(log: Path) -> tuple[dict[int, list[str]], set[int]]:
    """The jobs a run started (jobid -> output files) and the ids of those it reported finished."""
    text = log.read_text()
    started: dict[int, list[str]] = {}
    for block in re.finditer(r"^(?:local)?(?:rule|checkpoint) \w+:\n((?:[ \t]+.*\n?)*)", text, flags=re.M):
        fields = dict(re.findall(r"^\s+(\w+): (.*)$", block.group(1), flags=re.M))
        if "jobid" in fields:
            started[int(fields["jobid"])] = [p.strip() for p in fields.get("output", "").split(",") if p.strip()]
    finished = {int(j) for j in re.findall(r"^Finished jobid: (\d+)", text, flags=re.M)}
    return started, finished


def _fingerprint(workdir: Path, outputs: set[str]) -> dict[str, tuple[int, str]]:
    """mtime and content hash of every file of `outputs` (directory outputs file by file)."""
    prints = {}
    for out in outputs:
        path = workdir / out
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            prints[str(f.relative_to(workdir))] = (f.stat().st_mtime_ns, hashlib.sha256(f.read_bytes()).hexdigest())
    return prints


def _check_readable(path: Path) -> None:
    """Open a result file with the reader its format needs; a torn or half-written file fails here."""
    suffix = path.suffix
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                z[key]
    elif suffix == ".json":
        json.loads(path.read_text())
    elif suffix == ".parquet":
        pd.read_parquet(path)
    elif suffix == ".csv":
        pd.read_csv(path)
    elif suffix == ".onnx":
        import onnx

        onnx.checker.check_model(onnx.load(str(path)))
    elif suffix == ".so":
        assert path.read_bytes()[:4] == b"\x7fELF", path
    elif suffix == ".png":
        from PIL import Image

        with Image.open(path) as im:
            im.load()


def test_killed_run_resumes_without_redoing_or_corrupting(tmp_path, small_onnx):
    workdir = tmp_path / "study"
    workdir.mkdir()
    configfile = _study(workdir, small_onnx)
    completed: set[str] = set()  # outputs of jobs some run reported finished
    prints: dict[str, tuple[int, str]] = {}
    survivors = []
    timings = []

    for run, kill_at in enumerate(["results/tiny/tvm/*/graph.json",
                                   "results/tiny/tvm/*/original/infer/cpu/outputs.npz", None]):
        if run:
            _unlock(workdir, configfile, expect_refusal=run == 1)
        log = tmp_path / f"run{run}.log"
        started_at = time.monotonic()
        proc = _start(workdir, configfile, log)
        if kill_at is None:
            assert proc.wait(timeout=RUN_TIMEOUT_S) == 0, log.read_text()[-4000:]
        else:
            survivors.append(_kill_when(proc, workdir, kill_at, log))
        timings.append(round(time.monotonic() - started_at, 1))
        started, finished = _jobs(log)
        assert started, log.read_text()
        # No job whose outputs an earlier run completed is run again ...
        redone = {o for outs in started.values() for o in outs} & completed
        assert not redone, f"run {run} redid completed jobs: {sorted(redone)}"
        # ... and their files are untouched, byte for byte and by mtime.
        assert _fingerprint(workdir, completed) == prints
        completed |= {o for j in finished for o in started[j]}
        prints = _fingerprint(workdir, completed)
        if kill_at is not None:
            # the kill came mid-way: some jobs had finished and some had not
            assert finished and set(started) - finished, log.read_text()[-4000:]

    print(f"\nrun wall times (s): {timings}; processes outliving the process-group kill: {survivors}")
    results = workdir / "results"
    final = ["results/tiny/compare/summary.md", "results/compare/per_pair.csv", "results/summary.md"]
    assert all((workdir / f).is_file() for f in final)
    per_pair = pd.read_csv(workdir / "results/tiny/compare/per_pair.csv")
    assert len(per_pair) > 0 and not per_pair["verdict"].isin(["crash", "timeout", "error"]).any()

    files = [p for p in results.rglob("*") if p.is_file()]
    for path in files:
        if not path.name.startswith("."):
            _check_readable(path)
    # A write the kill cut short may leave its temporary file (deltamut.fsutil.atomic_path names it
    # `.<stem>.<random><suffix>` beside the real one); it must never stand in for an output, which is
    # complete: the real file beside it exists and parsed above.
    for temp in (p for p in files if p.name.startswith(".")):
        stem = temp.name[1:].split(".")[0]
        assert any(q.stem == stem and q.suffix == temp.suffix for q in temp.parent.iterdir() if q != temp), temp
