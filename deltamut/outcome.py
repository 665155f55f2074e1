"""One vocabulary for what happened to a variant, shared by every stage, compare and the report.

A crash is a finding, not a pipeline failure: every stage records *where* (`Stage`) and *how* (`Status` of
each image or of a whole variant, and for an isolated call its `Symptom`) a variant failed, so the compare
stage can grade it instead of the workflow dying. These enums are the only spellings of outcomes in the
code: `tests/unit/test_outcome.py` fails on a status written as a string literal anywhere else.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """Where a variant failed."""

    EXPORT = "export"
    COMPILE = "compile"  # import and graph passes
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


class Symptom(StrEnum):
    """How an isolated call (deltamut.isolation) ended when it did not return."""

    EXCEPTION = "exception"  # it raised: Status.ERROR
    SIGNAL = "signal"  # killed by a signal (a segfault): Status.CRASH
    EXIT = "exit"  # exited without a result: Status.CRASH
    TIMEOUT = "timeout"  # ran past its limit and was killed: Status.TIMEOUT

    @property
    def status(self) -> Status:
        return {Symptom.EXCEPTION: Status.ERROR, Symptom.TIMEOUT: Status.TIMEOUT}.get(self, Status.CRASH)


class ProbeStatus(StrEnum):
    """The outcome of a localisation probe or bisection (deltamut.localise) that did not fail; one that failed
    has its Status (crash, timeout, error), never a finding about the model."""

    OK = Status.OK.value
    NOT_PROBED = "not_probed"  # nothing to trace: the mutant has no library of its own, or no image ran
    NOT_BISECTED = "not_bisected"  # the build flips no label: a label predicate has nothing to find


FAILED = frozenset({Status.CRASH, Status.TIMEOUT, Status.NAN, Status.ERROR})
