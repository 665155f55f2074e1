"""Duplicate mutants: found from manifests, the representative does not depend on job order."""

from __future__ import annotations

import json

from deltamut.mutations.equivalence import duplicates
from deltamut.mutations.stage import mutant_index_stage


def manifest(digest: str | None, status: str = "ok", operator: str = "replace_op", meaning: str | None = None) -> dict:
    return {"structural_hash": digest, "semantic_hash": meaning, "status": status, "operator": operator}


def test_twins_point_at_the_smallest_name_whatever_the_order():
    ms = {"mnn09": manifest("aa"), "mnn02": manifest("aa"), "mnn05": manifest("bb"), "mnn07": manifest("aa")}
    assert duplicates(ms) == {"mnn07": ("mnn02", "ir"), "mnn09": ("mnn02", "ir")}
    assert duplicates(dict(reversed(list(ms.items())))) == duplicates(ms)


def test_mutants_equal_after_simplification_are_twins_by_semantics():
    ms = {"mnn18": manifest("aa", meaning="s1"), "mnn19": manifest("bb", meaning="s1"),
          "mnn20": manifest("cc", meaning="s2")}
    assert duplicates(ms) == {"mnn19": ("mnn18", "semantics")}


def test_failed_equivalent_and_identity_modules_are_never_twins():
    ms = {"a": manifest("aa", status="error"), "b": manifest("aa"), "c": manifest("aa", status="equivalent"),
          "original": manifest("aa", operator="identity"), "d": manifest(None), "e": manifest(None)}
    assert duplicates(ms) == {}


def test_index_file(tmp_path):
    manifests = []
    for name, digest in {"x": "11", "y": "11", "z": "22"}.items():  # results/.../{mutant}/manifest.json
        (tmp_path / name).mkdir()
        manifests.append(tmp_path / name / "manifest.json")
        manifests[-1].write_text(json.dumps(manifest(digest)))
    mutant_index_stage(inputs={"manifests": manifests}, outputs={"index": tmp_path / "mutants.json"})
    index = json.loads((tmp_path / "mutants.json").read_text())
    assert {k: v["duplicate_of"] for k, v in index.items()} == {"x": None, "y": "x", "z": None}
    assert index["y"]["duplicate_by"] == "ir"
