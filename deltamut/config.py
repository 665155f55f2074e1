"""Loading a study config: schema validation through snakemake.utils.validate, then cross-references.

Either step stops the run with one line that names the offending key, instead of a schema dump or a
traceback from deep inside a later stage.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from deltamut.study import Study, StudyError

SCHEMA = Path(__file__).resolve().parents[1] / "config" / "config.schema.yaml"


class ConfigError(ValueError):
    """The study config is invalid; the message names the key."""


def _where(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _describe(err) -> str:
    """One line for a schema violation; a misspelt key gets the allowed keys and the likeliest one."""
    where = _where(err.absolute_path)
    props = err.schema.get("properties") if isinstance(err.schema, dict) else None
    if err.validator == "additionalProperties" and isinstance(err.instance, dict) and isinstance(props, dict):
        unexpected = [k for k in err.instance if k not in props]
        if unexpected:
            hints = []
            for key in unexpected:
                close = difflib.get_close_matches(str(key), [str(p) for p in props], n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            return (f"config key {where}: unknown key(s) {', '.join(hints)}; "
                    f"allowed: {', '.join(str(p) for p in props)}")
    return f"config key {where}: {err.message}"


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
