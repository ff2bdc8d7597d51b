"""SFD's targets: how good the teacher's trajectory end points are, per solver, K and NFE.

SFD's students learn to reproduce the teacher's trajectories at their timestamps; a
student is at best as good as that target. This measures the FID at infinite n of the
target end points (the teacher with `--solvers` over K steps between student timestamps)
on curve seeds (disjoint from the evaluation seeds and the trajectory pool), paired over
`--sets` seed sets of `--n` against EDM's Heun sampler at 35 NFE, for every NFE.

    python -m benchmarks.sfd_targets --out results/benchmark-runs
"""
from __future__ import annotations

import argparse

from .common import config_option, config_schedule, run, sfd_schedule, write
from .sfd_recipe import FEATNET, REF, TEACHER, evaluate


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--solvers", nargs="+", default=["dpmpp3m:4", "dpmpp2m:4", "heun:4", "dpmpp3m:8"],
                    help="solver:K pairs")
    ap.add_argument("--nfe", nargs="+", type=int, default=[2, 3, 4, 5])
    ap.add_argument("--curve-seed-start", type=int, default=2000000)
    ap.add_argument("--sets", type=int, default=5)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    config_option(ap)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import numpy as np
    import torch

    from diffdistill.methods.sfd.train import student_timesteps
    from diffdistill.precond import image_shape, load_teacher
    from diffdistill.sampling import generate_images, to_uint8
    from diffdistill.schedules import timesteps
    from diffdistill.stats import paired
    from diffdistill.trajectories import generate

    torch.set_num_threads(args.threads)
    schedule = config_schedule(args.config)  # the reference's (Heun 35)
    students = sfd_schedule(args.config)     # the targets' timestamps: the SFD students'
    seeds = list(range(args.curve_seed_start, args.curve_seed_start + args.sets * args.n))
    teacher, spec = load_teacher(TEACHER)
    shape = image_shape(spec)
    with torch.inference_mode():
        ref = evaluate(to_uint8(generate_images(teacher, seeds, timesteps("edm_zero", 35, False, "heun", schedule),
                                                "heun", False, img_shape=shape, progress=False)), None, args)
    rows = []
    for pair in args.solvers:
        solver, K = pair.split(":")
        for nfe in args.nfe:
            ts = student_timesteps(nfe, True, students)
            with torch.inference_mode():
                states = generate(teacher, seeds, ts, int(K), solver, "force", False, schedule.rho, 500, shape,
                                  progress=False)
            r = evaluate(to_uint8(states[:, -1]), None, args)
            d = paired(r["fid_inf_sets"], ref["fid_inf_sets"])
            rows.append({"solver": solver, "K": int(K), "NFE": nfe, "teacher steps": int(K) * (len(ts) - 1),
                         "FID inf": float(np.mean(r["fid_inf_sets"])), "- Heun 35": d["diff"], "se": d["se"]})
    head = "; ".join(f"{s}: " + " / ".join(f"{r['FID inf']:.1f}" for r in rows if f"{r['solver']}:{r['K']}" == s)
                     for s in args.solvers) + f" at NFE {'/'.join(map(str, args.nfe))} (Heun 35: " \
        f"{np.mean(ref['fid_inf_sets']):.1f})"
    write(args.out, "sfd_targets", "SFD's targets: the teacher's trajectory end points per solver, K and NFE",
          {"headline": head, "features": FEATNET, "reference": REF}, rows,
          "FID at infinite n on curve seeds, paired against EDM's Heun at 35 NFE on the same seeds.")


if __name__ == "__main__":
    run(main)
