"""Downloads of the cluster setting (EDM teacher, CIFAR-10, Inception weights, clean-fid
statistics): one file, written atomically, or one line saying what to fetch and where.

Only the workflow's fetch rules call this; nothing else in the package touches the
network. An offline machine is detected with a short TCP connect, so it fails in
seconds instead of hanging, and never leaves a partial file behind.
"""
from __future__ import annotations

import socket
import urllib.parse
import urllib.request
from pathlib import Path

from .io import UserError, atomic_path

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 60.0


def reachable(url: str, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except (OSError, TypeError):
        return False


def fetch(url: str, dest, what: str = "file") -> Path:
    """Download `url` to `dest` (temporary name, then rename); UserError if impossible."""
    dest = Path(dest)
    if dest.is_file():
        return dest
    why = "network unreachable"
    if reachable(url):
        try:
            with atomic_path(dest) as tmp:
                with urllib.request.urlopen(url, timeout=READ_TIMEOUT_S) as resp, open(tmp, "wb") as f:
                    while chunk := resp.read(1 << 20):
                        f.write(chunk)
            return dest
        except Exception as e:  # noqa: BLE001 - every failure gets the same advice
            msg = str(e).splitlines()[0] if str(e) else ""
            why = f"download failed: {type(e).__name__}: {msg}"
    raise UserError(f"{what} missing and not downloadable ({why}): fetch {url} and put it at {dest}")


def fetch_to_file(url: str, dest, what: str = "file", args: dict | None = None) -> Path:
    """`fetch`, plus the download's metadata sidecar."""
    import sys
    import time

    from .io import write_meta

    t0 = time.perf_counter()
    from .io import written

    dest = fetch(url, dest, what=what)
    write_meta(dest, args or {}, None, wall_time=time.perf_counter() - t0, size_bytes=written(dest).stat().st_size)
    print(f"{what}: {url} -> {dest}", file=sys.stderr)
    return dest


def _inputs(config: dict) -> list[tuple]:
    """(rule suffix, local path, URL, what, config key) of each input file the config uses."""
    t, d, e = config["teacher"], config["dataset"], config["eval"]
    items = [("edm_teacher", t["edm_pickle"], t["edm_pickle_url"], "EDM teacher snapshot", "teacher.edm_pickle",
              t["source"] == "edm_pickle"),
             ("dataset", d["path"], d["url"], f"dataset '{d['name']}'", "dataset.path", True),
             ("inception_weights", e["inception_weights"], e["inception_weights_url"], "Inception weights",
              "eval.inception_weights", e["features"] == "inception"),
             ("reference_stats", e["reference_stats"], e["reference_stats_url"], "reference statistics",
              "eval.reference_stats", True)]
    return [item[:5] for item in items if item[5] and item[1]]


def missing_inputs(config: dict) -> list[str]:
    """One line for each input file the config uses that is not in place and has no URL to
    fetch it from (no fetch rule can make it): what it is, and where to put it."""
    return [f"{what} not found at {path} ({key}) and no URL to fetch it from: put it there or set {key}"
            for _, path, url, what, key in _inputs(config) if not url and not Path(path).exists()]


def downloads(config: dict) -> list[tuple[str, str, str, str]]:
    """(rule suffix, local path, URL, what) of each input a fetch job may download: those
    the config uses and gives both a path and a URL for."""
    return [(name, path, url, what) for name, path, url, what, _ in _inputs(config) if url]
