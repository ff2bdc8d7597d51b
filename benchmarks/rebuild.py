"""Rebuild cost on the built default DAG: seconds of a no-op plan and a no-op run, and of one more ablation row.

A no-op `snakemake -n` and a no-op `snakemake --cores all results/tables` (target: at most
5 s each), then one more ablation value (t_min 0.1): the jobs it plans and the wall clock
of building its row (its cache, its student, sampling and metrics).

    python -m benchmarks.rebuild --out results/benchmark-runs     (in a checkout whose results/tables exist)
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import run, write

SMK = [sys.executable, "-m", "snakemake", "--nolock"]  # inside the benchmark job of a running Snakemake


def timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"rebuild benchmark: {' '.join(cmd)} failed:\n{(r.stdout + r.stderr)[-2000:]}")
    return time.perf_counter() - t0, r.stdout + r.stderr


def job_counts(out: str) -> dict:
    """Snakemake's 'Job stats' table of a dry run, rule -> jobs (with 'total'); {} without one."""
    if "Job stats:" not in out:
        return {}
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:")[-1], re.M)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--t-min", default="0.1", help="the ablation value added")
    a = ap.parse_args()
    dry, out = timed([*SMK, "-n", "results/tables"])
    noop, out2 = timed([*SMK, "--cores", "all", "results/tables"])
    import yaml
    cfg = yaml.safe_load(Path("config/config.yaml").read_text())
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as extra:
        yaml.safe_dump({"ablations": {"t_min": cfg["ablations"]["t_min"] + [float(a.t_min)]}}, extra)
    _, before = timed([*SMK, "-n", "results/ablations"])  # ablation jobs already pending (none once built)
    plan_t, plan = timed([*SMK, "-n", "results/ablations", "--configfile", "config/config.yaml", extra.name])
    pending = job_counts(before)
    added = {k: n - pending.get(k, 0) for k, n in job_counts(plan).items()}
    jobs = {k: n for k, n in added.items() if n > 0}
    target = f"results/fid/students/sfd/tmin{a.t_min}/nfe{cfg['ablations']['nfe']}/fid.json"
    build_t, _ = timed([*SMK, "--cores", "all", target, "--configfile", "config/config.yaml", extra.name])
    rows = [{"step": "snakemake -n results/tables (nothing to do)", "seconds": dry},
            {"step": "snakemake --cores all results/tables (nothing to do)", "seconds": noop},
            {"step": f"plan of results/ablations with t_min {a.t_min} added", "seconds": plan_t},
            {"step": f"build the new row ({target})", "seconds": build_t}]
    head = (f"no-op dry run {dry:.1f} s, no-op run {noop:.1f} s (target <= 5 s); one more t_min value plans "
            f"{jobs.get('total', 0)} new jobs ({', '.join(f'{k} {v}' for k, v in jobs.items() if k != 'total')}) "
            f"and its row builds in {build_t:.0f} s")
    write(a.out, "rebuild", "Rebuild cost", {"dry_run_s": dry, "noop_s": noop, "noop_nothing_to_do":
                                             "Nothing to be done" in out2, "new_value_jobs": jobs,
                                             "new_value_s": build_t, "headline": head}, rows,
          "The plan counts the jobs `snakemake results/ablations` would run (the new value's cache, student, "
          "sampling and metrics, and the ablation table and its consumers); the build runs the new row only.")


if __name__ == "__main__":
    run(main)
