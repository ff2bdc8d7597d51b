"""Scaling: seconds per SFD iteration (NFE 2, AFS) and sampling throughput
against batch size, image size (8x8 digits; the same network at 16x16; 32x32 RGB with the
CIFAR-10 network, EDM's DDPM++ of 55.7M parameters with random weights) and world size (1
and 2 gloo processes, one thread each, against one process with 2 threads).

    python -m benchmarks.scaling --out results/benchmark-runs
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics

import torch
import torch.multiprocessing as mp
from .common import config_option, config_schedule, run, write
from .timing import CIFAR10_NET, digits_net, sampling_images_per_second, sfd_step_seconds

from diffdistill.precond import build_denoiser


def _ddp_worker(rank, port, batch, iters, schedule, q):
    import torch.distributed as dist

    from diffdistill import distributed
    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    distributed.init_from_env()
    times = sfd_step_seconds(digits_net(), (1, 8, 8), batch, schedule, iters=iters, wrap=distributed.wrap)
    if rank == 0:
        q.put(statistics.median(times))
    dist.barrier()


def world_two(batch: int, iters: int, schedule) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    mp.start_processes(_ddp_worker, args=(port, batch, iters, schedule, q), nprocs=2, start_method="spawn")
    return q.get()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--cifar10", action=argparse.BooleanOptionalAction, default=True,
                    help="include the full-size CIFAR-10 network (minutes on a CPU)")
    config_option(ap)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    sched = config_schedule(a.config)
    torch.set_num_threads(1)
    rows = []
    for batch in (16, 32, 64, 128):
        s = statistics.median(sfd_step_seconds(digits_net(), (1, 8, 8), batch, sched, iters=a.iters))
        ips = sampling_images_per_second(digits_net(), (1, 8, 8), a.images, batch, sched)
        rows.append({"axis": "batch", "setting": f"digits 8x8, batch {batch}", "s / SFD iteration": s,
                     "images/s (NFE 2)": ips})
    for res, shape, net, batch in ((16, (1, 16, 16), digits_net(16), 64),) + (
            ((32, (3, 32, 32), None, 2),) if a.cifar10 else ()):
        if net is None:
            torch.manual_seed(0)
            net = build_denoiser(CIFAR10_NET)
        s = statistics.median(sfd_step_seconds(net, shape, batch, sched, iters=1 if res == 32 else a.iters))
        ips = sampling_images_per_second(net, shape, 8 if res == 32 else a.images, 4 if res == 32 else batch,
                                         sched)
        rows.append({"axis": "image size", "setting": f"{res}x{res}x{shape[0]}, batch {batch}",
                     "s / SFD iteration": s, "images/s (NFE 2)": ips})
    one = statistics.median(sfd_step_seconds(digits_net(), (1, 8, 8), 64, sched, iters=a.iters))
    torch.set_num_threads(2)
    two_threads = statistics.median(sfd_step_seconds(digits_net(), (1, 8, 8), 64, sched, iters=a.iters))
    torch.set_num_threads(1)
    two_procs = world_two(64, a.iters, sched)
    rows += [{"axis": "world", "setting": "1 process, 1 thread, batch 64", "s / SFD iteration": one},
             {"axis": "world", "setting": "1 process, 2 threads, batch 64", "s / SFD iteration": two_threads},
             {"axis": "world", "setting": "2 gloo processes x 1 thread, batch 64 in all", "s / SFD iteration":
              two_procs}]
    b16, b128 = rows[0]["s / SFD iteration"], rows[3]["s / SFD iteration"]
    head = (f"SFD iteration: x{b128 / b16:.1f} the time for x8 the batch (16 -> 128); 2 gloo processes "
            f"x{one / two_procs:.2f} and 2 threads x{one / two_threads:.2f} the speed of one process at batch 64")
    write(a.out, "scaling", "Scaling of SFD iterations and sampling", {"headline": head}, rows,
          "Medians after one warm-up iteration; sampling: Euler, NFE 2 with AFS. The CIFAR-10 network runs at "
          "batch 2 (training) and 4 (sampling) on a CPU: it shows the per-image cost, not a usable setting.")


if __name__ == "__main__":
    run(main)
