"""Every result path is defined once (deltamut/paths.py): rename a folder there and the workflow follows.

A copy of the repository gets `TVM_DIR = "compiled"` instead of "tvm"; the tiny study then plans and runs, and
every TVM artifact, from the imported graph to the infer outputs and the tables that read them, lives under
the new name, with none left under the old one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
IGNORED = shutil.ignore_patterns(".git", ".venv", "results", ".snakemake", ".cache", "resources", "__pycache__",
                                 "*.egg-info", ".pytest_cache", ".ruff_cache", "bench")


def test_renaming_a_folder_in_the_paths_module_moves_every_artifact(tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(REPO, copy, ignore=IGNORED)
    module = copy / "deltamut" / "paths.py"
    text = module.read_text()
    assert '"data", "export", "reference", "tvm"' in text
    module.write_text(text.replace('"data", "export", "reference", "tvm"', '"data", "export", "reference", "compiled"'))
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(copy)}  # every job's process imports the copy's deltamut
    cmd = [sys.executable, "-m", "snakemake", "-s", str(copy / "Snakefile"), "-d", str(work), "--configfile",
           str(copy / "tests" / "configs" / "tiny.yaml"), "--cores", "2"]
    plan = subprocess.run([*cmd, "-n"], capture_output=True, text=True, env=env, timeout=300)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "results/tiny/compiled/default/original/infer/cpu/outputs.npz" in plan.stdout
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    results = work / "results" / "tiny"
    assert (results / "compiled" / "imported.json").is_file()
    assert (results / "compiled" / "default" / "original" / "infer" / "cpu" / "outputs.npz").is_file()
    assert not (results / "tvm").exists()
    pairs = pd.read_csv(results / "compare" / "per_pair.csv")
    assert (pairs.loc[pairs.kind == "compiler", "n_ok_a"] == 3).all()
