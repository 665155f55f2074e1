"""Outcomes have one spelling each: the enums. A status, stage, symptom, verdict or mutant status written as a
string literal (`status == "crahs"`) would fail silently; written through its enum it fails at import."""

from __future__ import annotations

import ast
from pathlib import Path

from deltamut.compare.killmatrix import MutantStatus
from deltamut.compare.verdicts import Verdict
from deltamut.outcome import Stage, Status, Symptom

ROOT = Path(__file__).resolve().parents[2]
OUTCOMES = {v.value for enum in (Status, Stage, Symptom, Verdict, MutantStatus) for v in enum}
KEYS = {"status", "stage", "symptom", "failed_stage", "verdict"}


def _literals(node: ast.AST) -> list[str]:
    """Outcome-like string constants in `node`, or in a tuple, list or set of them."""
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return [n.value for n in items if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in OUTCOMES]


def _is_event(node: ast.AST) -> bool:
    """`ev["event"]`: the worker protocol's event names (ready, start, exit...), not outcomes."""
    return isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value == "event"


def _spellings(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    enums = {id(n) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for n in ast.walk(c)}  # enum bodies
    for node in ast.walk(tree):
        if id(node) in enums:
            continue
        if isinstance(node, ast.Compare) and not any(_is_event(n) for n in [node.left, *node.comparators]):
            found += [(node.lineno, v) for n in [node.left, *node.comparators] for v in _literals(n)]
        elif isinstance(node, ast.keyword) and node.arg in KEYS:
            found += [(node.value.lineno, v) for v in _literals(node.value)]
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in KEYS:
                    found += [(value.lineno, v) for v in _literals(value)]
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in KEYS for t in node.targets):
            found += [(node.lineno, v) for v in _literals(node.value)]
    return found


def test_no_outcome_is_spelt_as_a_string_literal():
    sources = sorted([*(ROOT / "deltamut").rglob("*.py"), *(ROOT / "scripts").glob("*.py")])
    spelt = [f"{path.relative_to(ROOT)}:{line}: {value!r}" for path in sources
             for line, value in _spellings(ast.parse(path.read_text()))]
    assert not spelt, "use deltamut.outcome's (or the verdict) enums instead:\n" + "\n".join(spelt)


def test_the_checker_finds_a_misspelt_status():
    code = 'if out.status == "crash":\n    pass\nrecord = {"status": "timeout"}\nf(stage="deploy")\n'
    assert [v for _, v in _spellings(ast.parse(code))] == ["crash", "timeout", "deploy"]
    assert _spellings(ast.parse('if ev["event"] == "exit":\n    pass\n')) == []


def test_symptoms_map_to_statuses():
    assert {s: s.status for s in Symptom} == {Symptom.EXCEPTION: Status.ERROR, Symptom.SIGNAL: Status.CRASH,
                                             Symptom.EXIT: Status.CRASH, Symptom.TIMEOUT: Status.TIMEOUT}
