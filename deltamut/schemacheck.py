"""One line for a JSON-schema violation, naming the key: shared by the study config and mutation specs.

jsonschema's own messages dump the whole failing instance; a user who misspelt one key needs its path, the
keys that are allowed there and the likeliest one they meant.
"""

from __future__ import annotations

import difflib
from typing import Any


def error_path(err: Any, prefix: str = "") -> str:
    """The dotted path of the failing value (`runner.repeats`), under `prefix`."""
    parts = [prefix] if prefix else []
    parts += [str(p) for p in err.absolute_path]
    return ".".join(parts) or "(top level)"


def describe(err: Any) -> str:
    """What is wrong at the error's path; a misspelt key gets the allowed keys and the likeliest one."""
    props = err.schema.get("properties") if isinstance(err.schema, dict) else None
    if err.validator == "additionalProperties" and isinstance(err.instance, dict) and isinstance(props, dict):
        unexpected = [k for k in err.instance if k not in props]
        if unexpected:
            hints = []
            for key in unexpected:
                close = difflib.get_close_matches(str(key), [str(p) for p in props], n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            return f"unknown key(s) {', '.join(hints)}; allowed: {', '.join(str(p) for p in props)}"
    return str(err.message)


def first_error(instance: Any, schema: dict[str, Any]) -> Any | None:
    """The most relevant violation of `schema` by `instance` (jsonschema's best match), or None."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    return jsonschema.exceptions.best_match(validator.iter_errors(instance))
