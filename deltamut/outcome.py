"""One vocabulary for what happened to a variant, shared by infer, compare and the report.

A crash is a finding, not a pipeline failure: every stage records *where* (stage) and *how* (status,
symptom) a variant failed, so the compare stage can grade it instead of the workflow dying.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """Where a variant failed."""

    EXPORT = "export"
    COMPILE = "compile"
    MUTATE = "mutate"
    DEPLOY = "deploy"
    RUN = "run"


class Status(StrEnum):
    """The outcome of one image on one variant (or of a whole variant when it never ran)."""

    OK = "ok"
    CRASH = "crash"
    TIMEOUT = "timeout"
    NAN = "nan"
    ERROR = "error"  # a Python exception (not a signal): a deterministic failure
    EQUIVALENT = "equivalent"  # mutant structurally equal to the original or another mutant: not run
    SKIPPED = "skipped"  # never attempted because an earlier stage failed


FAILED = frozenset({Status.CRASH, Status.TIMEOUT, Status.NAN, Status.ERROR})
