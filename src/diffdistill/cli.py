"""Command line: one subcommand per Snakemake rule.

Each subcommand parses flags, loads its inputs, calls one library function, and writes
exactly its declared outputs atomically, each with a `.meta.json` sidecar. Errors in
the user's input print one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .io import UserError


def _json_arg(s: str):
    try:
        return json.loads(s)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {s!r} ({e.msg})")


def _bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def _setup(args) -> None:
    import torch

    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(getattr(args, "seed", 0))


def _stop_code(res, iters: int):
    """Exit code when this process must not write outputs: 3 when training stopped
    early on purpose (a rerun resumes), 0 on a secondary data-parallel rank."""
    if res.iterations < iters:
        print(f"stopped at iteration {res.iterations} of {iters}; rerun to resume", file=sys.stderr)
        return 3
    from .distributed import is_main

    return None if is_main() else 0


def _resolved(args) -> dict:
    return {k: v for k, v in vars(args).items() if k != "func"}


def _img_shape(spec) -> tuple:
    """(C, H, W) of a denoiser spec: ours name img_channels, EDM's SongUNet in_channels.
    An SFD-v spec wraps its base denoiser's."""
    while "base" in spec:
        spec = spec["base"]
    nk = spec["net_kwargs"]
    return (nk.get("img_channels", nk.get("in_channels")), nk["img_resolution"], nk["img_resolution"])


def _device(args):
    from .runtime import resolve_device
    return resolve_device(getattr(args, "device", "cpu"))


def _amp(args, device):
    from .runtime import autocast
    return autocast(device, getattr(args, "amp", False))


# -- teacher ----------------------------------------------------------------------------

def cmd_train_teacher(args):
    from .data import load_dataset
    from .distill.trainer import TrainConfig, finish, train
    from .distributed import is_main
    from .io import write_meta
    from .precond import build_denoiser, save_denoiser
    from .teacher import EDMTraining

    images, _ = load_dataset(args.dataset, args.dataset_path)
    spec = {"net": args.net, "precond": "edm", "precond_kwargs": {"sigma_data": args.sigma_data},
            "net_kwargs": {"img_resolution": images.shape[-1], "img_channels": images.shape[1],
                           **args.net_kwargs}}
    model = build_denoiser(spec)
    cfg = TrainConfig(iters=args.iters, lr=args.lr, ema=args.ema, seed=args.seed,
                      ckpt_every=args.ckpt_every, max_iters_this_run=args.max_iters_this_run)
    method = EDMTraining(model, images, args.batch_size, sigma_data=args.sigma_data)
    res = train(method, cfg, Path(args.out).parent, progress=not args.quiet)
    stop = _stop_code(res, args.iters)
    if stop is not None:
        return stop
    save_denoiser(args.out, res.model, spec)
    write_meta(args.out, _resolved(args), args.seed, wall_time=res.wall_time,
               iterations=res.iterations, optimizer_steps=res.optimizer_steps,
               final_loss=res.final_loss, resumed_from=res.resumed_from,
               num_params=sum(p.numel() for p in res.model.parameters()), spec=spec)
    finish(Path(args.out).parent)


# -- feature network and reference statistics -------------------------------------------

def cmd_train_featnet(args):
    from .data import load_dataset
    from .io import write_meta
    from .metrics import save_feature_net, train_feature_net

    t0 = time.perf_counter()
    images, labels = load_dataset(args.dataset, args.dataset_path)
    if (labels < 0).all():
        raise UserError(f"dataset '{args.dataset}' has no labels: the feature classifier needs them")
    model, info = train_feature_net(images, labels, iters=args.iters, batch_size=args.batch_size,
                                    lr=args.lr, seed=args.seed, progress=not args.quiet)
    save_feature_net(args.out, model, info)
    write_meta(args.out, _resolved(args), args.seed, wall_time=time.perf_counter() - t0, featnet=info)
    print(f"feature net: test accuracy {info.get('test_accuracy', info.get('test_acc', float('nan'))):.4f}", file=sys.stderr)


def _extractor(args):
    if args.features == "inception":
        from .metrics import inception_extractor
        return inception_extractor(weights_path=args.inception_weights, device=_device(args))
    from .metrics import load_feature_net, make_feature_extractor
    net, _ = load_feature_net(args.featnet)
    return make_feature_extractor(net).to(_device(args))


def cmd_ref_stats(args):
    """Reference statistics of the dataset, and the floor: real half vs real half.

    With --reference-stats (clean-fid's precomputed Inception statistics of the CIFAR-10
    training set, the papers' protocol) those become the reference; the dataset's own
    features still give the floor and a check of our Inception path against them."""
    import numpy as np
    import torch

    from .data import float_to_uint8, load_dataset
    from .io import atomic_path, write_json, write_meta
    from .metrics import compute_features, feature_stats, fid_from_features, frechet_distance

    images, _ = load_dataset(args.dataset, args.dataset_path)
    feats = compute_features(float_to_uint8(images).numpy(), _extractor(args), args.batch_size,
                             device=_device(args))
    mu, sigma = feature_stats(feats)
    check = {}
    if args.reference_stats:
        from .metrics import inception_reference_stats
        own_mu, own_sigma = mu, sigma
        mu, sigma = inception_reference_stats(stats_path=args.reference_stats)
        check = {"reference_stats": str(args.reference_stats),
                 "fid_dataset_vs_reference": frechet_distance(own_mu, own_sigma, mu, sigma)}
        print(f"FID(dataset features, {args.reference_stats}) = "
              f"{check['fid_dataset_vs_reference']:.4f} (near 0 when the feature paths agree)",
              file=sys.stderr)
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, mu=mu, sigma=sigma, num=len(feats))
    write_meta(args.out, _resolved(args), args.seed, **check)
    floors = []
    for split in range(args.floor_splits):
        perm = torch.randperm(len(feats), generator=torch.Generator().manual_seed(args.seed + split)).numpy()
        half = len(feats) // 2
        floors.append(fid_from_features(feats[perm[:half]], feats[perm[half:2 * half]]))
    write_json(args.floor_out, {"row": "floor", "label": "floor: real half vs real half",
                                "fid": float(np.mean(floors)), "fid_splits": floors,
                                "fid_std": float(np.std(floors)), "num_samples": half})
    write_meta(args.floor_out, _resolved(args), args.seed)


# -- teacher trajectories ---------------------------------------------------------------

def _student_timesteps(args, nfe=None):
    from .schedules import edm_timesteps, num_timestamps
    return edm_timesteps(num_timestamps(args.nfe if nfe is None else nfe, args.afs), args.t_min, args.t_max, args.rho)


def cmd_trajectories(args):
    from .io import torch_save, write_meta
    from .precond import load_denoiser
    from .seeding import parse_seeds
    from .trajectories import cache_key, generate

    device = _device(args)
    model, spec = load_denoiser(args.teacher, device=device)
    seeds = parse_seeds(args.seeds)
    student_t = _student_timesteps(args)
    t0 = time.perf_counter()
    with _amp(args, device):
        states = generate(model, seeds, student_t, args.K, args.solver, args.final_step, args.thresholding,
                          args.batch_size, _img_shape(spec), progress=not args.quiet, rho=args.rho,
                          device=device, teacher_afs=args.teacher_afs).cpu()
    wall = time.perf_counter() - t0
    from .io import read_meta
    key = cache_key(teacher=read_meta(args.teacher).get("git_revision"), teacher_path=args.teacher,
                    solver=args.solver, K=args.K, final_step=args.final_step, thresholding=args.thresholding,
                    timesteps=student_t.tolist(), seeds=args.seeds, teacher_afs=args.teacher_afs)
    teacher_nfe = len(seeds) * (args.K * (len(student_t) - 1) - int(args.teacher_afs))
    torch_save(args.out, {"states": states.float(), "timesteps": student_t, "seeds": seeds, "key": key})
    write_meta(args.out, _resolved(args), None, wall_time=wall, cache_key=key, teacher_nfe=teacher_nfe,
               size_bytes=Path(args.out).stat().st_size, num_trajectories=len(seeds),
               timesteps=student_t.tolist())
    print(f"{len(seeds)} trajectories in {wall:.1f} s, {Path(args.out).stat().st_size / 2**20:.1f} MiB",
          file=sys.stderr)


# -- distillation -----------------------------------------------------------------------

def _sfd_batches(args, path, student_t, teacher, spec, device):
    """(TrajectoryBatches, teacher NFE per drawn trajectory) from a cache file, or a
    maker of fresh teacher trajectories when `path` is None."""
    import torch

    from .io import torch_load
    from .trajectories import TrajectoryBatches, generate

    if path:
        cache = torch_load(path)
        if not torch.allclose(cache["timesteps"], student_t):
            raise UserError(f"{path} was made for timesteps {cache['timesteps'].tolist()}, "
                            f"not {student_t.tolist()}")
        return TrajectoryBatches(states=cache["states"].to(device)), 0
    shape = _img_shape(spec)
    return TrajectoryBatches(make_fresh=lambda seeds: generate(
        teacher, seeds, student_t, args.K, args.solver, args.final_step, args.thresholding,
        len(seeds), shape, progress=False, rho=args.rho, device=device)), args.K * (len(student_t) - 1)


def _curve_evaluator(args, student_t, spec, device, model_kwargs=None):
    """FID on fixed seeds during training (--curve-out), or None."""
    if not args.curve_out:
        return None
    from .curves import fid_evaluator
    from .seeding import parse_seeds
    if not (args.featnet or args.features == "inception") or not args.ref:
        raise UserError("--curve-out needs --ref and the feature network (--featnet or --features inception)")
    return fid_evaluator(_extractor(args), args.ref, parse_seeds(args.curve_seeds), student_t, args.afs,
                         _img_shape(spec), batch_size=500, device=device, model_kwargs=model_kwargs)


def _write_curve(args, res, nfe, label):
    if not args.curve_out:
        return
    from .curves import write_curve
    from .io import write_meta
    from .seeding import parse_seeds
    write_curve(args.curve_out, res.curve, row=str(Path(args.out).parent), label=label, nfe=nfe,
                seeds=args.curve_seeds, num_samples=len(parse_seeds(args.curve_seeds)))
    write_meta(args.curve_out, _resolved(args), args.seed)


def cmd_distill(args):
    from .distill.sfd import SFD
    from .distill.trainer import TrainConfig, finish, train
    from .io import read_meta, write_meta
    from .precond import load_denoiser, save_denoiser

    device = _device(args)
    teacher, spec = load_denoiser(args.teacher, device=device)
    student_t = _student_timesteps(args)
    batches, per_traj_nfe = _sfd_batches(args, args.trajectories, student_t, teacher, spec, device)
    student, _ = load_denoiser(args.teacher, device=device)
    method = SFD(student, batches, student_t, args.batch_size, afs=args.afs, loss=args.loss,
                 teacher_nfe_per_traj=per_traj_nfe)
    cfg = TrainConfig(iters=args.iters, lr=args.lr, lr_schedule=args.lr_schedule, seed=args.seed,
                      ckpt_every=args.ckpt_every, max_iters_this_run=args.max_iters_this_run,
                      eval_every=args.curve_every if args.curve_out else 0, ema=args.ema)
    with _amp(args, device):
        res = train(method, cfg, Path(args.out).parent, progress=not args.quiet,
                    evaluate=_curve_evaluator(args, student_t, spec, device))
    stop = _stop_code(res, args.iters)
    if stop is not None:
        return stop
    counters = dict(res.counters)
    if args.trajectories:  # the cache's teacher cost, paid once
        counters["teacher_nfe"] = read_meta(args.trajectories).get("teacher_nfe", 0)
    stage = {}
    from .io import meta_path
    tm = read_meta(args.teacher) if meta_path(args.teacher).exists() else {}
    if tm.get("method") == "sfd":
        # second stage: a stage-1 student teaches; the time to reach this model includes it
        stage = {"stage": 2, "cumulative_wall_time": tm.get("cumulative_wall_time", tm["wall_time"]) + res.wall_time}
    save_denoiser(args.out, res.model, spec, sampling={"solver": "euler", "nfe": args.nfe, "afs": args.afs,
                                                       "timesteps": student_t.tolist()})
    write_meta(args.out, _resolved(args), args.seed, method="sfd", nfe=args.nfe, wall_time=res.wall_time,
               iterations=res.iterations, optimizer_steps=res.optimizer_steps, final_loss=res.final_loss,
               resumed_from=res.resumed_from, **stage, **counters)
    _write_curve(args, res, args.nfe, f"SFD NFE {args.nfe}")
    finish(Path(args.out).parent)


def cmd_distill_sfdv(args):
    """SFD-v: one step-conditioned student for every NFE in --nfe, trained on the
    per-NFE trajectory caches (one per NFE, same order)."""
    from .distill.sfd import SFD
    from .distill.sfdv import SFDV, from_teacher, step_conditioned_spec
    from .distill.trainer import TrainConfig, finish, train
    from .io import read_meta, write_meta
    from .precond import load_denoiser, save_denoiser

    if len(args.trajectories) != len(args.nfe):
        raise UserError(f"--trajectories gives {len(args.trajectories)} caches for {len(args.nfe)} NFE values")
    device = _device(args)
    teacher, base_spec = load_denoiser(args.teacher, device=device)
    student = from_teacher(teacher, embed_dim=args.embed_dim).to(device)
    per_nfe = {}
    for nfe, path in zip(args.nfe, args.trajectories):
        ts = _student_timesteps(args, nfe)
        batches, _ = _sfd_batches(args, path, ts, teacher, base_spec, device)
        per_nfe[len(ts)] = SFD(student, batches, ts, args.batch_size, afs=args.afs, loss=args.loss)
    method = SFDV(student, per_nfe)
    cfg = TrainConfig(iters=args.iters, lr=args.lr, lr_schedule=args.lr_schedule, seed=args.seed,
                      ckpt_every=args.ckpt_every, max_iters_this_run=args.max_iters_this_run,
                      ema=args.ema)
    with _amp(args, device):
        res = train(method, cfg, Path(args.out).parent, progress=not args.quiet)
    stop = _stop_code(res, args.iters)
    if stop is not None:
        return stop
    spec = step_conditioned_spec(base_spec, args.embed_dim, args.nfe)
    counters = dict(res.counters)
    counters["teacher_nfe"] = sum(read_meta(p).get("teacher_nfe", 0) for p in args.trajectories)
    save_denoiser(args.out, res.model, spec, sampling={"solver": "euler", "nfe": list(args.nfe), "afs": args.afs})
    write_meta(args.out, _resolved(args), args.seed, method="sfdv", nfe=list(args.nfe), wall_time=res.wall_time,
               iterations=res.iterations, optimizer_steps=res.optimizer_steps, final_loss=res.final_loss,
               resumed_from=res.resumed_from, **counters)
    finish(Path(args.out).parent)


# -- sampling and FID -------------------------------------------------------------------

def cmd_sample(args):
    import numpy as np

    from .io import atomic_path, write_meta
    from .precond import load_denoiser
    from .sampling import generate_images, sampling_timesteps, save_grid, to_uint8
    from .seeding import parse_seeds

    device = _device(args)
    model, spec = load_denoiser(args.model, device=device)
    ts = sampling_timesteps(args.solver, args.nfe, args.afs, args.t_min, args.t_max, args.rho,
                            append_zero=args.append_zero)
    if args.pd_grid:  # Progressive Distillation's nested grid: nfe steps ending at 0
        from .distill.pd import pd_timesteps
        ts = pd_timesteps(args.nfe, args.t_min, args.t_max, args.rho)
    if spec.get("kind") == "stepcond":  # SFD-v: the model is told how many timestamps it takes
        model.num_steps = len(ts)
    seeds = parse_seeds(args.seeds)
    t0 = time.perf_counter()
    with _amp(args, device):
        imgs = to_uint8(generate_images(model, seeds, ts, args.solver, args.afs, args.final_step,
                                        args.batch_size, _img_shape(spec), progress=not args.quiet,
                                        device=device))
    wall = time.perf_counter() - t0
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, images=imgs, seeds=np.asarray(seeds))
    write_meta(args.out, _resolved(args), None, wall_time=wall, timesteps=ts.tolist(),
               images_per_second=len(seeds) / wall)
    if args.grid:
        save_grid(args.grid, imgs[:args.grid_count])


def _load_samples(path, num):
    import numpy as np

    from .data import float_to_uint8
    from .io import torch_load

    if str(path).endswith(".pt"):  # a trajectory cache: its end points
        states = torch_load(path)["states"]
        return float_to_uint8(states[:num, -1]).numpy()
    if not Path(path).exists():
        raise UserError(f"samples file not found: {path}")
    with np.load(path) as z:
        return z["images"][:num]


def cmd_fid(args):
    from .io import write_json, write_meta
    from .metrics import fid_to_stats, load_stats

    imgs = _load_samples(args.samples, args.num_samples)
    fid = fid_to_stats(imgs, _extractor(args), *load_stats(args.ref), args.batch_size, device=_device(args))
    write_json(args.out, {"row": args.row, "label": args.label or args.row, "nfe": args.nfe, "fid": fid,
                          "num_samples": len(imgs), "samples": str(args.samples), "model": args.model_meta})
    write_meta(args.out, _resolved(args), None)
    print(f"{args.row} NFE {args.nfe}: FID {fid:.3f}", file=sys.stderr)


def cmd_fetch(args):
    from .fetch import fetch
    from .io import write_meta

    t0 = time.perf_counter()
    dest = fetch(args.url, args.out, what=args.what)
    write_meta(dest, _resolved(args), None, wall_time=time.perf_counter() - t0,
               size_bytes=dest.stat().st_size)
    print(f"{args.what}: {args.url} -> {dest}", file=sys.stderr)


def cmd_table(args):
    from .report import write_tables
    write_tables(args.fid, args.out_dir, floor=args.floor, o2mkd_fid=args.o2mkd_fid,
                 o2mkd_profile=args.o2mkd_profile)


def cmd_ablation_table(args):
    from .report import parse_ablation_spec, write_ablation_dir
    write_ablation_dir(args.out_dir, [parse_ablation_spec(a) for a in args.ablation], args.ablation_default)


def cmd_figures(args):
    from .figures import write_figures
    from .report import parse_ablation_spec

    def pair(spec):
        if "=" not in spec:
            raise UserError(f"--samples entry {spec!r} is not label=path")
        return tuple(spec.rsplit("=", 1))
    write_figures(args.fid, args.out_dir, floor=args.floor, reference_label=args.reference_label,
                  curves=[parse_ablation_spec(c) for c in args.curve or []],
                  samples=[pair(x) for x in args.samples or []])


# -- parser -----------------------------------------------------------------------------

def _common(p, seed=True):
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    if seed:
        p.add_argument("--seed", type=int, default=0)


def _run_on(p, amp=True):
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    if amp:
        p.add_argument("--amp", type=_bool, default=False, help="bfloat16 autocast of network calls")


def _data(p):
    p.add_argument("--dataset", default="digits")
    p.add_argument("--dataset-path", default=None)


def _schedule(p, many_nfe: bool = False):
    if many_nfe:
        p.add_argument("--nfe", type=int, nargs="+", required=True, help="NFE values the student serves")
    else:
        p.add_argument("--nfe", type=int, required=True)
    p.add_argument("--afs", type=_bool, default=True)
    p.add_argument("--t-min", type=float, default=0.006)
    p.add_argument("--t-max", type=float, default=80.0)
    p.add_argument("--rho", type=float, default=7.0)


def _teacher_solver(p):
    p.add_argument("--K", type=int, default=4, help="teacher steps between student timestamps")
    p.add_argument("--solver", default="dpmpp3m")
    p.add_argument("--final-step", default="force", choices=["force", "dpm", "off"])
    p.add_argument("--thresholding", type=_bool, default=True)


def _train(p, iters, lr):
    p.add_argument("--iters", type=int, default=iters)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--max-iters-this-run", type=int, default=None, help=argparse.SUPPRESS)


def _sfd_train(p):
    p.add_argument("--loss", default="l1", choices=["l1", "l2"])
    p.add_argument("--ema", type=float, default=None, help="EMA decay of the exported student (none: SFD's setting)")
    p.add_argument("--lr-schedule", default="step", choices=["constant", "step", "linear"])
    p.add_argument("--out", required=True)


def _feature_source(p):
    p.add_argument("--features", default="classifier", choices=["classifier", "inception"])
    p.add_argument("--featnet", default=None, help="feature classifier checkpoint (features=classifier)")
    p.add_argument("--inception-weights", default=None, help="local inception-2015-12-05.pt")


def _curve(p):
    p.add_argument("--curve-out", default=None, help="write the FID-during-training curve (JSON) here")
    p.add_argument("--curve-every", type=int, default=100, help="iterations between curve points")
    p.add_argument("--curve-seeds", default="0-499", help="fixed evaluation seeds of the curve")
    p.add_argument("--ref", default=None, help="reference statistics (.npz) of the curve's FID")
    _feature_source(p)


def _features(p):
    _feature_source(p)
    p.add_argument("--batch-size", type=int, default=500)
    _run_on(p, amp=False)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="diffdistill", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train-teacher", help="train an EDM-preconditioned teacher")
    _common(p); _data(p); _train(p, 2500, 1e-3)
    p.add_argument("--net", default="unet")
    p.add_argument("--net-kwargs", type=_json_arg, default={})
    p.add_argument("--sigma-data", type=float, default=0.5)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_train_teacher)

    p = sub.add_parser("train-featnet", help="train the FID feature classifier")
    _common(p); _data(p)
    p.add_argument("--iters", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_train_featnet)

    p = sub.add_parser("ref-stats", help="reference feature statistics and the real-vs-real floor")
    _common(p); _data(p); _features(p)
    p.add_argument("--floor-splits", type=int, default=3)
    p.add_argument("--reference-stats", default=None,
                   help="clean-fid statistics .npz (mu, sigma) to use as the reference")
    p.add_argument("--out", required=True)
    p.add_argument("--floor-out", required=True)
    p.set_defaults(func=cmd_ref_stats)

    p = sub.add_parser("trajectories", help="teacher trajectories at the student timestamps (cache)")
    _common(p, seed=False); _schedule(p); _teacher_solver(p); _run_on(p)
    p.add_argument("--teacher", required=True)
    p.add_argument("--seeds", required=True, help="noise seeds, e.g. 100000-104999")
    p.add_argument("--teacher-afs", type=_bool, default=False,
                   help="the teacher's first step is analytical (SFD's second stage: a stage-1 student teaches)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_trajectories)

    p = sub.add_parser("distill", help="SFD distillation of one student")
    _common(p); _schedule(p); _teacher_solver(p); _train(p, 300, 1e-4); _run_on(p)
    p.add_argument("--method", default="sfd", choices=["sfd"])
    p.add_argument("--teacher", required=True)
    p.add_argument("--trajectories", default=None, help="cache file; omitted = regenerate per batch")
    _sfd_train(p)
    _curve(p)
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("distill-sfdv", help="SFD-v: one student for several NFE")
    _common(p); _schedule(p, many_nfe=True); _teacher_solver(p); _train(p, 600, 3e-4); _run_on(p)
    p.add_argument("--teacher", required=True)
    p.add_argument("--trajectories", nargs="+", required=True, help="one cache per --nfe value, same order")
    p.add_argument("--embed-dim", type=int, default=32, help="width of the step-count positional embedding")
    _sfd_train(p)
    p.set_defaults(func=cmd_distill_sfdv)

    p = sub.add_parser("sample", help="generate images for a list of seeds")
    _common(p, seed=False); _schedule(p); _run_on(p)
    p.add_argument("--model", required=True)
    p.add_argument("--solver", default="euler")
    p.add_argument("--final-step", default="force", choices=["force", "dpm", "off"])
    p.add_argument("--append-zero", type=_bool, default=False, help="EDM convention: end at sigma 0")
    p.add_argument("--pd-grid", type=_bool, default=False, help="Progressive Distillation's nested grid")
    p.add_argument("--seeds", default="0-1999")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--out", required=True)
    p.add_argument("--grid", default=None, help="PNG grid of the first images")
    p.add_argument("--grid-count", type=int, default=100)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("fid", help="FID of samples against reference statistics")
    _common(p, seed=False); _features(p)
    p.add_argument("--samples", required=True, help="samples .npz, or a trajectory cache .pt (end points)")
    p.add_argument("--num-samples", type=int, default=2000)
    p.add_argument("--ref", required=True)
    p.add_argument("--row", required=True)
    p.add_argument("--label", default=None)
    p.add_argument("--nfe", type=int, default=None)
    p.add_argument("--model-meta", default=None, help="meta JSON of the model (wall time, costs)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_fid)

    p = sub.add_parser("fetch", help="download one input file (teacher, dataset, FID files)")
    p.add_argument("--url", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--what", default="file", help="what it is, for the error message")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("table", help="render the result tables")
    p.add_argument("--fid", nargs="+", required=True, help="FID JSON files")
    p.add_argument("--floor", default=None)
    p.add_argument("--o2mkd-fid", nargs="*", default=None, help="FID JSONs of the O2MKD table")
    p.add_argument("--o2mkd-profile", default=None, help="profile-models JSON of the O2MKD table")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("ablation-table", help="render the SFD ablation table")
    p.add_argument("--ablation", nargs="+", required=True, help="factor=value=FID-JSON of each row (default==path first)")
    p.add_argument("--ablation-default", default="", help="description of the default row")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_ablation_table)

    p = sub.add_parser("figures", help="render the figures (PNG and PDF)")
    p.add_argument("--fid", nargs="+", required=True, help="FID JSON files")
    p.add_argument("--floor", default=None)
    p.add_argument("--reference-label", default=None, help="label of the high-NFE reference row (a line)")
    p.add_argument("--curve", nargs="*", default=None, help="factor=value=FID-curve JSON of each ablation run")
    p.add_argument("--samples", nargs="*", default=None, help="label=samples.npz rows of the sample figure")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_figures)

    try:
        from .edm_import import register_cli
        register_cli(sub)
    except ImportError:
        pass
    from .distill.commands import register_cli as register_pd_o2mkd
    register_pd_o2mkd(sub)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "threads"):
            _setup(args)
        return args.func(args) or 0
    except UserError as e:
        print(f"diffdistill {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"diffdistill {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
