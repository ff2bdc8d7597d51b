"""SFD's students against their own targets, one recipe change at a time, on curve seeds.

Why a student sits above what it is trained to reproduce: each variant changes one
setting of SFD's recipe (trajectories, learning rate and schedule, EMA, batch size,
iterations) around a base, trains an NFE-`--nfe` student with `diffdistill train sfd`,
samples it on the curve seeds (disjoint from the evaluation seeds 0.. and from the
trajectory pool) and reports, paired over `--sets` seed sets of `--n`:
FID at infinite n (per set: FID at n minus the pooled bias fit, as the tables), the
student minus its target (the teacher's trajectory end points on the same seeds), the
variant minus the base, the agreement with the target (pixel RMSE), the iterations it
ran and its training seconds. Nothing here touches the evaluation seeds; the config's
final choice is confirmed once on them by the main job.

    python -m benchmarks.sfd_recipe --nfe 3 --variants default bs64 noema --out results/benchmark-runs

Needs the main job's teacher, feature network and reference statistics
(`snakemake --cores all results/featnet/ref_stats.npz results/teacher/model.pt`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .common import config_option, run, run_child, schedule_tag, sfd_schedule, validated_config, write

TEACHER, FEATNET, REF = "results/teacher/model.pt", "results/featnet/model.pt", "results/featnet/ref_stats.npz"


def base_recipe(cfg: dict) -> dict:
    """SFD's recipe in a validated config: the base every variant changes one setting of."""
    sfd, traj = cfg["sfd"], cfg["trajectories"]
    return {"num": traj["num"], "cache": traj["cache"], **{k: sfd[k] for k in (
        "iters", "batch_size", "lr", "lr_schedule", "ema", "curve_every")}}


# one change at a time around the config's recipe (base_recipe); "old" is the recipe before convergence
# (batch 64; its targets were DPM-Solver++(3M)'s: --solver dpmpp3m)
VARIANTS = {
    "default": {},
    "old": {"cache": True, "num": 2000, "iters": 100, "batch_size": 64, "lr_schedule": "step", "curve_every": 0},
    "cached": {"cache": True},
    "c2000-600it": {"cache": True, "num": 2000, "iters": 600, "lr_schedule": "constant", "curve_every": 0},
    "c5000-600it": {"cache": True, "num": 5000, "iters": 600, "lr_schedule": "constant", "curve_every": 0},
    "c10000": {"cache": True, "num": 10000},
    "const-2000it": {"iters": 2000, "lr_schedule": "constant", "curve_every": 0},
    "tol0.001": {"plateau_tol": 0.001},
    "decays2": {"plateau_decays": 2},
    "fresh-600it": {"cache": False, "iters": 600, "lr_schedule": "constant", "curve_every": 0},
    "lr1e-3-600it": {"lr": 1e-3, "iters": 600, "lr_schedule": "constant", "curve_every": 0},
    "lr1e-4": {"lr": 1e-4},
    "bs32": {"batch_size": 32},
    "bs64": {"batch_size": 64},
    "bs128": {"batch_size": 128},
    "noema": {"ema": None},
    "ema0.995": {"ema": 0.995},
    "seed1": {"seed": 1},
}


def curve_seed_range(args) -> str:
    return f"{args.curve_seed_start}-{args.curve_seed_start + args.sets * args.n - 1}"


def diffdistill(*argv, threads: int) -> None:
    exe = Path(sys.executable).with_name("diffdistill")
    cmd = [str(exe) if exe.exists() else "diffdistill", *map(str, argv), "--threads", str(threads), "--quiet"]
    run_child(cmd)


SOLVER = {"name": "dpmpp2m"}  # the teacher's solver of the targets (--solver)


def teacher_flags(nfe: int, teacher: str = TEACHER, schedule=None, solver: str | None = None) -> list:
    """The teacher's trajectory settings of SFD's students (the schedule: the CLI's
    default unless given)."""
    sched = [x for k, v in schedule.to_dict().items() for x in (f"--{k.replace('_', '-')}", v)] if schedule else []
    return ["--teacher", teacher, "--nfe", nfe, "--afs", "true", "--solver", solver or SOLVER["name"], "--K", 4,
            "--final-step", "force", "--thresholding", "false", *sched]


def cache(out: Path, nfe: int, seeds: str, threads: int, **teacher) -> Path:
    """The teacher's trajectory cache for `seeds` in `out`, built once (`teacher`: the
    other arguments of teacher_flags)."""
    path = out / f"traj-nfe{nfe}-{seeds}.pt"
    if not path.exists():
        diffdistill("trajectories", *teacher_flags(nfe, **teacher), "--seeds", seeds, "--out", path, threads=threads)
    return path


def train(out: Path, name: str, nfe: int, v: dict, args) -> Path:
    model = out / name / "model.pt"
    if model.exists():
        return model
    flags = [*teacher_flags(nfe, schedule=args.schedule), "--loss", "l1", "--pool", v["num"], "--seed-start", 100000,
             "--iters", v["iters"], "--batch-size", v["batch_size"], "--lr", v["lr"], "--lr-schedule",
             v["lr_schedule"], "--ema", "null" if v["ema"] is None else v["ema"], "--seed", v.get("seed", 0),
             "--ckpt-every", 100000, "--out", model, "--tensorboard-dir", out / name / "tb"]
    flags += [x for k in ("plateau_tol", "plateau_decays") if k in v for x in (f"--{k.replace('_', '-')}", v[k])]
    if v["cache"]:
        flags += ["--trajectories", cache(out, nfe, f"100000-{100000 + v['num'] - 1}", args.threads,
                                          schedule=args.schedule)]
    if v["curve_every"]:
        flags += ["--curve-out", out / name / "fid_curve.json", "--curve-every", v["curve_every"], "--ref", REF,
                  "--featnet", FEATNET, "--curve-seed-start", args.curve_seed_start + args.sets * args.n]
    diffdistill("train", "sfd", *flags, threads=args.threads)
    return model


def evaluate(images, target, args) -> dict:
    """Per-set FID at infinite n (FID at n minus the pooled bias fit) and RMSE to the target."""
    import numpy as np

    from diffdistill.metrics import feature_extractor
    from diffdistill.metrics.distances import fid_bias, fid_features_to_stats, load_reference
    from diffdistill.metrics.features import compute_features

    mu, sigma, ref = load_reference(REF)
    feats = compute_features(images, feature_extractor("classifier", FEATNET), 500)
    fit = fid_bias(feats, args.n, mu, sigma, ref)
    bias = fit["bias"]
    sets = [fid_features_to_stats(feats[k * args.n:(k + 1) * args.n], mu, sigma) - bias for k in range(args.sets)]
    out = {"fid_inf_sets": sets, "fid_bias_draws": fit["draws"]}
    if target is not None:
        a, b = (np.asarray(x, np.float64) / 127.5 - 1 for x in (images, target))
        r = np.sqrt(((a - b) ** 2).reshape(len(a), -1).mean(1))
        out["rmse"] = float(r.mean())
    return out


def sample(model, nfe: int, seeds: list[int], schedule):
    """uint8 samples of an SFD student on `seeds` (Euler with AFS on its timestamps)."""
    from diffdistill.methods.sfd.train import student_timesteps
    from diffdistill.precond import image_shape, load_denoiser
    from diffdistill.sampling import generate_images, to_uint8

    net, spec = load_denoiser(model)
    return to_uint8(generate_images(net.eval(), seeds, student_timesteps(nfe, True, schedule), "euler", True,
                                    batch_size=500, img_shape=image_shape(spec), progress=False))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nfe", type=int, default=2)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--curve-seed-start", type=int, default=2000000,
                    help="first curve seed of the evaluation sets; the plateau rule's curve uses the next ones")
    ap.add_argument("--sets", type=int, default=5)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--solver", help="the teacher's solver of the targets (default: the config's trajectories.solver)")
    ap.add_argument("--work", default="results/benchmark-work/sfd_recipe", help="models and caches of the runs")
    config_option(ap)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    cfg = validated_config(args.config)
    base, schedule = base_recipe(cfg), sfd_schedule(args.config)
    args.schedule = schedule  # the targets, the training and the sampling all follow the config's schedule
    args.solver = args.solver or cfg["trajectories"]["solver"]
    import numpy as np
    import torch

    from diffdistill.sampling import to_uint8
    from diffdistill.seeding import parse_seeds
    from diffdistill.stats import paired
    from diffdistill.trajectories import load_cache

    torch.set_num_threads(args.threads)
    SOLVER["name"] = args.solver
    work = Path(args.work) / f"{args.solver}-nfe{args.nfe}-{schedule_tag(schedule)}"
    work.mkdir(parents=True, exist_ok=True)
    seeds = curve_seed_range(args)
    target = to_uint8(load_cache(cache(work, args.nfe, seeds, args.threads, schedule=schedule))["states"][:, -1])
    target = target.astype(np.uint8)
    results = {"target": evaluate(target, None, args)}
    for name in args.variants:
        v = {**base, **VARIANTS[name]}
        t0 = time.time()
        model = train(work, name, args.nfe, v, args)
        meta = json.loads(Path(f"{model}.meta.json").read_text())
        results[name] = {**evaluate(sample(model, args.nfe, parse_seeds(seeds), schedule), target, args), "iterations": meta["iterations"],
                         "train_s": meta["wall_time"], "converged": meta.get("converged"), "wall": time.time() - t0,
                         "settings": v}
    rows, base = [], results.get("default")
    for name in args.variants:
        r = results[name]
        d_t = paired(r["fid_inf_sets"], results["target"]["fid_inf_sets"])
        row = {"variant": name, "changes": ", ".join(f"{k} {VARIANTS[name][k]}" for k in VARIANTS[name]) or "-",
               "FID inf": float(np.mean(r["fid_inf_sets"])), "- target": d_t["diff"], "- target se": d_t["se"],
               "RMSE to target": r["rmse"], "iterations": r["iterations"], "converged": r["converged"],
               "train s": r["train_s"]}
        if base is not None and name != "default":
            d_b = paired(r["fid_inf_sets"], base["fid_inf_sets"])
            row |= {"- default": d_b["diff"], "- default se": d_b["se"], "p": d_b["p"]}
        rows.append(row)
    head = (f"NFE {args.nfe}: target FID inf {np.mean(results['target']['fid_inf_sets']):.2f}; "
            + "; ".join(f"{r['variant']} {r['- target']:+.2f}" for r in rows) + " (student - target)")
    write(args.out, f"sfd_recipe_nfe{args.nfe}", f"SFD at NFE {args.nfe}: one recipe change at a time (curve seeds)",
          {"headline": head, "seeds": seeds, "results": results, "base": base}, rows,
          "Paired over the curve seed sets (seeds " + seeds + ", disjoint from the evaluation seeds and the "
          "trajectory pool); '- target': student minus the teacher's trajectory end points on the same seeds; "
          "'- default': the variant minus the default recipe. Training seconds are wall clock on a machine that "
          "may have run other work beside them: compare them only within one run.")


if __name__ == "__main__":
    run(main)
