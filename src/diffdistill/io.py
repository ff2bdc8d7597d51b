"""Atomic output files and their metadata sidecars.

Every result file is written to a temporary name in its own folder and renamed into
place, so a crash never leaves a half-written output. Each output gets a sibling
`<name>.meta.json` with the resolved arguments, seed, versions, git revision and wall
time; tables read numbers from these, never from logs.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator


class UserError(Exception):
    """A problem with the user's input: reported as one line, exit status 2."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to `path`; it replaces `path` as a whole on success
    (a crash leaves the previous folder, or none, never a half-written one)."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


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
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e})") from None


def torch_save(path, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def torch_load(path) -> Any:
    """Load a plain checkpoint (tensors and containers only: no code runs)."""
    import torch

    if not Path(path).exists():
        raise UserError(f"file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupted, or a pickle carrying code
        raise UserError(f"cannot load {path}: {type(e).__name__}: {str(e).splitlines()[0]}") from None


def _jsonable(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5,
                               cwd=Path(__file__).resolve().parent).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("torch", "numpy", "diffdistill"):
        mod = sys.modules.get(name)
        if mod is None:
            with contextlib.suppress(ImportError):
                mod = __import__(name)
        out[name] = getattr(mod, "__version__", "?") if mod else "?"
    return out


def meta_path(path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".meta.json") if path.suffix else path / "meta.json"


def write_meta(path, args: dict, seed: int | None = None, **extra) -> None:
    """Write `<path>.meta.json` describing how `path` was made."""
    meta = {"output": str(path), "args": args, "seed": seed, "versions": versions(),
            "git_revision": git_revision(), "host": platform.node()}
    meta.update(extra)
    write_json(meta_path(path), meta)


def read_meta(path) -> dict:
    return read_json(meta_path(path))
