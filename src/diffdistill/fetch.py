"""Downloads of the cluster setting (EDM teacher, CIFAR-10, Inception weights, clean-fid
statistics): one file, written atomically, or one line saying what to fetch and where.

Only the workflow's fetch rules call this; nothing else in the package touches the
network. An offline machine is detected with a short TCP connect, so it fails in
seconds instead of hanging, and never leaves a partial file behind.

Each download is checked against the SHA-256 its config pins (`*_sha256` beside each
URL) before it takes its final name: a truncated or substituted file never reaches a
job. An input without a pinned hash is downloaded with one line giving the hash to pin.
"""
from __future__ import annotations

import hashlib
import re
import socket
import sys
import urllib.parse
import urllib.request
from pathlib import Path

from .io import UserError, atomic_path
from .io import sha256 as _sha256

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


SHA256 = re.compile(r"[0-9a-f]{64}")


def fetch(url: str, dest, what: str = "file", sha256: str | None = None, key: str | None = None) -> Path:
    """Download `url` to `dest` (temporary name, checked against `sha256` when given, then
    renamed); UserError if impossible or if the hash differs (`key`: the config key that
    pins it, for the message). Returns the path; a file already at `dest` is kept."""
    dest, key = Path(dest), key or "--sha256"
    if dest.is_file():
        return dest
    if sha256 is not None and not SHA256.fullmatch(sha256):
        raise UserError(f"{key}: '{sha256}' is not a SHA-256 (64 lowercase hex digits)")

    def missing(why: str) -> UserError:
        return UserError(f"{what} missing and not downloadable ({why}): fetch {url} and put it at {dest}")

    if not reachable(url):
        raise missing("network unreachable")
    with atomic_path(dest) as tmp:  # an exception inside leaves nothing at dest
        h = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=READ_TIMEOUT_S) as resp, open(tmp, "wb") as f:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    h.update(chunk)
        except Exception as e:  # noqa: BLE001 - every failure gets the same advice
            msg = str(e).splitlines()[0] if str(e) else ""
            raise missing(f"download failed: {type(e).__name__}: {msg}") from None
        got = h.hexdigest()
        if sha256 is not None and got != sha256:
            raise UserError(f"{what} downloaded from {url} has SHA-256 {got}, not the pinned {sha256} ({key}): "
                            f"{dest} not written; check the URL, or pin the new hash if the file changed on purpose")
    if sha256 is None:
        print(f"{what}: no SHA-256 pinned ({key}); the download's is {got}: pin it to check later downloads",
              file=sys.stderr)
    return dest


def fetch_to_file(url: str, dest, what: str = "file", sha256: str | None = None, key: str | None = None,
                  args: dict | None = None) -> Path:
    """`fetch`, plus the download's metadata sidecar (its SHA-256 included)."""
    import time

    from .io import write_meta

    t0 = time.perf_counter()
    from .io import written

    dest = fetch(url, dest, what=what, sha256=sha256, key=key)
    write_meta(dest, args or {}, None, wall_time=time.perf_counter() - t0, size_bytes=written(dest).stat().st_size,
               sha256=_sha256(dest))
    print(f"{what}: {url} -> {dest}", file=sys.stderr)
    return dest


def _inputs(config: dict) -> list[tuple]:
    """(rule suffix, local path, URL, what, config key, pinned SHA-256, its key) of each
    input file the config uses."""
    t, d, e = config["teacher"], config["dataset"], config["eval"]
    items = [("edm_teacher", t["edm_pickle"], t["edm_pickle_url"], "EDM teacher snapshot", "teacher.edm_pickle",
              t["edm_pickle_sha256"], "teacher.edm_pickle_sha256", t["source"] == "edm_pickle"),
             ("dataset", d["path"], d["url"], f"dataset '{d['name']}'", "dataset.path", d["sha256"], "dataset.sha256",
              True),
             ("inception_weights", e["inception_weights"], e["inception_weights_url"], "Inception weights",
              "eval.inception_weights", e["inception_weights_sha256"], "eval.inception_weights_sha256",
              e["features"] == "inception"),
             ("reference_stats", e["reference_stats"], e["reference_stats_url"], "reference statistics",
              "eval.reference_stats", e["reference_stats_sha256"], "eval.reference_stats_sha256", True)]
    return [item[:7] for item in items if item[7] and item[1]]


def missing_inputs(config: dict) -> list[str]:
    """One line for each input file the config uses that is not in place and has no URL to
    fetch it from (no fetch rule can make it): what it is, and where to put it."""
    return [f"{what} not found at {path} ({key}) and no URL to fetch it from: put it there or set {key}"
            for _, path, url, what, key, *_ in _inputs(config) if not url and not Path(path).exists()]


def downloads(config: dict) -> list[tuple[str, str, str, str, str | None, str]]:
    """(rule suffix, local path, URL, what, pinned SHA-256 or None, the key that pins it) of
    each input a fetch job may download: those the config uses and gives both a path and a
    URL for."""
    return [(name, path, url, what, sha, sha_key) for name, path, url, what, _, sha, sha_key in _inputs(config)
            if url]
