"""Operator registry, site selection and the per-site record shared by every mutation level.

Kept free of TVM imports: the Snakefile asks for operator metadata at planning time, long before any
job loads a compiler, and a 2-second `import tvm` per planning call would dominate a dry run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
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

# Keys of a catalog entry that describe it rather than parameterise the operator, with their JSON schema.
_RANGE = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2, "maxItems": 2}
META_SCHEMA: dict[str, Any] = {
    "operator": {"type": "string"},
    # "all"; "each" (one mutant per candidate site); [[start, end], ...]; {sample: N, seed: S} (N sites drawn)
    "sites": {"anyOf": [{"enum": ["all", "each"]}, {"type": "array", "items": _RANGE, "minItems": 1},
                        {"type": "object", "properties": {"sample": {"type": "integer", "minimum": 1},
                                                          "seed": {"type": "integer"}},
                         "required": ["sample"], "additionalProperties": False}]},
    "seed": {"type": "integer"},
    "category": {"type": "string"},
    "level": {"type": "string"},
    "description": {"type": "string"},
    "group": {"type": "string"},
}
META_KEYS = frozenset(META_SCHEMA)
# A parameter that names Relax ops: one name or a list of them
OP_NAMES = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}

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
    # JSON schema of parameters whose type the default does not tell (an op name that may also be a list)
    param_schema: ClassVar[dict[str, Any]] = {}
    # Parameters that name Relax ops, checked against TVM's op registry when the study is planned
    op_params: ClassVar[tuple[str, ...]] = ()

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

    def no_site_reason(self) -> str | None:
        """Why this operator can have no site in any model, where that is known (the manifest says it)."""
        return None

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


def _schema_of(default: Any) -> dict[str, Any]:
    """The JSON schema a parameter's default implies: a number stays a number, a list a list of its kind."""
    if isinstance(default, bool):
        return {"type": "boolean"}
    if isinstance(default, int):
        return {"type": "integer"}
    if isinstance(default, float):
        return {"type": "number"}
    if isinstance(default, str):
        return {"type": "string"}
    if isinstance(default, list | tuple):
        return {"type": "array", "items": _schema_of(default[0]) if default else {}}
    return {}


def spec_schema(cls: type[Operator]) -> dict[str, Any]:
    """The JSON schema of a catalog entry for operator `cls`: the meta keys and its declared parameters."""
    props = {**META_SCHEMA, **{k: cls.param_schema.get(k, _schema_of(v)) for k, v in cls.params.items()}}
    return {"type": "object", "properties": props, "required": ["operator"], "additionalProperties": False}


@cache
def relax_op_names() -> frozenset[str]:
    """The Relax ops TVM 0.27 registers (relax_ops.txt, checked against the installed TVM by a test), and the
    pseudo-op of the relu6 kernel pair."""
    lines = (Path(__file__).with_name("relax_ops.txt")).read_text().splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#")) | {"pattern.relu6"}


def check_spec(spec: Any) -> None:
    """Validate one catalog entry without importing TVM; raise MutationSpecError("<key>: what is wrong").

    Checks, in order: the operator exists; every key is a meta key or a declared parameter of it, of the
    declared type (jsonschema); `level:` and `category:`, where given, are the operator's; every op name is one
    TVM registers; and the operator's own value checks (`Operator.validate`) pass.
    """
    from deltamut.schemacheck import describe, error_path, first_error

    if not isinstance(spec, dict):
        raise MutationSpecError(f"(entry): expected a mapping with an `operator:`, got {spec!r}")
    name = spec.get("operator")
    if name not in OPERATORS:
        raise MutationSpecError(f"operator: unknown mutation operator {name!r}; known: {', '.join(sorted(OPERATORS))}")
    cls = OPERATORS[name]
    err = first_error(spec, spec_schema(cls))
    if err is not None:
        where = error_path(err)
        if err.validator == "additionalProperties":
            unknown = sorted(k for k in spec if k not in META_SCHEMA and k not in cls.params)
            where = unknown[0] if unknown else where
        raise MutationSpecError(f"{where}: {describe(err)} (operator {name}; its parameters: "
                                f"{', '.join(sorted(cls.params)) or 'none'})")
    if "level" in spec and spec["level"] != cls.level:
        raise MutationSpecError(f"level: {spec['level']!r} disagrees with operator {name}, whose level is "
                                f"{cls.level!r}")
    if "category" in spec and spec["category"] != cls.category_for(spec):
        raise MutationSpecError(f"category: {spec['category']!r} disagrees with operator {name}, whose category "
                                f"here is {cls.category_for(spec)!r}")
    known = relax_op_names()
    for key in cls.op_params:
        value = spec.get(key, cls.params.get(key))
        unknown = [v for v in ([value] if isinstance(value, str) else value) if v not in known]
        if unknown:
            raise MutationSpecError(f"{key}: unknown op(s) {unknown}: TVM 0.27 registers no such Relax op "
                                    f"(names look like relax.nn.conv2d, relax.add)")
    sites = spec.get("sites")
    try:  # a sweep (`each`, `sample`) is expanded into one-site mutants by the study; the operator sees those
        cls({**spec, "sites": "all"} if sites == "each" or isinstance(sites, dict) else spec)
    except MutationSpecError as exc:
        raise MutationSpecError(f"{_culprit(str(exc), spec, cls)}: {exc}") from None


def _culprit(message: str, spec: dict[str, Any], cls: type[Operator]) -> str:
    """The parameter an operator's own check complains about, for the error's key."""
    named = [k for k in cls.params if k in spec and k in message]
    return named[0] if named else "sites" if "site" in message else "(parameters)"


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
