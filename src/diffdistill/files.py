"""JSON, text and torch files, written atomically (`diffdistill.atomic`) and read back
with one error line naming the file."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .atomic import atomic_path
from .errors import UserError


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def read_json(path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not a JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e})") from None


def read_json_object(path, required=(), what: str = "result file") -> dict:
    """A JSON file holding an object with the `required` keys, else one line naming it."""
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a {what} (a JSON object), got a JSON {type(obj).__name__}")
    missing = [k for k in required if (k not in obj if isinstance(k, str) else not any(x in obj for x in k))]
    if missing:
        names = " or ".join(missing[0]) if not isinstance(missing[0], str) else missing[0]
        raise UserError(f"{path}: not a {what}, it lacks the key '{names}'")
    return obj


def torch_save(path, obj: Any) -> None:
    """torch.save, atomically. Written through a file object, so that the archive's inner
    folder is torch's fixed 'archive' rather than the random temporary name: the same
    content gives the same bytes (and the same sha256 in the caches' keys)."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def _jsonable(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)
