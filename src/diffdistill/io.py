"""Atomic output files and their metadata sidecars.

Every result file is written to a temporary name in its own folder and renamed into
place, so a crash never leaves a half-written output. The temporary name is
`.<name>.<random>.tmp`; the next write of the same output removes any such leftover of a
killed process. Files and folders get the permissions the umask gives (not mkstemp's
0600), so shared results folders and a shared DVC cache work.

Each output gets a sibling `<name>.meta.json` with the arguments actually used, seed,
versions, git revision and wall time; tables read numbers from these, never from logs.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator


class UserError(Exception):
    """A problem with the user's input: reported as one line, exit status 2."""


def error_text(e: Exception) -> str:
    """The one line shown for a UserError, or for an OSError (its reason and file)."""
    if isinstance(e, OSError):
        return f"{e.strerror or e}: {e.filename or ''}".rstrip(": ")
    return str(e)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sweep_stale(path: Path) -> None:
    """Remove temporaries of earlier, killed writes of `path` (`.<name>.*.tmp`)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def check_writable(path: str | os.PathLike) -> Path:
    """Fail now, in one line, if `path` cannot be written later (before the work starts):
    its folder is made and a probe file is created in it and removed."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"output {path} is an existing folder; give a file name")
    _mkdirs(path.parent)
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(probe)
    return path


def _mkdirs(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"cannot create folder {path}: a file is in the way") from None
    except OSError as e:
        raise UserError(f"cannot create folder {path}: {e.strerror or e}") from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` on success."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"output {path} is an existing folder; give a file name")
    _mkdirs(path.parent)
    _sweep_stale(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to `path`; it replaces `path` as a whole on success
    (a crash leaves the previous folder, or none, never a half-written one)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"output folder {path} is an existing file")
    _mkdirs(path.parent)
    _sweep_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; files inside follow the umask
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
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e})") from None


def torch_save(path, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def torch_load(path) -> Any:
    """Load a plain checkpoint (tensors and containers only: no code runs)."""
    import torch

    if not Path(path).is_file():
        raise UserError(f"file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupted, or a pickle carrying code
        msg = str(e)
        if "weights_only" in msg or "Unsupported global" in msg:
            raise UserError(f"refusing {path}: it holds Python objects other than tensors and plain "
                            "containers (loading them could run code)") from None
        raise UserError(f"cannot load {path}: {type(e).__name__}: {msg.splitlines()[0] if msg else ''}") from None


def _jsonable(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def git_revision() -> str:
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=here)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, cwd=here).stdout.strip()
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


def sha256(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
