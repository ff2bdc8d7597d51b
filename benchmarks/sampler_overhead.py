"""Sampler overhead: sampling time against the bare network calls it makes, per solver and NFE.

For each solver at NFE 2..5 (on EDM's grid, as the baseline rows), and the reference (Heun
at 35 NFE): one sampling run of `--images` images against the same number of bare network
calls at the same batch size (the network alone: no noise drawing, no solver arithmetic).
Medians of 3 runs each. Target: at most 5 %.

    python -m benchmarks.sampler_overhead --teacher results/teacher/model.pt --out results/benchmark-runs
"""
from __future__ import annotations

import argparse

import torch
from .common import config_option, config_schedule, median_seconds, run, write

from diffdistill.precond import image_shape, load_denoiser
from diffdistill.sampling import generate_images
from diffdistill.schedules import num_timestamps, timesteps
from diffdistill.solvers import CountingDenoiser


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--images", type=int, default=250)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reference-nfe", type=int, default=35)
    config_option(ap)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    sched = config_schedule(a.config)
    torch.set_num_threads(a.threads)
    model, spec = load_denoiser(a.teacher)
    shape = image_shape(spec)
    cases = [(s, n, False, "edm") for s in ("euler", "heun", "dpmpp2m", "dpmpp3m", "ipndm") for n in (2, 3, 4, 5)
             if num_timestamps(n, False, s) is not None]
    cases.append(("heun", a.reference_nfe, False, "edm_zero"))
    x = torch.randn(a.images, *shape)
    rows = []
    with torch.inference_mode():
        for solver, nfe, afs, grid in cases:
            ts = timesteps(grid, nfe, afs, solver, sched)
            counter = CountingDenoiser(model)
            generate_images(counter, [0], ts, solver, afs, batch_size=1, img_shape=shape, progress=False)
            calls = counter.nfe  # network calls of one sample
            sigma = torch.full((a.images,), 1.0)
            bare = median_seconds(lambda: [model(x, sigma) for _ in range(calls)], repeats=3)
            full = median_seconds(lambda: generate_images(model, list(range(a.images)), ts, solver, afs,
                                                          batch_size=a.images, img_shape=shape, progress=False),
                                  repeats=3)
            rows.append({"solver": solver, "grid": grid, "AFS": afs, "NFE": nfe, "network calls": calls,
                         "bare s": bare, "sampling s": full, "overhead %": 100 * (full / bare - 1) if bare else 0.0})
    worst = max(rows, key=lambda r: r["overhead %"])
    head = (f"sampler overhead over bare network calls: median {sorted(r['overhead %'] for r in rows)[len(rows) // 2]:.1f} %,"
            f" worst {worst['overhead %']:.1f} % ({worst['solver']} NFE {worst['NFE']}); target <= 5 %")
    write(a.out, "sampler_overhead", "Sampler overhead", {"images": a.images, "threads": a.threads,
                                                          "headline": head}, rows,
          "Sampling includes drawing the per-seed noise (one generator per seed) and the solver's arithmetic; "
          "bare runs call the network on a ready batch as often as the sampler does.")


if __name__ == "__main__":
    run(main)
