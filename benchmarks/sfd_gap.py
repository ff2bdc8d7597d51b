"""Where an SFD student's gap to its own target arises, step by step, on curve seeds.

For each NFE the teacher's trajectory (its states at the student's timestamps, the same
DPM-Solver++ cache SFD trains on) is computed for the curve seeds. Then:

- per step, the student's Euler step taken from the teacher's state (teacher-forced):
  the pixel RMSE of where it lands against the teacher's next state;
- per start j, a hybrid: the teacher's state at timestamp j, the student finishing from
  there (j = 0: the whole student, AFS first step included). Its FID at infinite n
  minus the target's, paired over the seed sets, and the RMSE to the target at every
  later timestamp. The step after which the gap appears is the step that makes it;
- the whole student's end points against the target's: the least-squares slope of
  student on target pixels (below 1: lost contrast) and the mean squared difference of
  neighbouring pixels (sharpness).

    python -m benchmarks.sfd_gap --nfe 2 3 4 5 --out results/benchmark-runs

`--model` names the students (a `{nfe}` in it is filled in; default the main job's);
any denoiser checkpoint with Euler steps works, for example an O2MKD x SFD router of
full-width students (one network per step: the capacity a shared network lacks), and
`--teacher` takes the students of another teacher (for example a wider one).
Needs the main job's teacher, feature network and reference statistics.
"""
from __future__ import annotations

import argparse
import hashlib
import tempfile
from pathlib import Path

from .common import config_option, markdown, run, schedule_tag, sfd_schedule, validated_config, write
from .sfd_recipe import FEATNET, REF, TEACHER, cache, curve_seed_range, evaluate

MODEL = "results/students/sfd/default/nfe{nfe}/model.pt"


def decompose(denoise, states, ts, afs: bool = True) -> dict:
    """Teacher-forced steps and hybrids of a student `denoise(x, t)` against the teacher's
    `states` [n, len(ts), ...] at the student's timestamps `ts`, each run by the solvers'
    one driver (Euler).

    Returns {"forced": [RMSE of step i from the teacher's state i, for each network step],
    "hybrids": [{"start": j, "final": end points, "path": [RMSE to the teacher at
    timestamps j+1 ..]} for each start j]}. With AFS, step 0 is analytical: it has no
    teacher-forced entry, and start 0 takes it from the teacher's first state (the noise).
    """
    from diffdistill.curves import rmse
    from diffdistill.solvers import sample

    n = len(ts) - 1
    forced = [{"step": i, "t": ts[i], "t_next": ts[i + 1],
               "rmse": rmse(sample(denoise, states[:, i], ts[i:i + 2]), states[:, i + 1])}
              for i in range(1 if afs else 0, n)]
    hybrids = []
    for j in range(n):
        path = []
        final = sample(denoise, states[:, j], ts[j:], afs=afs and j == 0,
                       callback=lambda i, x, t, t_next, d, x_next: path.append(rmse(x_next, states[:, j + i + 1])))
        hybrids.append({"start": j, "t": ts[j], "final": final, "path": path})
    return {"forced": forced, "hybrids": hybrids}


def contrast(student, target) -> dict:
    """Slope of student on target pixels (1: same contrast) and each one's sharpness."""
    a, b = target.flatten().double(), student.flatten().double()
    slope = float(((a - a.mean()) * (b - b.mean())).mean() / ((a - a.mean()) ** 2).mean())
    sharp = lambda x: float(((x[..., 1:, :] - x[..., :-1, :]) ** 2).mean())  # noqa: E731
    return {"slope": slope, "sharpness": sharp(student), "target sharpness": sharp(target)}


def teacher_states(work: Path, teacher: str, nfe: int, seeds: str, schedule, solver: str, threads: int):
    """The teacher's states at the student's timestamps for `seeds` (cached in `work`, one
    folder per teacher file, solver and schedule)."""
    from diffdistill.trajectories import load_cache

    tag = hashlib.sha1(str(Path(teacher).resolve()).encode()).hexdigest()[:8]
    path = cache(work / f"{tag}-{solver}-{schedule_tag(schedule)}", nfe, seeds, threads, teacher=teacher,
                 schedule=schedule, solver=solver)
    return load_cache(path)["states"].float()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nfe", type=int, nargs="+", help="the students' NFE (default: the config's sfd.nfe)")
    ap.add_argument("--model", default=MODEL, help="student checkpoint; {nfe} is filled in (default: %(default)s)")
    ap.add_argument("--teacher", default=TEACHER, help="the students' teacher (default: %(default)s)")
    ap.add_argument("--label", default="SFD", help="the students' name in the table")
    ap.add_argument("--curve-seed-start", type=int, default=2000000)
    ap.add_argument("--sets", type=int, default=5)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", help="keep the teacher's curve-seed caches here (default: a temporary folder)")
    config_option(ap)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import torch

    from diffdistill.errors import UserError

    cfg, schedule = validated_config(args.config), sfd_schedule(args.config)
    args.nfe = args.nfe or cfg["sfd"]["nfe"]
    for path in [args.teacher, FEATNET, REF, *(args.model.format(nfe=n) for n in args.nfe)]:
        if not Path(path).is_file():
            raise UserError(f"{path}: no such file (the main job builds the teacher, the feature network, the "
                            "reference statistics and the students: snakemake --cores all results/tables)")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        measure(args, cfg, schedule, work)


def measure(args, cfg: dict, schedule, work: Path) -> None:
    import numpy as np
    import torch

    from diffdistill.methods.sfd.train import student_timesteps
    from diffdistill.precond import load_denoiser
    from diffdistill.sampling import to_uint8
    from diffdistill.stats import paired_rows

    solver = cfg["trajectories"]["solver"]
    seeds = curve_seed_range(args)
    u8 = lambda x: to_uint8(x).astype(np.uint8)  # noqa: E731
    rows, steps, data = [], [], {"seeds": seeds, "solver": solver, "t_min": schedule.t_min, "nfe": {}}
    for nfe in args.nfe:
        states = teacher_states(work, args.teacher, nfe, seeds, schedule, solver, args.threads)
        ts = [float(t) for t in student_timesteps(nfe, True, schedule)]
        net, _ = load_denoiser(args.model.format(nfe=nfe))
        net.eval()

        def denoise(x, t):
            with torch.inference_mode():
                return torch.cat([net(x[k:k + 500], torch.full((len(x[k:k + 500]),), float(t)))
                                  for k in range(0, len(x), 500)])

        target = u8(states[:, -1])
        tgt = evaluate(target, None, args)
        parts = decompose(denoise, states, ts)
        for f in parts["forced"]:
            steps.append({"NFE": nfe, "step": f"{f['t']:.3g} -> {f['t_next']:.3g}",
                          "RMSE from the teacher's state": f["rmse"]})
        for h in parts["hybrids"]:
            r = evaluate(u8(h["final"]), target, args)
            d = paired_rows(r, tgt)  # as the tables: the FID-at-infinite-n fits' own noise included
            start = "noise (whole student)" if h["start"] == 0 else f"teacher's state at t = {h['t']:.3g}"
            rows.append({"NFE": nfe, "student from": start, "FID inf": float(np.mean(r["fid_inf_sets"])),
                         "- target": d["diff"], "se": d["se"], "p": d["p"], "RMSE to target": r["rmse"],
                         "RMSE at each later timestamp": " ".join(f"{v:.3f}" for v in h["path"])})
        data["nfe"][nfe] = {"timesteps": ts, "target FID inf": float(np.mean(tgt["fid_inf_sets"])),
                            **contrast(parts["hybrids"][0]["final"].clamp(-1, 1), states[:, -1].clamp(-1, 1))}
    head = "; ".join(f"NFE {n}: target {v['target FID inf']:.2f}, contrast slope {v['slope']:.4f}"
                     for n, v in data["nfe"].items())
    write(args.out, "sfd_gap", f"{args.label}: where the gap to the target arises (curve seeds)",
          {"headline": head, "model": args.model, "teacher": args.teacher, "steps": steps, **data}, rows,
          "Paired over the curve seed sets (seeds " + seeds + ", disjoint from the evaluation seeds and the "
          "trajectory pool). 'student from': the teacher's trajectory state the student starts from (its "
          "analytical first step when from the noise); '- target': FID at infinite n minus the target's (the "
          "teacher's trajectory end points on the same seeds). The first start whose row has no gap names the "
          "step that makes it.\n\nTeacher-forced steps (one student step from the teacher's state):\n\n"
          + markdown(steps))


if __name__ == "__main__":
    run(main)
