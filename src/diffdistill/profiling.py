"""Cost of sampling each row: parameters, network MACs per image (FlopCounterMode, MACs =
FLOPs / 2, summed over the evaluations the sampler actually makes: AFS steps cost none,
Heun two per step, a router one student per step) and sampling throughput, measured one
row after the other in one process (the workflow runs it alone, with every core), so
ratios between rows are fair."""
from __future__ import annotations

import sys
import time
from typing import Callable

import torch

from .atomic import check_writable
from .files import write_json
from .provenance import write_meta
from .precond import image_shape, load_checkpoint
from .recipe import Recipe
from .sampling import generate_images, model_kwargs


def count_macs(run: Callable[[], object]) -> int:
    """The one MAC counter: multiply-accumulates of everything `run()` computes, from torch's
    `FlopCounterMode` (every matmul and convolution, whatever module or functional call
    issues it; MACs = its FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        run()
    return counter.get_total_flops() // 2


def evaluation_macs(model, img_shape, sigma: float = 1.0, batch: int = 1, **model_kwargs) -> int:
    """MACs of one evaluation of the denoiser `model` on one image of `img_shape`."""
    device = next(model.parameters()).device
    x = torch.zeros(batch, *img_shape, device=device)
    return count_macs(lambda: model(x, torch.full((batch,), float(sigma), device=device), **model_kwargs)) // batch


def sampling_macs(model, timesteps, solver: str, afs: bool, img_shape, model_kwargs=None) -> int:
    """MACs of sampling one image: every network evaluation the solver actually makes."""
    return count_macs(lambda: generate_images(model, [0], timesteps, solver, afs, batch_size=1, img_shape=img_shape,
                                              progress=False, model_kwargs=model_kwargs,
                                              device=next(model.parameters()).device))


def profile_row(model, ckpt, recipe: dict, num_images: int, batch_size: int, repeats: int, device) -> dict:
    """`recipe`: the row's partial recipe (`Recipe.to_dict`) over the checkpoint's."""
    base = Recipe.from_dict(ckpt.get("sampling"))
    Recipe.from_dict(recipe).given_nfe(base)
    r = Recipe.from_dict(recipe).over(base).resolved()
    ts = r.sampling_timesteps(f"the checkpoint of row {recipe}")
    shape = image_shape(ckpt["spec"])
    kwargs = model_kwargs(r, ts)
    macs = sampling_macs(model, ts, r.solver, r.afs, shape, kwargs)
    seeds = list(range(num_images))
    run = dict(img_shape=shape, batch_size=batch_size, progress=False, model_kwargs=kwargs, device=device)
    if repeats < 2:  # with two or more timed runs, the best of them leaves out the first one's one-off costs
        generate_images(model, seeds[:batch_size], ts, r.solver, r.afs, r.final_step, **run)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        generate_images(model, seeds, ts, r.solver, r.afs, r.final_step, **run)
        best = min(best, time.perf_counter() - t0)
    total = sum(p.numel() for p in model.parameters())
    return {"params_total": total, "params_per_step": model.params_per_step() if hasattr(model, "params_per_step")
            else total, "nfe": r.nfe, "solver": r.solver, "macs_per_image": macs,
            "macs_per_step": macs / r.nfe, "images_per_second": num_images / best}


def profile_rows(rows: list[dict], out, *, num_images: int, batch_size: int, repeats: int, threads: int,
                 device="cpu", args: dict | None = None) -> list[dict]:
    """`rows`: [{name, model, recipe}]; the first is the reference of the ratios."""
    check_writable(out)
    loaded, result = {}, []
    for row in rows:
        if row["model"] not in loaded:
            loaded[row["model"]] = load_checkpoint(row["model"], device=device)
        with torch.inference_mode():
            p = profile_row(*loaded[row["model"]], row.get("recipe", {}), num_images, batch_size, repeats,
                            device)
        result.append({"name": row["name"], "model": row["model"], **p})
        print(f"{row['name']}: {p['macs_per_image'] / 1e6:.2f} M MACs/image, {p['images_per_second']:.0f} images/s",
              file=sys.stderr)
    write_json(out, {"rows": result, "threads": threads, "macs": "FlopCounterMode FLOPs / 2"})
    write_meta(out, args or {}, None)
    return result
