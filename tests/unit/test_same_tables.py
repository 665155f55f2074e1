"""tools/same_tables.py, the check that a refactoring left a study's findings alone: it must catch a changed
verdict or number, and let the numbers of a row measured as nondeterministic move without a false alarm."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "same_tables.py"
KEYS = ["model", "opt", "device", "mutant"]


@pytest.fixture(scope="module")
def same_tables():
    spec = importlib.util.spec_from_file_location("same_tables", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _matrix(changes: dict | None = None) -> pd.DataFrame:
    rows = pd.DataFrame({"model": ["m", "m"], "opt": ["extended"] * 2, "device": ["cpu"] * 2,
                         "mutant": ["steady", "jittery"], "status": ["killed", "killed"],
                         "top1_changed_pct": [10.0, 41.3], "nondeterministic_images": [0, 46],
                         "latency_ratio": [1.0, 1.2]})
    for (mutant, column), value in (changes or {}).items():
        rows.loc[rows.mutant == mutant, column] = value
    return rows


def _diff(same_tables, after: pd.DataFrame):
    return same_tables.compare_tables(_matrix(), after, KEYS, 1e-6)


def test_identical_tables_have_no_difference(same_tables):
    assert _diff(same_tables, _matrix()) == ([], [])


def test_a_changed_status_is_a_difference(same_tables):
    diffs, _ = _diff(same_tables, _matrix({("steady", "status"): "survived"}))
    assert len(diffs) == 1 and "status" in diffs[0]


def test_a_changed_number_of_a_deterministic_row_is_a_difference(same_tables):
    diffs, jitter = _diff(same_tables, _matrix({("steady", "top1_changed_pct"): 12.0}))
    assert len(diffs) == 1 and "top1_changed_pct" in diffs[0] and jitter == []


def test_a_nondeterministic_row_may_move_its_numbers_but_not_its_status(same_tables):
    diffs, jitter = _diff(same_tables, _matrix({("jittery", "top1_changed_pct"): 43.5}))
    assert diffs == [] and len(jitter) == 1
    diffs, _ = _diff(same_tables, _matrix({("jittery", "status"): "survived"}))
    assert len(diffs) == 1 and "status" in diffs[0]


def test_timings_are_not_compared(same_tables):
    assert _diff(same_tables, _matrix({("steady", "latency_ratio"): 2.0})) == ([], [])


def test_an_added_column_is_listed_not_counted(same_tables):
    after = _matrix().assign(note="")
    diffs, _ = _diff(same_tables, after)
    assert diffs == ["  columns on one side only (not compared): note"]
