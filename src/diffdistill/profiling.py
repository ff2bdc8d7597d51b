"""Cost of sampling with each model: parameters, MACs (FlopCounterMode, MACs = FLOPs / 2)
per network evaluation and per image, and sampling throughput, measured one model after
the other in one process so that ratios against the first model are fair."""
from __future__ import annotations

import sys
import time

import torch

from .io import check_writable, write_json, write_meta
from .precond import image_shape, load_checkpoint
from .sampling import generate_images, resolve_recipe, recipe_timesteps


def sampling_macs(model, timesteps, solver: str, afs: bool, img_shape, model_kwargs=None) -> int:
    """MACs of sampling one image: every network evaluation the solver actually makes."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        generate_images(model, [0], timesteps, solver, afs, batch_size=1, img_shape=img_shape, progress=False,
                        model_kwargs=model_kwargs, device=next(model.parameters()).device)
    return counter.get_total_flops() // 2


def profile_model(path, nfe: int, num_images: int, batch_size: int, repeats: int, device="cpu", **schedule) -> dict:
    model, ckpt = load_checkpoint(path, device=device)
    r = resolve_recipe(ckpt.get("sampling"), solver="euler", nfe=nfe, afs=False, grid="edm", **schedule)
    ts = recipe_timesteps(r)
    shape = image_shape(ckpt["spec"])
    kwargs = {"num_steps": len(ts)} if r.get("step_conditioning") else {}
    macs = sampling_macs(model, ts, "euler", False, shape, kwargs)
    seeds = list(range(num_images))
    run = dict(img_shape=shape, batch_size=batch_size, progress=False, model_kwargs=kwargs, device=device)
    generate_images(model, seeds[:batch_size], ts, "euler", **run)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        generate_images(model, seeds, ts, "euler", **run)
        best = min(best, time.perf_counter() - t0)
    total = sum(p.numel() for p in model.parameters())
    per_step = model.params_per_step() if hasattr(model, "params_per_step") else total
    return {"model": str(path), "params_total": total, "params_per_step": per_step, "nfe": nfe,
            "macs_per_image": macs, "macs_per_step": macs // nfe, "images_per_second": num_images / best}


def profile_models(models, out, *, nfe: int, num_images: int, batch_size: int, repeats: int, threads: int,
                   device="cpu", args: dict | None = None, **schedule) -> list[dict]:
    check_writable(out)
    rows = []
    for path in models:
        with torch.inference_mode():
            rows.append(profile_model(path, nfe, num_images, batch_size, repeats, device, **schedule))
        r = rows[-1]
        print(f"{path}: {r['macs_per_step'] / 1e6:.3f} M MACs/step, {r['images_per_second']:.0f} images/s",
              file=sys.stderr)
    write_json(out, {"rows": rows, "threads": threads, "macs": "FlopCounterMode FLOPs / 2"})
    write_meta(out, args or {}, None)
    return rows
