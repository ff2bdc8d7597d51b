"""Subcommands of Progressive Distillation and O2MKD: `distill-pd` (one halving round),
`distill-o2mkd` (N students, N = 1 is the one-to-one baseline) and `profile-models`
(parameters, MACs per step, sampling throughput). Registered into `diffdistill.cli`."""
from __future__ import annotations

import sys
import time
from pathlib import Path



def _train_cfg(args):
    from .trainer import TrainConfig
    return TrainConfig(iters=args.iters, lr=args.lr, lr_schedule=args.lr_schedule, grad_clip=args.grad_clip,
                       seed=args.seed, ckpt_every=args.ckpt_every, max_iters_this_run=args.max_iters_this_run)


def _stop_code(res, args):
    from ..cli import _stop_code as stop_code
    return stop_code(res, args.iters)


def _previous_pd_costs(teacher_path) -> dict:
    """Costs of the PD rounds before this one (zero when the teacher is the trained one)."""
    from ..io import meta_path, read_meta
    if not meta_path(teacher_path).exists():
        return {"wall_time": 0.0, "teacher_nfe": 0, "optimizer_steps": 0}
    m = read_meta(teacher_path)
    if m.get("method") != "pd":
        return {"wall_time": 0.0, "teacher_nfe": 0, "optimizer_steps": 0}
    return {"wall_time": m["cumulative_wall_time"], "teacher_nfe": m["cumulative_teacher_nfe"],
            "optimizer_steps": m["cumulative_optimizer_steps"]}


def cmd_distill_pd(args):
    from ..cli import _resolved
    from ..data import load_dataset
    from ..io import write_meta
    from ..precond import load_denoiser, save_denoiser
    from .pd import ProgressiveDistillation
    from .trainer import finish, train

    teacher, spec = load_denoiser(args.teacher)
    student, _ = load_denoiser(args.teacher)
    images, _ = load_dataset(args.dataset, args.dataset_path)
    method = ProgressiveDistillation(student, teacher, images, args.nfe, args.batch_size,
                                     args.t_min, args.t_max, args.rho)
    res = train(method, _train_cfg(args), Path(args.out).parent, progress=not args.quiet)
    stop = _stop_code(res, args)
    if stop is not None:
        return stop
    prev = _previous_pd_costs(args.teacher)
    save_denoiser(args.out, res.model, spec, sampling={"solver": "euler", "nfe": args.nfe, "afs": False,
                                                       "timesteps": method.student_t.tolist()})
    write_meta(args.out, _resolved(args), args.seed, method="pd", nfe=args.nfe, wall_time=res.wall_time,
               iterations=res.iterations, optimizer_steps=res.optimizer_steps, final_loss=res.final_loss,
               resumed_from=res.resumed_from, timesteps=method.student_t.tolist(), **res.counters,
               cumulative_wall_time=prev["wall_time"] + res.wall_time,
               cumulative_teacher_nfe=prev["teacher_nfe"] + res.counters["teacher_nfe"],
               cumulative_optimizer_steps=prev["optimizer_steps"] + res.optimizer_steps)
    finish(Path(args.out).parent)


def cmd_distill_o2mkd(args):
    import torch

    from ..cli import _resolved
    from ..data import load_dataset
    from ..io import write_meta
    from ..precond import build_denoiser, load_denoiser, save_denoiser
    from .o2mkd import O2MKD, router_spec, split_boundaries
    from .trainer import finish, train

    teacher, tspec = load_denoiser(args.teacher)
    images, _ = load_dataset(args.dataset, args.dataset_path)
    nk = tspec["net_kwargs"]
    student_spec = {"net": tspec["net"], "precond": tspec["precond"],
                    "precond_kwargs": dict(tspec.get("precond_kwargs", {})),
                    "net_kwargs": {"img_resolution": nk["img_resolution"], "img_channels": nk["img_channels"],
                                   **args.student_kwargs}}
    bounds = split_boundaries(args.num_students, args.split, args.t_min, args.t_max, args.rho, args.split_grid)
    spec = router_spec(student_spec, args.num_students, bounds)
    torch.manual_seed(args.seed)
    router = build_denoiser(spec)
    method = O2MKD(router, teacher, images, args.batch_size, args.t_min, args.t_max, args.rho, kd=args.kd,
                   feature_weight=args.feature_weight,
                   sigma_data=float(tspec.get("precond_kwargs", {}).get("sigma_data", 0.5)))
    res = train(method, _train_cfg(args), Path(args.out).parent, progress=not args.quiet)
    stop = _stop_code(res, args)
    if stop is not None:
        return stop
    save_denoiser(args.out, res.model, spec)
    write_meta(args.out, _resolved(args), args.seed, method="o2mkd", num_students=args.num_students,
               boundaries=bounds, wall_time=res.wall_time, iterations=res.iterations,
               optimizer_steps=res.optimizer_steps, final_loss=res.final_loss, resumed_from=res.resumed_from,
               num_params=sum(p.numel() for p in res.model.parameters()),
               params_per_student=sum(p.numel() for p in res.model.students[0].parameters()), **res.counters)
    finish(Path(args.out).parent)


def cmd_profile_models(args):
    """Parameters, MACs per step and sampling throughput of each model, measured one
    after the other in this process (so the ratios against the first one are fair)."""
    from ..cli import _resolved
    from ..io import write_json, write_meta
    from ..precond import load_denoiser
    from ..sampling import generate_images, sampling_timesteps
    from ..seeding import noise_for_seeds
    from ..cli import _img_shape
    from .o2mkd import Router, count_macs

    ts = sampling_timesteps("euler", args.nfe, False, args.t_min, args.t_max, args.rho)
    rows = []
    for path in args.models:
        model, spec = load_denoiser(path)
        shape = _img_shape(spec)
        x = noise_for_seeds([0], shape)
        # a router runs one student per step: its MACs per step are its largest student's
        nets = list(model.students) if isinstance(model, Router) else [model]
        macs = max(count_macs(n, x, 1.0) for n in nets)
        params_step = max(sum(p.numel() for p in n.parameters()) for n in nets)
        seeds = list(range(args.num_images))
        generate_images(model, seeds[:args.batch_size], ts, "euler", batch_size=args.batch_size,
                        img_shape=shape, progress=False)  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            generate_images(model, seeds, ts, "euler", batch_size=args.batch_size, img_shape=shape,
                            progress=False)
            best = min(best, time.perf_counter() - t0)
        rows.append({"model": str(path), "params_total": sum(p.numel() for p in model.parameters()),
                     "params_per_step": params_step, "macs_per_step": macs,
                     "images_per_second": args.num_images / best, "nfe": args.nfe})
        print(f"{path}: {macs / 1e6:.2f} M MACs/step, {args.num_images / best:.0f} images/s", file=sys.stderr)
    write_json(args.out, {"rows": rows, "threads": args.threads})
    write_meta(args.out, _resolved(args), None)


def register_cli(sub) -> None:
    from ..cli import _common, _data, _json_arg, _train

    def schedule(p):
        p.add_argument("--t-min", type=float, default=0.006)
        p.add_argument("--t-max", type=float, default=80.0)
        p.add_argument("--rho", type=float, default=7.0)

    def train_extra(p, schedule_default):
        p.add_argument("--lr-schedule", default=schedule_default, choices=["constant", "step", "linear"])
        p.add_argument("--grad-clip", type=float, default=None)
        p.add_argument("--teacher", required=True)
        p.add_argument("--out", required=True)

    p = sub.add_parser("distill-pd", help="one Progressive Distillation round (2N -> N steps)")
    _common(p); _data(p); _train(p, 300, 1e-4); schedule(p); train_extra(p, "linear")
    p.add_argument("--nfe", type=int, required=True, help="student steps N (the teacher takes 2N)")
    p.set_defaults(func=cmd_distill_pd)

    p = sub.add_parser("distill-o2mkd", help="O2MKD: N small students over noise ranges (N = 1: one-to-one KD)")
    _common(p); _data(p); _train(p, 400, 2e-3); schedule(p); train_extra(p, "step")
    p.add_argument("--num-students", type=int, required=True)
    p.add_argument("--split", default="rho", choices=["log_sigma", "rho", "steps"])
    p.add_argument("--split-grid", type=int, default=18, help="timestamps of the grid for split=steps")
    p.add_argument("--student-kwargs", type=_json_arg, default={"model_channels": 16},
                   help="backbone arguments of each student (JSON)")
    p.add_argument("--kd", default="output", choices=["output", "output+feature"])
    p.add_argument("--feature-weight", type=float, default=1.0)
    p.set_defaults(func=cmd_distill_o2mkd)

    p = sub.add_parser("profile-models", help="parameters, MACs per step and sampling throughput")
    _common(p, seed=False); schedule(p)
    p.add_argument("--models", nargs="+", required=True, help="checkpoints; the first is the reference")
    p.add_argument("--nfe", type=int, default=10, help="Euler steps of the timed sampling")
    p.add_argument("--num-images", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_profile_models)
