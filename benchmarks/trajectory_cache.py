"""What the trajectory cache costs and saves (ratios measured in one run).

    .venv/bin/python benchmarks/trajectory_cache.py [--teacher results/teacher/model.pt]

Times SFD iterations at one NFE reading batches from a cached pool against
regenerating the teacher trajectories for every batch (the reference code's way), and
the time and size of building the cache. Prints one JSON object; never a pass/fail."""
from __future__ import annotations

import argparse
import io
import json
import time

import torch

from diffdistill.distill.sfd import SFD
from diffdistill.precond import build_denoiser, load_denoiser
from diffdistill.schedules import edm_timesteps, num_timestamps
from diffdistill.trajectories import TrajectoryBatches, generate
from diffdistill.seeding import iteration_generator


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", default=None, help="checkpoint; default: a random default-size UNet")
    ap.add_argument("--nfe", type=int, default=2)
    ap.add_argument("--K", type=int, default=4)
    ap.add_argument("--pool", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.teacher:
        teacher, _ = load_denoiser(args.teacher)
    else:
        teacher = build_denoiser({"net": "unet", "precond": "edm",
                                  "net_kwargs": {"img_resolution": 8, "img_channels": 1}}).eval()
    ts = edm_timesteps(num_timestamps(args.nfe, True), 0.006)
    shape = (1, 8, 8)

    t0 = time.perf_counter()
    pool = generate(teacher, list(range(100000, 100000 + args.pool)), ts, args.K, img_shape=shape, progress=False)
    build_s = time.perf_counter() - t0
    buf = io.BytesIO()
    torch.save({"states": pool}, buf)

    def s_per_iter(batches):
        student, _ = load_denoiser(args.teacher) if args.teacher else (build_denoiser(
            {"net": "unet", "precond": "edm", "net_kwargs": {"img_resolution": 8, "img_channels": 1}}), None)
        student.load_state_dict(teacher.state_dict())
        student.train().requires_grad_(True)
        opt = torch.optim.Adam(student.parameters(), lr=1e-4)

        def step(loss):
            opt.zero_grad()
            loss.backward()
            opt.step()

        sfd = SFD(student, batches, ts, args.batch_size)
        sfd.train_step(0, iteration_generator(0, 0), step)  # warm-up
        t = time.perf_counter()
        for it in range(1, args.iters + 1):
            sfd.train_step(it, iteration_generator(0, it), step)
        return (time.perf_counter() - t) / args.iters

    cached = s_per_iter(TrajectoryBatches(states=pool))
    fresh = s_per_iter(TrajectoryBatches(make_fresh=lambda seeds: generate(
        teacher, seeds, ts, args.K, batch_size=len(seeds), img_shape=shape, progress=False)))
    out = {"nfe": args.nfe, "K": args.K, "pool": args.pool, "batch_size": args.batch_size,
           "cache_build_s": round(build_s, 2), "cache_mib": round(buf.tell() / 2 ** 20, 2),
           "s_per_iter_cached": round(cached, 4), "s_per_iter_fresh": round(fresh, 4),
           "speedup": round(fresh / cached, 2),
           "break_even_iters": round(build_s / max(fresh - cached, 1e-9), 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
