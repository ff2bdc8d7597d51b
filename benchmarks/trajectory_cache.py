"""The trajectory cache: seconds to build, size and load time, and SFD training with and without it.

`--runs` SFD runs that share one teacher setting (the ablations' and seeds' situation),
once reading one cache built for all of them and once regenerating the teacher's
trajectories for every batch (the reference code's way): total wall clock and ratio, the
cache's size on disk and its read throughput.

    python -m benchmarks.trajectory_cache --teacher results/teacher/model.pt --out results/benchmark-runs
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from .common import config_option, config_schedule, run, write

from diffdistill.cli import build_parser
from diffdistill.methods import get
from diffdistill.runner import config_from_args, train
from diffdistill.schedules import timesteps
from diffdistill.trajectories import build_cache, load_cache


def run_sfd(argv: list[str], tmp: Path) -> float:
    args = build_parser().parse_args(["train", "sfd", *map(str, argv), "--quiet", "--out", str(tmp / "m.pt")])
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    method = get("sfd")(args, torch.device("cpu"))
    train(method, config_from_args(args), tmp / f"run{time.perf_counter_ns()}", progress=False)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--pool", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--nfe", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    config_option(ap)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    sched = config_schedule(a.config)
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = tmp / "traj.pt"
        seeds = f"100000-{100000 + a.pool - 1}"
        t0 = time.perf_counter()
        build_cache(a.teacher, cache, student_t=timesteps("edm", a.nfe, True, "euler", sched), K=4,
                    solver="dpmpp3m", final_step="force", thresholding=False, rho=sched.rho, seeds=seeds,
                    batch_size=500, progress=False)
        build = time.perf_counter() - t0
        size = cache.stat().st_size
        t0 = time.perf_counter()
        load_cache(cache)
        read = time.perf_counter() - t0
        common = ["--teacher", a.teacher, "--nfe", a.nfe, "--iters", a.iters, "--batch-size", a.batch_size,
                  "--K", 4, "--pool", a.pool, "--thresholding", "false", "--curve-every", 0]
        cached = [run_sfd(common + ["--trajectories", cache, "--seed", s], tmp) for s in range(a.runs)]
        fresh = [run_sfd(common + ["--seed", s], tmp) for s in range(a.runs)]
    with_cache, without = build + sum(cached), sum(fresh)
    rows = [{"mode": "cache (built once)", "build s": build, "per run s": sum(cached) / a.runs, "total s": with_cache},
            {"mode": "regenerate per batch", "build s": 0.0, "per run s": sum(fresh) / a.runs, "total s": without}]
    head = (f"{a.runs} SFD runs of {a.iters} iterations: x{without / with_cache:.2f} faster with the cache "
            f"({with_cache:.1f} s against {without:.1f} s); cache {size / 2 ** 20:.2f} MiB, read at "
            f"{size / 2 ** 20 / read:.0f} MiB/s")
    write(a.out, "trajectory_cache", "Trajectory cache", {
        "runs": a.runs, "iters": a.iters, "pool": a.pool, "nfe": a.nfe, "cache_bytes": size, "read_s": read,
        "read_mib_per_s": size / 2 ** 20 / read, "ratio": without / with_cache, "headline": head}, rows,
        "A run with the cache reads its batches from the pool; without, the teacher's DPM-Solver++(3M) trajectories "
        "are computed for every batch. Runs differ by their seed only.")


if __name__ == "__main__":
    run(main)
