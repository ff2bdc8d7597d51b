"""CIFAR-10 network on the CPU at tiny scale: teacher-trajectory and sampling throughput
and a short SFD NFE-2 fine-tune, extrapolated against the SFD paper's cost figure.

The network is EDM's CIFAR-10 DDPM++ (SongUNet, 128 channels, mult [2,2,2], 4 blocks,
attention at 16x16, dropout 0.13, VP preconditioning), randomly initialised: no
download. Numbers are CPU numbers at a few images per batch; they say nothing about a
GPU beyond the ratio printed at the end. Not part of the test suite.

    nice -n 10 .venv/bin/python benchmarks/cifar10_cpu.py [--threads 2] [--iters 5]
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from diffdistill.distill.sfd import SFD
from diffdistill.distill.trainer import TrainConfig, train
from diffdistill.precond import build_denoiser
from diffdistill.runtime import autocast
from diffdistill.sampling import generate_images
from diffdistill.schedules import edm_timesteps, num_timestamps
from diffdistill.trajectories import TrajectoryBatches, generate

EDM_CIFAR10 = {"net": "songunet", "precond": "vp", "precond_kwargs": {},
               "net_kwargs": {"img_resolution": 32, "in_channels": 3, "out_channels": 3,
                              "model_channels": 128, "channel_mult": [2, 2, 2], "num_blocks": 4,
                              "attn_resolutions": [16], "dropout": 0.13,
                              "embedding_type": "positional", "encoder_type": "standard",
                              "decoder_type": "standard", "channel_mult_noise": 1,
                              "resample_filter": [1, 1]}}
SHAPE = (3, 32, 32)
# SFD paper (CIFAR-10, NFE 2): 0.64 A100-hours for 200k trajectories = 1563 iterations of
# batch 128, fresh teacher trajectories per batch (reference code).
PAPER_A100_HOURS, PAPER_ITERS, PAPER_BATCH = 0.64, 1563, 128


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--traj-batch", type=int, default=2,
                    help="teacher trajectories per batch (also the fine-tune's pool)")
    ap.add_argument("--sample-batches", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--batch", type=int, default=2, help="SFD batch (paper: 128)")
    ap.add_argument("--iters", type=int, default=5, help="SFD iterations (paper: 1563)")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "cifar10_cpu.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    teacher = build_denoiser(EDM_CIFAR10).eval().requires_grad_(False)
    n_params = sum(p.numel() for p in teacher.parameters())
    nfe, K = 2, 4
    student_t = edm_timesteps(num_timestamps(nfe, True), 0.006, 80.0, 7.0)
    teacher_nfe_per_traj = K * (len(student_t) - 1)
    res = {"device": "cpu", "threads": args.threads, "cpu": platform.processor() or platform.machine(),
           "torch": torch.__version__, "network": "EDM CIFAR-10 DDPM++ (random init)",
           "num_params": n_params, "nfe": nfe, "K": K, "teacher_nfe_per_trajectory": teacher_nfe_per_traj}
    print(f"network: {n_params / 1e6:.1f} M parameters; CPU, {args.threads} threads")

    # Teacher trajectories (DPM-Solver++(3M), K = 4, thresholding), after one warm-up call.
    teacher(torch.zeros(1, *SHAPE), torch.tensor([1.0]))
    seeds = list(range(100000, 100000 + args.traj_batch))
    pool, wall = timed(lambda: generate(teacher, seeds, student_t, K, "dpmpp3m", "force", True,
                                     args.traj_batch, SHAPE, progress=False))
    res["trajectories"] = {"batch": args.traj_batch, "seconds": wall,
                           "trajectories_per_s": args.traj_batch / wall,
                           "teacher_nfe_per_s": args.traj_batch * teacher_nfe_per_traj / wall}
    print(f"teacher trajectories: {args.traj_batch / wall:.3f} /s "
          f"({args.traj_batch * teacher_nfe_per_traj / wall:.2f} network evaluations/s)")

    # Sampling: Euler, NFE 2 with AFS (the student's sampler), float32 and bf16 autocast.
    res["sampling"] = []
    for bs in args.sample_batches:
        for amp in ((False, True) if bs == args.sample_batches[0] else (False,)):
            with autocast("cpu", amp):
                _, wall = timed(lambda: generate_images(teacher, list(range(bs)), student_t, "euler", True,
                                                        batch_size=bs, img_shape=SHAPE, progress=False))
            res["sampling"].append({"batch": bs, "amp_bf16": amp, "seconds": wall, "images_per_s": bs / wall})
            print(f"sampling NFE {nfe}, batch {bs}, {'bf16' if amp else 'fp32'}: {bs / wall:.2f} images/s")

    # SFD NFE 2 fine-tune on the trajectories above as a cached pool (fixed targets, so
    # the falling loss is visible at a handful of iterations).
    student = build_denoiser(EDM_CIFAR10)
    student.load_state_dict(teacher.state_dict())
    method = SFD(student, TrajectoryBatches(states=pool), student_t, args.batch, afs=True, loss="l1")
    cfg = TrainConfig(iters=args.iters, lr=args.lr, lr_schedule="constant", seed=0,
                      ckpt_every=10 ** 9, log_every=1)
    with tempfile.TemporaryDirectory() as d:
        out = train(method, cfg, d, progress=False)
        log = [json.loads(l) for l in (Path(d) / "train_log.jsonl").read_text().splitlines()]
    losses = [round(r["loss"], 3) for r in log]
    s_per_iter = out.wall_time / out.iterations
    res["sfd"] = {"batch": args.batch, "iterations": out.iterations, "lr": args.lr, "pool": args.traj_batch,
                  "losses": losses, "first_loss": losses[0], "last_loss": losses[-1],
                  "seconds_per_iteration_student": s_per_iter}
    print(f"SFD NFE 2 fine-tune, batch {args.batch}, lr {args.lr}: loss {losses[0]} -> {losses[-1]} "
          f"over {out.iterations} iterations; {s_per_iter:.2f} s/iteration (student part)")

    # Extrapolation to the paper's iteration: 128 fresh trajectories + the student steps.
    per_traj = 1 / res["trajectories"]["trajectories_per_s"] + s_per_iter / args.batch
    cpu_s_iter = per_traj * PAPER_BATCH
    paper_s_iter = PAPER_A100_HOURS * 3600 / PAPER_ITERS
    res["extrapolation"] = {
        "cpu_seconds_per_paper_iteration": cpu_s_iter,
        "cpu_hours_for_paper_run": cpu_s_iter * PAPER_ITERS / 3600,
        "paper_a100_seconds_per_iteration": paper_s_iter,
        "cpu_over_a100": cpu_s_iter / paper_s_iter,
        "note": "linear in batch size from a tiny CPU batch; teacher trajectories regenerated per batch as in the reference code"}
    print(f"paper iteration (batch 128, fresh trajectories): {cpu_s_iter:.0f} s on this CPU vs "
          f"{paper_s_iter:.2f} s on an A100 ({cpu_s_iter / paper_s_iter:.0f}x); the paper's "
          f"{PAPER_ITERS} iterations would take {cpu_s_iter * PAPER_ITERS / 3600:.0f} CPU hours")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
