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
from typing import NamedTuple

from .config import get
from .atomic import atomic_path
from .errors import UserError

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
    dest = Path(dest)
    if not dest.is_file():
        _download(url, dest, what, sha256, key)
    return dest


def _download(url: str, dest: Path, what: str, sha256: str | None, key: str | None) -> str:
    """`fetch`'s download; returns the file's SHA-256, computed while it is written."""
    key = key or "--sha256"
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
    return got


def fetch_to_file(url: str, dest, what: str = "file", sha256: str | None = None, key: str | None = None,
                  args: dict | None = None) -> Path:
    """`fetch`, plus the download's metadata sidecar (its SHA-256 included)."""
    import time

    from .provenance import sha256 as file_sha256
    from .atomic import written
    from .provenance import write_meta

    t0, dest = time.perf_counter(), Path(dest)
    digest = file_sha256(dest) if dest.is_file() else _download(url, dest, what, sha256, key)
    write_meta(dest, args or {}, None, wall_time=time.perf_counter() - t0, size_bytes=written(dest).stat().st_size,
               sha256=digest)
    print(f"{what}: {url} -> {dest}", file=sys.stderr)
    return dest


class Input(NamedTuple):
    """An input file the config uses: its fetch rule's suffix, what it is, its path, URL
    and pinned SHA-256, and the config keys of the path and the pin."""
    name: str
    what: str
    path: str | None
    url: str | None
    sha256: str | None
    key: str
    sha256_key: str


# (rule suffix, what, the config keys of its path and its URL: the pin sits beside the URL,
# `<url key>` with `url` replaced by `sha256`), and when the config uses it
_INPUTS = (("edm_teacher", "EDM teacher snapshot", "teacher.edm_pickle", "teacher.edm_pickle_url",
            lambda c: c["teacher"]["source"] == "edm_pickle"),
           ("dataset", None, "dataset.path", "dataset.url", lambda c: True),
           ("inception_weights", "Inception weights", "eval.inception_weights", "eval.inception_weights_url",
            lambda c: c["eval"]["features"] == "inception"),
           ("reference_stats", "reference statistics", "eval.reference_stats", "eval.reference_stats_url",
            lambda c: True))


def _inputs(config: dict) -> list[Input]:
    """Each input file the config uses and gives a path for."""
    out = []
    for name, what, key, url_key, used in _INPUTS:
        sha_key = url_key.removesuffix("url") + "sha256"
        item = Input(name, what or f"dataset '{config['dataset']['name']}'", get(config, key), get(config, url_key),
                     get(config, sha_key), key, sha_key)
        if used(config) and item.path:
            out.append(item)
    return out


def missing_inputs(config: dict) -> list[str]:
    """One line for each input file the config uses that is not in place and has no URL to
    fetch it from (no fetch rule can make it): what it is, and where to put it."""
    return [f"{i.what} not found at {i.path} ({i.key}) and no URL to fetch it from: put it there or set {i.key}"
            for i in _inputs(config) if not i.url and not Path(i.path).exists()]


def downloads(config: dict) -> list[Input]:
    """Each input a fetch job may download: those the config uses and gives both a path
    and a URL for."""
    return [i for i in _inputs(config) if i.url]
