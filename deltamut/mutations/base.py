"""Operator registry, site selection and the per-site record shared by every mutation level.

Kept free of TVM imports: the Snakefile asks for operator metadata at planning time, long before any
job loads a compiler, and a 2-second `import tvm` per planning call would dominate a dry run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

CATEGORIES = (
    "Node Input/Output Modification",
    "Arithmetic Node Replacement",
    "Layer Node Replacement",
    "Arithmetic Types",
    "Kernel Variables & Stores",
    "Conditional Statement Operations",
    "Model-level",
    "Input-level",
    "Original",
)
LEVELS = ("graph", "kernel", "model", "input", "none")

# Keys of a catalog entry that describe it rather than parameterise the operator.
META_KEYS = frozenset({"operator", "sites", "seed", "category", "level", "description", "group"})

_TEXT_LIMIT = 400


class MutationSpecError(ValueError):
    """A catalog entry that names an unknown operator or carries bad parameters."""


def short(text: object, limit: int = _TEXT_LIMIT) -> str:
    """One-line, bounded text for a manifest: TIR expressions of fused kernels run to kilobytes."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


class SiteSelector:
    """Which candidate occurrences a spec selects.

    Occurrences are numbered 0.. in the engine's deterministic visiting order; ranges are inclusive so
    that `[[0, 0]]` means "the first site only", as in MutateNN's configuration files.
    """

    def __init__(self, sites: Any = "all") -> None:
        self.ranges: list[tuple[int, int]] | None
        if sites is None or sites == "all":
            self.ranges = None
            return
        if not isinstance(sites, list | tuple) or not sites:
            raise MutationSpecError(f"sites must be 'all' or a non-empty list of [start, end], got {sites!r}")
        ranges = []
        for r in sites:
            if (
                not isinstance(r, list | tuple)
                or len(r) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in r)
                or r[0] < 0
                or r[1] < r[0]
            ):
                raise MutationSpecError(f"bad site range {r!r}: need [start, end] with 0 <= start <= end")
            ranges.append((int(r[0]), int(r[1])))
        self.ranges = ranges

    def __call__(self, index: int) -> bool:
        return self.ranges is None or any(a <= index <= b for a, b in self.ranges)

    def describe(self) -> str | list[list[int]]:
        return "all" if self.ranges is None else [list(r) for r in self.ranges]


@dataclass
class Report:
    """What one operator did to a module: the raw material of the manifest."""

    sites: list[dict[str, Any]] = field(default_factory=list)
    candidates: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def take_site(self, selected: Callable[[int], bool]) -> int | None:
        """Count one more candidate site, in visiting order; its index if the spec's `sites` select it.

        Every operator counts candidates through here, so coverage (`candidates`) and site numbering
        cannot drift apart.
        """
        site = self.candidates
        self.candidates += 1
        return site if selected(site) else None

    def add(self, function: str, node: int, what: str, before: object, after: object, **extra: Any) -> None:
        key = "kind" if extra.pop("kernel", False) else "op"
        site = {"function": function, "node": node, key: what, "before": short(before), "after": short(after)}
        site.update(extra)
        self.sites.append(site)


class Operator:
    """A mutation operator: metadata as class attributes, behaviour in `apply`.

    Subclasses set `name`, `category`, `level`, `description` and `params` (the defaults; a spec may
    override any of them and nothing else). `apply` receives the module of its level: the graph-level
    Relax module for "graph"/"model", the lowered module for "kernel".
    """

    name: ClassVar[str]
    category: ClassVar[str]
    level: ClassVar[str]
    description: ClassVar[str]
    params: ClassVar[dict[str, Any]] = {}

    def __init__(self, spec: dict[str, Any]) -> None:
        unknown = set(spec) - META_KEYS - set(self.params)
        if unknown:
            raise MutationSpecError(
                f"operator {self.name!r} has no parameter(s) {sorted(unknown)}; known: {sorted(self.params)}"
            )
        self.spec = dict(spec)
        self.p: dict[str, Any] = {**self.params, **{k: v for k, v in spec.items() if k in self.params}}
        self.sites = SiteSelector(spec.get("sites", "all"))
        self.seed = int(spec.get("seed", 0))
        self.validate()

    def validate(self) -> None:
        """Reject bad parameter values before any IR is touched."""

    @classmethod
    def category_for(cls, spec: dict[str, Any]) -> str:
        """The category of one configured use: replace_op's depends on what it replaces."""
        return cls.category

    def apply(self, module: Any) -> tuple[Any, Report]:  # pragma: no cover - abstract
        raise NotImplementedError


OPERATORS: dict[str, type[Operator]] = {}


def register(cls: type[Operator]) -> type[Operator]:
    if cls.name in OPERATORS:
        raise RuntimeError(f"operator {cls.name!r} registered twice")
    if cls.category not in CATEGORIES or cls.level not in LEVELS:
        raise RuntimeError(f"operator {cls.name!r}: bad category/level {cls.category!r}/{cls.level!r}")
    OPERATORS[cls.name] = cls
    return cls


def get_operator(spec: dict[str, Any]) -> Operator:
    name = spec.get("operator")
    if name not in OPERATORS:
        raise MutationSpecError(f"unknown mutation operator {name!r}; known: {sorted(OPERATORS)}")
    return OPERATORS[name](spec)


def operator_info(name: str) -> dict[str, Any]:
    """Metadata of a registered operator, without importing TVM."""
    if name not in OPERATORS:
        raise MutationSpecError(f"unknown mutation operator {name!r}; known: {sorted(OPERATORS)}")
    cls = OPERATORS[name]
    return {
        "name": cls.name,
        "category": cls.category,
        "level": cls.level,
        "description": cls.description,
        "params": dict(cls.params),
    }


def spec_info(spec: dict[str, Any]) -> dict[str, Any]:
    """operator_info for one catalog entry: category resolved for that entry's parameters."""
    info = operator_info(spec.get("operator", ""))
    info["category"] = spec.get("category") or OPERATORS[info["name"]].category_for(spec)
    return info
