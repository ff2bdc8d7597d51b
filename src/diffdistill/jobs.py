"""Where a target's time went, from the metadata sidecars of the files it read.

Every job writes `<output>.meta.json` with the arguments it used and when its process
started and finished (`provenance.write_meta`). Starting from the files a table reads (the rows'
metrics files, the floor, the profiles), `provenance` follows every argument that names a
file with a sidecar (samples, models, trajectory caches, the teacher, the feature
network, ...), so the whole chain that made the table is found without a list of rules.
`job_table` groups those jobs by kind; its span (first start to last finish) is the
target's wall clock as the jobs' own clocks saw it (Snakemake's planning before the
first job is not in it).
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .atomic import meta_path
from .files import read_json_object


def _paths_in(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def provenance(files) -> dict[str, dict]:
    """{file: its metadata} of `files` and of every file their metadata's arguments name
    that has a sidecar, transitively."""
    seen: dict[str, dict] = {}
    todo = [str(f) for f in files]
    while todo:
        f = todo.pop()
        if f in seen or not meta_path(f).is_file():
            continue
        meta = read_json_object(meta_path(f), (), "metadata sidecar")
        seen[f] = meta
        args = meta.get("args") or {}
        todo += [p for v in args.values() for p in _paths_in(v) if p not in seen]
        samples = _samples_of(f)
        if samples:
            todo.append(samples)
    return seen


def _samples_of(path: str) -> str | None:
    """The samples file a metrics file evaluated (its 'samples' field)."""
    if not path.endswith("fid.json"):
        return None
    try:
        return read_json_object(path, (), "metrics file").get("samples")
    except Exception:  # not a metrics file of this version: nothing more to follow
        return None


def job_seconds(path: str) -> float:
    """Seconds the job that wrote `path` ran, by its metadata sidecar's clocks (0 without)."""
    m = meta_path(path)
    meta = read_json_object(m, (), "metadata sidecar") if m.is_file() else {}
    return float(meta["finished_at"] - meta["started_at"]) if "started_at" in meta and "finished_at" in meta else 0.0


def kind(path: str) -> str:
    """The job kind of an output: results/<kind>/..., students by method."""
    parts = Path(path).parts
    if "results" not in parts:
        return "other"
    rest = parts[parts.index("results") + 1:]
    if rest[0] == "students" and len(rest) > 1:
        return f"train {rest[1]}" + (" (trajectories)" if "trajectories" in rest else "")
    return {"fid": "metrics", "featnet": "feature network, reference statistics", "samples": "sampling",
            "trajectories": "teacher trajectories", "teacher": "train teacher", "profiles": "profile"}.get(rest[0],
                                                                                                         rest[0])


def job_table(files, exclude=()) -> tuple[pd.DataFrame, dict]:
    """One row per job kind: jobs, process seconds (sum, largest) of the jobs that made
    `files`, less the jobs that made `exclude` (a target built after another: the claims
    after the main job; its span then starts when the last of those finished, where that
    is later than its own first start); and the span {start, end, seconds, jobs} of all
    of them (None without clocks)."""
    def key(m):
        return m.get("host"), m.get("pid"), m["started_at"]

    done = {key(m): m for m in provenance(exclude).values() if "started_at" in m and "finished_at" in m} \
        if exclude else {}
    processes = {}  # one job may write several files (a model and its curve): count its process once
    for f, m in provenance(files).items():
        if "started_at" in m and "finished_at" in m and key(m) not in done:
            processes.setdefault(key(m), (kind(f), m))
    jobs = list(processes.values())
    if not jobs:
        return pd.DataFrame(), {}
    rows: dict[str, dict] = {}
    for k, m in jobs:
        r = rows.setdefault(k, {"job kind": k, "jobs": 0, "process s": 0.0, "longest s": 0.0})
        secs = m["finished_at"] - m["started_at"]
        r["jobs"] += 1
        r["process s"] += secs
        r["longest s"] = max(r["longest s"], secs)
    start, end = min(m["started_at"] for _, m in jobs), max(m["finished_at"] for _, m in jobs)
    if done:
        start = max(start, min(end, max(m["finished_at"] for m in done.values())))
    df = pd.DataFrame(sorted(rows.values(), key=lambda r: -r["process s"]))
    return df, {"seconds": end - start, "jobs": len(jobs), "process_seconds": float(df["process s"].sum()),
                "finished": end, **stamp([m for _, m in jobs])}


def stamp(metas: list[dict]) -> dict:
    """Where and with what the jobs ran: hosts, CPU, git revisions, versions (every
    distinct value, so a run assembled from several machines or commits says so)."""
    import platform

    def distinct(key):
        return sorted({str(m.get(key)) for m in metas if m.get(key) is not None})
    versions = sorted({", ".join(f"{k} {v}" for k, v in sorted(m["versions"].items())) for m in metas
                       if isinstance(m.get("versions"), dict)})
    return {"hosts": distinct("host"), "git_revisions": distinct("git_revision"), "versions": versions,
            "cpu": _cpu_model(), "cores": os.cpu_count(), "platform": platform.platform()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown"


def summary_markdown(title: str, span: dict, sections: list[tuple[str, str]]) -> str:
    """A dated page of a target's tables: when (the last job's finish, UTC), where, which
    commit, how long, then each (title, markdown table) section."""
    from datetime import datetime, timezone

    when = datetime.fromtimestamp(span["finished"], timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# {title}, {when}", "",
             f"- machine: {', '.join(span['hosts'])}; {span['cpu']}, {span['cores']} cores; {span['platform']}",
             f"- commit: {', '.join(span['git_revisions'])}",
             f"- versions: {'; '.join(span['versions'])}",
             f"- wall clock of its jobs: {span['seconds']:.0f} s ({span['seconds'] / 60:.1f} min), {span['jobs']} jobs, "
             f"{span['process_seconds']:.0f} process seconds", ""]
    for head, text in sections:
        caption, body = text[2:].split("\n", 1) if text.startswith("# ") else ("", text)
        # each table file's own title becomes the section's caption: it says what its ± are
        lines += [f"## {head}", ""] + ([f"{caption}.", ""] if caption else []) + [body.strip(), ""]
    return "\n".join(lines)
