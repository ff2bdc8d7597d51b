"""How settings are spelled on a command line: one flag per name, one text per value.

`flag("t_min")` is `--t-min`; `render(True)` is `true`, a list is its items, a dict its
JSON. Options (`diffdistill.options`), schedules and sampling recipes render through
these two functions, so a setting has one spelling wherever it travels as a flag.
"""
from __future__ import annotations

import json
import shlex


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def render(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return " ".join(render(v) for v in value)
    if isinstance(value, dict):
        return shlex.quote(json.dumps(value, separators=(",", ":")))
    return shlex.quote(str(value))


def flags(values: dict) -> str:
    """`--name value` for each value that is not None, in the order given."""
    return " ".join(f"{flag(k)} {render(v)}" for k, v in values.items() if v is not None)
