"""Loading a study config: schema validation through snakemake.utils.validate, then cross-references.

Either step stops the run with one line that names the offending key, instead of a schema dump or a
traceback from deep inside a later stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deltamut.defaults import SCHEMA
from deltamut.schemacheck import describe, error_path
from deltamut.study import Study, StudyError


class ConfigError(ValueError):
    """The study config is invalid; the message names the key."""


def _describe(err) -> str:
    return f"config key {error_path(err)}: {describe(err)}"


def validate_config(config: dict[str, Any], schema: str | Path = SCHEMA) -> dict[str, Any]:
    """Validate against the JSON schema and fill defaults in place."""
    import jsonschema
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    if not isinstance(config, dict):
        raise ConfigError(f"config: expected a mapping of settings, got {type(config).__name__}")
    try:
        validate(config, str(schema), set_default=True)
    except WorkflowError as exc:
        err = exc.__context__
        if isinstance(err, jsonschema.ValidationError):
            raise ConfigError(_describe(jsonschema.exceptions.best_match([err]))) from None
        raise ConfigError(f"config: {exc}") from None
    return config


def load_study(config: dict[str, Any], base: str | Path = ".", schema: str | Path = SCHEMA) -> Study:
    """Validate `config` and expand it into a Study; raise ConfigError naming the culprit."""
    validate_config(config, schema)
    try:
        return Study.from_config(config, base=base)
    except StudyError as exc:
        raise ConfigError(str(exc)) from None
    except ValueError as exc:  # e.g. an unknown mutation operator in the catalog
        raise ConfigError(f"config: {exc}") from None
