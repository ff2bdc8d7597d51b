"""Validation of an already-loaded config dict against the workflow's JSON schema.

The workflow loads config/*.yaml and the schema and calls `validate`; nothing here
opens the config file. Errors are one line naming the offending key, with a guess
for a mistyped one."""
from __future__ import annotations

import copy
import difflib

from .io import UserError


def _fill_defaults(node: dict, schema: dict) -> None:
    for key, sub in schema.get("properties", {}).items():
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if isinstance(node.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(node[key], sub)


def _where(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def validate(config: dict, schema: dict) -> dict:
    """Return a copy of `config` with defaults filled in, or raise UserError."""
    import jsonschema

    cfg = copy.deepcopy(config) if config else {}
    _fill_defaults(cfg, schema)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(cfg),
                    key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        return cfg
    e = errors[0]
    if e.validator == "additionalProperties":
        allowed = sorted(e.schema.get("properties", {}))
        unknown = sorted(set(e.instance) - set(allowed))
        key = unknown[0]
        prefix = _where(e.absolute_path)
        full = key if prefix == "<top level>" else f"{prefix}.{key}"
        guess = difflib.get_close_matches(key, allowed, n=1)
        hint = f"; did you mean '{guess[0]}'?" if guess else f"; allowed here: {', '.join(allowed)}"
        raise UserError(f"unknown config key '{full}'{hint}")
    value = e.instance if not isinstance(e.instance, (dict, list)) else type(e.instance).__name__
    raise UserError(f"config key '{_where(e.absolute_path)}' = {value!r}: {e.message.splitlines()[0]}")
