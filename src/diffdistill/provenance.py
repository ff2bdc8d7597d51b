"""Provenance: the metadata sidecar `<name>.meta.json` of every result (the arguments
actually used, seed, versions, git revision, host, process and wall time), and file hashes."""
from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from .atomic import meta_path
from .files import read_json, write_json


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


def process_start() -> float:
    """When this process started (seconds since the epoch): from /proc on Linux (its
    interpreter start-up and imports included), else when this module was imported."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED


_IMPORTED = time.time()


def write_meta(path, args: dict, seed: int | None = None, **extra) -> None:
    """Write `<path>.meta.json` describing how `path` was made; `started_at` and
    `finished_at` (seconds since the epoch) bound the process that made it, `pid` names it
    (the main job's cost table reads them)."""
    meta = {"output": str(path), "args": args, "seed": seed, "versions": versions(),
            "git_revision": git_revision(), "host": platform.node(), "pid": os.getpid(),
            "started_at": round(process_start(), 2), "finished_at": round(time.time(), 2)}
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
