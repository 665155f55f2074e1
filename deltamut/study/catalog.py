"""The study's mutations: the catalog file and the config's `mutations:`, checked when the study is planned.

Every entry is checked against its operator's declared parameters before any job runs
(`deltamut.mutations.check_spec`), so a misspelt key stops planning with one line naming it instead of
becoming a mutant that "crashes". A sweep entry (`sites: each` or `{sample: N}`) stands for one mutant per
chosen site, `<entry>.site<k>`, whose spec this module derives from the name (`mutations.sweep`).
Imports neither TVM nor torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deltamut.mutations import operator_info, spec_info
from deltamut.mutations.base import MutationSpecError, check_spec
from deltamut.mutations.sweep import is_sweep, site_spec, split_site_mutant
from deltamut.study.refs import ORIGINAL

IDENTITY = {"operator": "identity"}


class StudyError(ValueError):
    """The config is well-formed but refers to something that does not exist."""


def _checked(entries: Any, where: str) -> dict[str, dict[str, Any]]:
    """Entries (name -> spec) checked against their operators; the error names `<where><name>.<key>`."""
    if not isinstance(entries, dict):
        raise StudyError(f"{where.rstrip(': .')}: must map mutation names to mappings with an `operator:`")
    for name, spec in entries.items():
        if split_site_mutant(str(name)):
            raise StudyError(f"{where}{name}: names ending in .site<k> are reserved for the mutants of a sweep")
        try:
            check_spec(spec)
        except MutationSpecError as exc:
            raise StudyError(f"{where}{name}.{exc}") from None
        level = operator_info(spec["operator"])["level"]
        if is_sweep(spec) and level not in ("graph", "model", "kernel"):
            raise StudyError(f"{where}{name}.sites: a {level}-level operator has no sites to sweep; give "
                             "`sites: each` or `sites: {sample: N}` to graph, model or kernel ones")
        if level == "none" and name != ORIGINAL:
            raise StudyError(f"{where}{name}.operator: identity is the unmutated original, not a mutant")
    return entries


def _read_catalog(path: Path) -> Any:
    if not path.is_file():
        raise StudyError(f"mutation_catalog: file {path} not found")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise StudyError(f"mutation_catalog: {path} is not valid YAML: {exc}") from None


@dataclass
class Catalog:
    """Mutation name -> spec, for the catalog file merged with the config's `mutations:` (these win)."""

    entries: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: dict[str, Any], base: str | Path = ".") -> Catalog:
        entries: dict[str, dict[str, Any]] = {}
        if config.get("mutation_catalog"):
            path = Path(base) / config["mutation_catalog"]
            entries.update(_checked(_read_catalog(path), f"mutation_catalog {path}: "))
        entries.update(_checked(config.get("mutations") or {}, "mutations."))
        if ORIGINAL in entries:
            if entries[ORIGINAL].get("operator") != "identity":
                raise StudyError(f"mutations: {ORIGINAL!r} is reserved for the unmutated module")
            del entries[ORIGINAL]
        return cls(entries)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __iter__(self):
        return iter(self.entries)

    def is_sweep(self, name: str) -> bool:
        return name in self.entries and is_sweep(self.entries[name])

    def spec(self, mutant: str) -> dict[str, Any]:
        """The spec a mutant is built from: the original's identity, an entry's, or a sweep's one-site spec."""
        if mutant == ORIGINAL:
            return IDENTITY
        if mutant in self.entries:
            return self.entries[mutant]
        split = split_site_mutant(mutant)
        if split is not None and self.is_sweep(split[0]):
            return site_spec(self.entries[split[0]], split[1])
        raise StudyError(f"unknown mutation {mutant!r}")

    def level(self, mutant: str) -> str:
        """graph, kernel, model, input (none for the original): always the operator's, never a spec's own
        `level:` (which `check_spec` holds to the operator's)."""
        return operator_info(self.spec(mutant)["operator"])["level"]

    def info(self, mutant: str) -> dict[str, str]:
        """Operator, category and level of a mutant: the kill matrix's coordinates."""
        if mutant == ORIGINAL:
            return {}
        info = spec_info(self.spec(mutant))
        return {"operator": info["name"], "category": info["category"], "level": info["level"]}
