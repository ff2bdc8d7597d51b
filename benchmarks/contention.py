"""Contention: median seconds per training iteration (the default teacher's
network, batch 128, EDM loss) and sampling throughput (Euler, NFE 10), first on a quiet
machine, then beside two competing busy processes (plain, not niced, single-thread
loops), with the same thread settings, in one run: one thread (each parallel job of the
default pipeline), and all cores with OpenMP's default wait policy and with
OMP_WAIT_POLICY=PASSIVE (what the diffdistill command sets).

    python -m benchmarks.contention --out results/benchmark-runs
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from .common import ROOT, config_option, config_schedule, run, write
from .timing import digits_net, sampling_images_per_second


def worker(threads: int, iters: int, config: str) -> dict:
    """In a fresh process: median seconds of one teacher training iteration (EDM loss,
    batch 128, Adam) and images per second of sampling (Euler, NFE 10), on `threads`."""
    from diffdistill.methods.teacher.train import edm_loss

    torch.set_num_threads(threads)
    net = digits_net()
    images = torch.rand(512, 1, 8, 8) * 2 - 1
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    times = []
    for it in range(iters + 2):
        t0 = time.perf_counter()
        loss = edm_loss(net, images[:128], torch.Generator().manual_seed(it))
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    ips = sampling_images_per_second(net, (1, 8, 8), 500, 250, config_schedule(config), nfe=10)
    return {"s_per_iter": statistics.median(times[2:]), "images_per_s": ips}


def measure(threads: int, iters: int, passive: bool, config: str) -> dict:
    """`worker` in one fresh process (OpenMP reads its wait policy when torch loads)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    r = subprocess.run([sys.executable, "-m", "benchmarks.contention", "--worker", str(threads), str(iters),
                        "--config", config, "--out", "-"], cwd=ROOT, env=env, capture_output=True, text=True,
                       check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="threads of the multi-thread runs")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--worker", type=int, nargs=2, metavar=("THREADS", "ITERS"), help=argparse.SUPPRESS)
    config_option(ap)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(*a.worker, a.config)))
        return
    rows = []
    for threads, passive in ((1, False), (a.threads, False), (a.threads, True)):
        quiet = measure(threads, a.iters, passive, a.config)
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
        try:
            time.sleep(1)
            loaded = measure(threads, a.iters, passive, a.config)
        finally:
            for p in busy:
                p.kill()
                p.wait()
        rows.append({"threads": threads, "OMP_WAIT_POLICY": "PASSIVE" if passive else "(OpenMP default)",
                     "quiet s/iter": quiet["s_per_iter"], "busy s/iter": loaded["s_per_iter"],
                     "training speed busy / quiet": quiet["s_per_iter"] / loaded["s_per_iter"],
                     "quiet images/s": quiet["images_per_s"], "busy images/s": loaded["images_per_s"],
                     "sampling speed busy / quiet": loaded["images_per_s"] / quiet["images_per_s"]})
    one, d, p = rows
    r = "training speed busy / quiet"
    head = (f"beside two busy processes, training runs at x{one[r]:.2f} its quiet speed with 1 thread (each job of "
            f"the default pipeline) and, with {a.threads} threads, x{p[r]:.2f} with OMP_WAIT_POLICY=PASSIVE "
            f"(diffdistill's setting) against x{d[r]:.2f} with OpenMP's default; target >= 0.4. PASSIVE costs "
            f"x{p['quiet s/iter'] / d['quiet s/iter']:.2f} quiet time per iteration on this tiny network")
    write(a.out, "contention", "Contention", {"headline": head}, rows,
          "The competitors are two plain `while True: pass` processes. Each run is a fresh process, so the "
          "wait policy is the one OpenMP read at start-up. A fair share of the 2 cores would cost at most x0.5.")


if __name__ == "__main__":
    run(main)
