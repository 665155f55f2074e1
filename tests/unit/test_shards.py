"""Sharded datasets (`dataset.shard_size`): the cut known at planning, each shard's images, and the shards of
one result read back as the unsharded file."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from deltamut import paths
from deltamut.config import ConfigError, load_study
from deltamut.data.dataset import load_dataset
from deltamut.data.stage import read_manifest
from deltamut.fsutil import write_json
from deltamut.runner.outputs import Outputs, concat_outputs, load_outputs, save_outputs
from deltamut.study import StudyError
from deltamut.study.shards import plan_shards

REPO = Path(__file__).resolve().parents[2]
TINY = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())


def _folder(root: Path, n: int, broken: tuple[int, ...] = ()) -> Path:
    """`n` small images named img00..; those at `broken` positions are not images."""
    root.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        if k in broken:
            (root / f"img{k:02d}.png").write_bytes(b"not a png")
        else:
            Image.new("RGB", (8, 8), (k * 20 % 256, 0, 0)).save(root / f"img{k:02d}.png")
    return root


def test_shards_cut_the_sorted_listing_in_runs_of_shard_size(tmp_path):
    folder = _folder(tmp_path / "im", 7)
    cut = plan_shards({"images": str(folder), "shard_size": 3})
    assert [(s.suffix, s.start, s.stop) for s in cut] == [(".shard0", 0, 3), (".shard1", 3, 6), (".shard2", 6, 7)]
    # the limit caps the files that are cut
    assert [(s.start, s.stop) for s in plan_shards({"images": str(folder), "shard_size": 3, "limit": 4})] == \
        [(0, 3), (3, 4)]
    # unsharded: one shard with the plain file names
    assert [s.suffix for s in plan_shards({"images": str(folder), "shard_size": None})] == [""]


def test_the_default_photos_are_cut_by_their_catalogue():
    from deltamut.data.photos import CATALOGUE

    cut = plan_shards({"images": "default", "shard_size": 10})
    assert len(cut) == -(-len(CATALOGUE) // 10) and cut[-1].stop == len(CATALOGUE)


def test_a_sharded_folder_that_is_missing_fails_at_planning_naming_the_key(tmp_path):
    with pytest.raises(StudyError, match=r"dataset.images: .*nowhere is not a folder"):
        plan_shards({"images": str(tmp_path / "nowhere"), "shard_size": 3})


def test_shard_size_must_be_positive():
    config = copy.deepcopy(TINY)
    config["dataset"]["shard_size"] = 0
    with pytest.raises(ConfigError, match="shard_size"):
        load_study(config, base=REPO)


def test_each_shard_reads_its_files_and_the_shards_make_the_whole(tmp_path):
    folder = _folder(tmp_path / "im", 7, broken=(4,))
    whole = load_dataset(folder)
    parts = [load_dataset(folder, window=(s.start, s.stop))
             for s in plan_shards({"images": str(folder), "shard_size": 3})]
    assert [p.ids for p in parts] == [["img00.png", "img01.png", "img02.png"], ["img03.png", "img05.png"],
                                      ["img06.png"]]
    assert sum((p.ids for p in parts), []) == whole.ids
    assert [r for p in parts for r, _ in p.skipped] == ["img04.png"]


def test_a_shard_past_the_images_is_empty_not_an_error(tmp_path):
    folder = _folder(tmp_path / "im", 2)
    assert load_dataset(folder, window=(3, 6)).ids == []
    with pytest.raises(ValueError, match="no readable image"):
        load_dataset(_folder(tmp_path / "bad", 1, broken=(0,)))  # unsharded, an empty dataset still fails


def _outputs(ids: list[str], width: int, status: str = "ok", meta: dict | None = None) -> Outputs:
    n = len(ids)
    logits = np.arange(n * width, dtype=np.float32).reshape(n, width)
    return Outputs(ids=np.array(ids), logits=logits, latency_ms=np.ones((n, 2)), status=np.array([status] * n),
                   error=np.array([""] * n), meta=meta or {}, repeat_spread=np.zeros(n),
                   rerun_spread=np.full(n, np.nan), rerun_status=np.full((n, 1), status, dtype=object))


def test_the_shards_of_a_result_read_back_as_one_file(tmp_path):
    files = []
    for k, ids in enumerate([["a", "b"], ["c"]]):
        files.append(tmp_path / f"outputs.shard{k}.npz")
        save_outputs(files[-1], _outputs(ids, 4, meta={"host": {"hostname": f"node{k + 1}"}}))
    out = load_outputs(files)
    assert out.ids.tolist() == ["a", "b", "c"] and out.logits.shape == (3, 4)
    np.testing.assert_array_equal(out.logits[2], np.arange(4, dtype=np.float32))
    assert [m["host"]["hostname"] for m in out.meta["shards"]] == ["node1", "node2"]
    assert out.rerun_status.shape == (3, 1)


def test_a_shard_that_failed_whole_pads_with_nan_and_names_its_stage():
    """A shard whose library never built carries no logits (width 0): its images are failed rows at the others'
    width, and the variant's failed stage is that shard's."""
    failed = _outputs(["c", "d"], 0, status="crash", meta={"failed_stage": "deploy"})
    out = concat_outputs([_outputs(["a", "b"], 4, meta={"failed_stage": ""}), failed])
    assert out.logits.shape == (4, 4) and np.isnan(out.logits[2:]).all() and not np.isnan(out.logits[:2]).any()
    assert out.status.tolist() == ["ok", "ok", "crash", "crash"] and out.meta["failed_stage"] == "deploy"


def test_an_empty_shard_adds_no_rows():
    """A shard past the photos this machine gathered (the default photos are cut by their catalogue) is empty."""
    out = concat_outputs([_outputs(["a", "b"], 4), _outputs([], 4)])
    assert out.ids.tolist() == ["a", "b"] and out.logits.shape == (2, 4) and out.rerun_status.shape == (2, 1)


def test_the_shards_manifests_read_as_the_datasets(tmp_path):
    for k, ids in enumerate([["a", "b"], ["c"]]):
        write_json(tmp_path / f"d{k}.json", {"ids": ids, "paths": [f"/p/{i}" for i in ids], "count": len(ids),
                                             "labelled": 1, "skipped": [], "classes": ["x"],
                                             "shard": {"start": 2 * k, "stop": 2 * k + 2}})
    merged = read_manifest([tmp_path / "d0.json", tmp_path / "d1.json"])
    assert merged["ids"] == ["a", "b", "c"] and merged["count"] == 3 and merged["labelled"] == 2
    assert merged["paths"][2] == "/p/c" and merged["classes"] == ["x"]


def test_a_sharded_study_names_a_file_per_shard(tmp_path):
    config = copy.deepcopy(TINY)
    config["dataset"] = {"images": str(_folder(tmp_path / "im", 5)), "labels": None, "shard_size": 2}
    study = load_study(config, base=REPO)
    assert study.shards == [".shard0", ".shard1", ".shard2"]
    assert study.shard_window(".shard2") == {"start": 4, "stop": 5}
    v = study.variants("tiny")["tvm/default/original/cpu"]["path"]
    assert v == [f"results/tiny/tvm/default/original/infer/cpu/outputs.shard{k}.npz" for k in range(3)]
    assert study.inputs_paths("tiny") == [f"results/tiny/data/inputs.shard{k}.npz" for k in range(3)]
    assert paths.log("infer", "model", shard=True) == "results/logs/infer/{model}{shard}.log"
    unsharded = load_study(copy.deepcopy(TINY), base=REPO)
    assert unsharded.variants("tiny")["tvm/default/original/cpu"]["path"] == \
        "results/tiny/tvm/default/original/infer/cpu/outputs.npz"
    assert unsharded.shard_window("") is None


def test_the_dry_run_plans_per_shard_jobs_and_one_compare(tmp_path):
    config = copy.deepcopy(TINY)
    config["dataset"] = {"images": str(_folder(tmp_path / "im", 5)), "labels": None, "shard_size": 2}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                           "--configfile", str(tmp_path / "study.yaml"), "-n", "--cores", "2"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = proc.stdout.split("Job stats:")[1].split("\n\n")[0]
    jobs = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}
    # 3 shards: the dataset, 3 frameworks and 2 optimisations' infer per shard; compare once
    assert (jobs["dataset"], jobs["reference"], jobs["infer"], jobs["compare"]) == (3, 9, 6, 1)
    assert "results/tiny/tvm/default/original/infer/cpu/outputs.shard2.npz" in proc.stdout
