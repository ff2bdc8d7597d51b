"""GPU check: the CIFAR-10 path on one CUDA machine, measured against the papers' figures.

One command runs, on the device it is given:
1. the CIFAR-10 smoke DAG (config/cifar10-smoke.yaml, inputs made by
   tests/make_cifar10_smoke.py, nothing downloaded) end to end in a copy of the workflow,
   and checks that every table is written (`--tiny`: a dry run that plans every rule);
2. one SFD iteration (NFE 2, AFS, L1, Adam) of the full-size CIFAR-10 network (EDM's
   DDPM++ SongUNet with config/cifar10.yaml's arguments, random weights) at batch 128,
   in float32 and with bfloat16 autocast: seconds per iteration, and the hours for SFD's
   ~1563 iterations beside the paper's 0.64 A100-hours;
3. sampling at NFE 2 and 35 (Euler with AFS; EDM's Heun) and Inception feature
   extraction, images per second and peak GPU memory of each;
4. data-parallel training: 2 processes (nccl) when there are 2 GPUs, else 1 process
   (gloo on a CPU), whose averaged gradients must equal one process's gradients on the
   whole batch to float32 rounding;
and writes <out>/gpu_check.json and <out>/gpu_check.md naming the device.

    python -m benchmarks.gpu_check --device cuda --out results/benchmark-runs
    python -m benchmarks.gpu_check --device cpu --tiny --out /tmp/gpu-check   # the same paths, toy sizes

`--tiny` keeps every code path at toy size (the digits network, a handful of images) so
that the fast test tier runs the script and it cannot rot between GPU runs.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp
from .common import config_schedule, machine, run, write
from .timing import CIFAR10_NET, digits_net, sfd_step_seconds

from diffdistill.errors import UserError
from diffdistill.precond import build_denoiser
from diffdistill.runtime import autocast, resolve_device

ROOT = Path(__file__).resolve().parents[1]
PAPER_ITERS, PAPER_A100_HOURS = 1563, 0.64  # SFD's NFE-2 fine-tuning on CIFAR-10 (200k trajectories / 128)
SIZES = {  # full / tiny
    "sfd_batch": (128, 8), "sfd_iters": (5, 2), "images": (10_000, 16), "sample_batch": (1000, 8),
    "inception_batch": (500, 8), "ddp_batch": (32, 8)}
COLUMNS = ("measure", "seconds", "images/s", "projected hours (1563 it)", "paper A100-hours", "peak GiB", "result")


def _peak(device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2 ** 30


def _reset(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def network(tiny: bool, device):
    """(model on device, image shape): the CIFAR-10 network, or the digits one with --tiny."""
    torch.manual_seed(0)
    if tiny:
        return digits_net().to(device), (1, 8, 8)
    return build_denoiser(CIFAR10_NET).to(device), (3, 32, 32)


def smoke_dag(work: Path, device, tiny: bool, cores: int) -> dict:
    """The CIFAR-10 smoke DAG in a copy of the workflow: run (or, with --tiny, planned)."""
    for name in ("Snakefile", "workflow", "config", "profiles", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "tests/make_cifar10_smoke.py"), "downloads/smoke"], cwd=work,
                   check=True, capture_output=True, timeout=300)
    snakemake = Path(sys.executable).with_name("snakemake")
    cmd = [str(snakemake), "--cores", str(cores), "all", "--configfile", "config/cifar10-smoke.yaml", "--config",
           f"device={device.type}"] + (["-n"] if tiny else [])
    r = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=540)
    if r.returncode != 0:
        raise UserError(f"the smoke DAG failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-500:]}")
    tables = sorted(p.name for p in (work / "results/tables").glob("*.md")) if not tiny else []
    planned = "fid_vs_nfe" in r.stdout + r.stderr or "tables" in r.stdout + r.stderr
    ok = planned if tiny else {"fid_vs_nfe.md", "cost.md"} <= set(tables)
    return {"smoke_dag": "planned (dry run)" if tiny else "ran", "smoke_seconds": time.perf_counter() - t0,
            "smoke_tables": tables, "smoke_ok": bool(ok)}


def sfd_iteration(tiny: bool, device, schedule) -> list[dict]:
    rows = []
    for amp in (False, True):
        model, shape = network(tiny, device)
        _reset(device)
        with autocast(device, amp):
            times = sfd_step_seconds(model, shape, SIZES["sfd_batch"][tiny], schedule, iters=SIZES["sfd_iters"][tiny],
                                     device=device)
        s = statistics.median(times)
        rows.append({"measure": f"SFD iteration, batch {SIZES['sfd_batch'][tiny]}, {'bf16 autocast' if amp else 'fp32'}",
                     "seconds": s, "projected hours (1563 it)": s * PAPER_ITERS / 3600,
                     "paper A100-hours": PAPER_A100_HOURS, "peak GiB": _peak(device)})
        del model
    return rows


def sampling(tiny: bool, device, schedule) -> list[dict]:
    from diffdistill.sampling import generate_images
    from diffdistill.schedules import timesteps

    model, shape = network(tiny, device)
    n, batch = SIZES["images"][tiny], SIZES["sample_batch"][tiny]
    rows = []
    for nfe, solver, afs, grid in ((2, "euler", True, "edm"), (35, "heun", False, "edm_zero")):
        ts = timesteps(grid, nfe, afs, solver, schedule)
        kw = dict(batch_size=batch, img_shape=shape, device=device, progress=False)
        generate_images(model, list(range(batch)), ts, solver, afs, **kw)
        _reset(device)
        t0 = time.perf_counter()
        generate_images(model, list(range(n)), ts, solver, afs, **kw)
        _sync(device)
        wall = time.perf_counter() - t0
        rows.append({"measure": f"sampling NFE {nfe} ({solver}), {n} images", "seconds": wall,
                     "images/s": n / wall, "peak GiB": _peak(device)})
    return rows


def inception(tiny: bool, device, weights: Path) -> dict:
    import numpy as np

    from diffdistill.metrics import compute_features, feature_extractor

    n = SIZES["images"][tiny]
    imgs = np.random.default_rng(0).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    net = feature_extractor("inception", inception_weights=str(weights), device=device)
    compute_features(imgs[:SIZES["inception_batch"][tiny]], net, SIZES["inception_batch"][tiny], device=device)
    _reset(device)
    t0 = time.perf_counter()
    feats = compute_features(imgs, net, SIZES["inception_batch"][tiny], device=device)
    _sync(device)
    wall = time.perf_counter() - t0
    return {"measure": f"Inception features, {n} images ({weights.name}, {feats.shape[1]} features)",
            "seconds": wall, "images/s": n / wall, "peak GiB": _peak(device)}


def _grads(model, x, sigma, target):
    model.zero_grad(set_to_none=True)
    ((model(x, sigma) - target).abs().mean()).backward()
    return {k: p.grad.detach().double().cpu() for k, p in model.named_parameters() if p.grad is not None}


def _batch(n: int, shape, device):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, *shape, generator=g)
    return x.to(device), torch.rand(n, generator=g).add(0.1).mul(10).to(device), torch.randn(n, *shape, generator=g).to(device)


def _ddp_worker(rank, world, port, device_type, batch, out):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    device = torch.device(device_type, rank) if device_type == "cuda" else torch.device("cpu")
    if device_type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", rank=rank, world_size=world)
    model, shape = digits_net().to(device), (1, 8, 8)
    ddp = DistributedDataParallel(model, device_ids=[rank] if device_type == "cuda" else None)
    x, sigma, target = _batch(batch, shape, device)
    k = batch // world
    part = slice(rank * k, (rank + 1) * k)
    grads = _grads(ddp, x[part], sigma[part], target[part])
    torch.save({k2.removeprefix("module."): v for k2, v in grads.items()}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def ddp_check(device, tmp: Path, batch: int) -> dict:
    """Averaged DDP gradients against one process's on the whole batch."""
    world = 2 if device.type == "cuda" and torch.cuda.device_count() >= 2 else 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_ddp_worker, args=(world, port, device.type, batch, str(tmp)), nprocs=world,
                       start_method="spawn")
    model = digits_net().to(device)
    single = _grads(model, *_batch(batch, (1, 8, 8), device))
    ranks = [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(world)]
    worst = 0.0
    for name, g in single.items():
        scale = max(float(g.abs().max()), 1e-30)
        for r in ranks:
            worst = max(worst, float((r[name] - g).abs().max()) / scale)
    backend = "nccl" if device.type == "cuda" else "gloo"
    match = worst <= 64 * 2.0 ** -23  # float32 rounding of a sum over the batch, in the other order
    return {"measure": f"DDP gradients: {world} {backend} process(es) against 1 process, batch {batch}",
            "max relative difference": worst, "float32 eps": 2.0 ** -23, "match": match, "processes": world,
            "result": f"{'match' if match else 'DIFFER'}: max relative difference {worst:.2g} (64 eps32 allowed)"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--tiny", action="store_true", help="toy sizes (the fast test tier's CPU mode)")
    ap.add_argument("--inception-weights", type=Path, default=None,
                    help="Inception TorchScript file (default: the smoke stand-in: tiny random weights, not the real "
                    "network's cost)")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="Snakemake cores of the smoke DAG")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    device = resolve_device(a.device)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        tmp = Path(tmp)
        (tmp / "work").mkdir()
        smoke = smoke_dag(tmp / "work", device, a.tiny, a.cores)
        weights = a.inception_weights or tmp / "work/downloads/smoke/inception-2015-12-05.pt"
        sched = config_schedule("config/cifar10.yaml")  # the CIFAR-10 path's timestamps
        rows = sfd_iteration(a.tiny, device, sched) + sampling(a.tiny, device, sched) + [inception(a.tiny, device, weights)]
        (tmp / "ddp").mkdir()
        ddp = ddp_check(device, tmp / "ddp", SIZES["ddp_batch"][a.tiny])
    rows.append(ddp)
    rows.insert(0, {"measure": f"CIFAR-10 smoke DAG ({smoke['smoke_dag']}, device {device.type})",
                    "seconds": smoke["smoke_seconds"], "result": ("ok: " + ", ".join(smoke["smoke_tables"]))
                    if smoke["smoke_ok"] and smoke["smoke_tables"] else "ok" if smoke["smoke_ok"] else "FAILED"})
    m = machine()
    name = m["cuda"] if device.type == "cuda" else f"CPU ({m['cpu']})"
    fp32, bf16 = rows[1], rows[2]
    head = (f"{name}{' (tiny sizes)' if a.tiny else ''}: SFD iteration {fp32['seconds']:.3f} s fp32, "
            f"{bf16['seconds']:.3f} s bf16 -> {bf16['projected hours (1563 it)']:.2f} h for SFD's "
            f"{PAPER_ITERS} iterations (paper: {PAPER_A100_HOURS} A100-hours); DDP gradients "
            f"{'match' if ddp['match'] else 'DIFFER'} (max relative {ddp['max relative difference']:.2g}); smoke DAG "
            f"{smoke['smoke_dag']}: {'ok' if smoke['smoke_ok'] else 'FAILED'}")
    write(a.out, "gpu_check", "GPU check of the CIFAR-10 path", {
        "headline": head, "device_name": name, "tiny": a.tiny, "date": time.strftime("%Y-%m-%d"), **smoke,
        "ddp": ddp, "paper": {"iterations": PAPER_ITERS, "a100_hours": PAPER_A100_HOURS}},
        [{c: r.get(c, "") if r.get(c) is not None else "" for c in COLUMNS} for r in rows],
        "Seconds are medians after one warm-up iteration (SFD) or one warm-up batch (sampling, Inception). Peak "
        "memory is torch's max_memory_allocated per measurement (GPU only). The full-size network has random "
        "weights: timings and memory do not depend on them. The projected hours use the bf16 time.")
    if not (smoke["smoke_ok"] and ddp["match"]):
        sys.exit(1)


if __name__ == "__main__":
    run(main)
