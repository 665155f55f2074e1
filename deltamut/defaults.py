"""The config's defaults, read from its schema (config/config.schema.yaml): the one place they are written.

The workflow validates every config against the schema, which fills in what a study leaves out. Code that runs
outside the workflow (tests, benchmarks, a user's script) asks here instead of repeating a number.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

SCHEMA = Path(__file__).resolve().parents[1] / "config" / "config.schema.yaml"


@cache
def schema() -> dict[str, Any]:
    """The study schema, parsed once (config/config.schema.yaml is the one definition of every default)."""
    return yaml.safe_load(SCHEMA.read_text())


def defaults(section: str) -> dict[str, Any]:
    """The defaults of one section of the config (`runner`, `compare`, `export`, `timeouts`), or of the entries
    of a mapping section (`optimisations.*`)."""
    node: dict[str, Any] = {"properties": schema()["properties"]}
    for part in section.split("."):
        node = node["additionalProperties"] if part == "*" else node["properties"][part]
    return {k: v["default"] for k, v in node.get("properties", {}).items() if "default" in v}


def section_default(section: str) -> Any:
    """What a top-level section is when a study leaves it out (`optimisations`: basic, default, extended;
    `targets`, `devices`: the host CPU)."""
    return schema()["properties"][section]["default"]


def schema_field(section: str, name: str) -> Any:
    """A settings dataclass field whose default is the schema's (`defaults(section)[name]`), read when an
    instance is made: the schema stays the one place a default is written."""
    import dataclasses

    return dataclasses.field(default_factory=lambda: defaults(section)[name])
