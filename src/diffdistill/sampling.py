"""Sampling: per-seed noise, one solver driver, uint8 images out, PNG grids.

A checkpoint carries its sampling recipe (`Recipe`: solver, NFE, AFS, grid, schedule,
the timestamps, step-count conditioning); `sample_checkpoint` follows it, at the
timestamps it records, and explicit settings override it (a row that samples an O2MKD
router with DDIM 20, the teacher with any solver). A checkpoint without a recipe (a
teacher) needs the solver and NFE given.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from .data import float_to_uint8
from .atomic import atomic_path, check_writable
from .errors import UserError
from .memory import check_memory
from .provenance import write_meta
from .recipe import Recipe
from .seeding import noise_for_seeds, parse_seeds
from .solvers import sample


def checkpoint_recipe(ckpt: dict, args=None) -> Recipe:
    """A checkpoint's recipe with the options given in `args` over it, ready to sample."""
    base = Recipe.from_dict(ckpt.get("sampling"))
    r = Recipe.from_args(args, base) if args is not None else base
    if args is not None:
        Recipe(nfe=getattr(args, "nfe", None)).given_nfe(base)
    return r.resolved()


def generate_images(model, seeds, timesteps, solver: str = "euler", afs: bool = False,
                    final_step: str = "force", batch_size: int = 500, img_shape=(1, 8, 8),
                    progress: bool = True, model_kwargs: dict | None = None,
                    device="cpu") -> torch.Tensor:
    """Samples for `seeds` as float images (on CPU); each depends on its seed only.
    Noise is drawn on the CPU per seed, so images do not depend on the device either."""
    model_kwargs = model_kwargs or {}
    denoise = lambda x, t: model(x, t, **model_kwargs)  # noqa: E731
    chunks = [seeds[i:i + batch_size] for i in range(0, len(seeds), batch_size)]
    if progress:
        from tqdm import tqdm
        chunks = tqdm(chunks, desc=f"sampling {solver}", dynamic_ncols=True, mininterval=5)
    out = []
    with torch.inference_mode():
        for chunk in chunks:
            x = noise_for_seeds(chunk, img_shape).to(device) * float(timesteps[0])
            fresh = lambda i, chunk=chunk: noise_for_seeds(chunk, img_shape, stream=i + 1).to(device)  # noqa: E731
            out.append(sample(denoise, x, timesteps, solver=solver, afs=afs, final_step=final_step, noise=fresh).cpu())
    return torch.cat(out)


def save_samples(path, images_uint8: np.ndarray, seeds) -> None:
    """npz with `images` [N, C, H, W] and `seeds`, plus `arr_0` [N, H, W, C] uint8, the
    layout ADM's evaluator and other npz-based tools read."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, images=images_uint8, seeds=np.asarray(seeds),
                     arr_0=np.ascontiguousarray(images_uint8.transpose(0, 2, 3, 1)))


def sample_checkpoint(model_path, out, seeds: str, batch_size: int, png=None, png_count: int = 100,
                      device="cpu", amp: bool = False, progress: bool = True, args: dict | None = None,
                      given=None) -> Recipe:
    """Sample `seeds` from a checkpoint by its recipe (the options in `given`, parsed
    `diffdistill sample` arguments, override it) into `out` (npz) and optionally a PNG
    grid; returns the recipe sampled with."""
    from .precond import image_shape, load_checkpoint
    from .runtime import autocast

    for path in (out, png):
        if path:
            check_writable(path)
    model, ckpt = load_checkpoint(model_path, device=device)
    r = checkpoint_recipe(ckpt, given)
    ts = r.sampling_timesteps(str(model_path))
    seed_list = parse_seeds(seeds)
    check_memory(len(seed_list) * math.prod(image_shape(ckpt["spec"])) * 9,  # float32 twice, then uint8
                 f"sampling {len(seed_list)} images")
    t0 = time.perf_counter()
    with autocast(device, amp):
        imgs = to_uint8(generate_images(model, seed_list, ts, r.solver, r.afs, r.final_step, batch_size,
                                        image_shape(ckpt["spec"]), progress=progress, model_kwargs=model_kwargs(r, ts),
                                        device=device))
    wall = time.perf_counter() - t0
    save_samples(out, imgs, seed_list)
    write_meta(out, args or {}, None, wall_time=wall, recipe=r.to_dict(), timesteps=ts.tolist(),
               images_per_second=len(seed_list) / wall)
    if png:
        save_grid(png, imgs[:png_count])
    return r


def model_kwargs(recipe: Recipe, ts) -> dict:
    """Extra arguments of every network call: a step-conditioned model's step count."""
    return {"num_steps": len(ts)} if recipe.step_conditioning else {}


def image_grid(images_uint8: np.ndarray, nrow: int | None = None, scale: int = 4) -> np.ndarray:
    """[N, C, H, W] uint8 -> one [H', W', C] uint8 grid, nearest-neighbour upscaled."""
    n, c, h, w = images_uint8.shape
    nrow = nrow or int(math.ceil(math.sqrt(n)))
    ncol = int(math.ceil(n / nrow))
    grid = np.full((c, ncol * (h + 1) + 1, nrow * (w + 1) + 1), 255, np.uint8)
    for k in range(n):
        r, q = divmod(k, nrow)
        grid[:, 1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = images_uint8[k]
    grid = grid.repeat(scale, 1).repeat(scale, 2)
    return grid.transpose(1, 2, 0)


def save_grid(path, images_uint8: np.ndarray, nrow=None, scale: int = 4) -> None:
    from PIL import Image

    g = image_grid(images_uint8, nrow, scale)
    with atomic_path(path) as tmp:
        Image.fromarray(g[..., 0] if g.shape[-1] == 1 else g).save(tmp, format="PNG")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    return float_to_uint8(images).numpy()


def load_images(path, num: int | None = None, seeds_expected=None) -> np.ndarray:
    """uint8 images [N, C, H, W] from a samples .npz, or a trajectory cache's end points.
    A file's `seeds` must not repeat and, with `seeds_expected` (a list), must be those,
    in order: the seeds its row sampled, on which rows are compared (a cache, without
    `seeds`, is taken as it is: its key names its seeds)."""
    from pathlib import Path

    if str(path).endswith(".pt"):
        from .trajectories import load_cache
        return to_uint8(load_cache(path)["states"][:num, -1])
    if not Path(path).is_file():
        raise UserError(f"samples file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "images" not in z.files:
                raise UserError(f"{path} has no 'images' array (has: {', '.join(z.files) or 'none'})")
            imgs = z["images"][:num]
            seeds = z["seeds"][:num] if "seeds" in z.files else None
    except UserError:
        raise
    except Exception as e:  # truncated zip, object arrays, not an npz at all
        raise UserError(f"cannot read samples {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if imgs.dtype != np.uint8 or imgs.ndim != 4:
        raise UserError(f"{path}: 'images' must be uint8 [N, C, H, W], got {imgs.dtype} {imgs.shape}")
    if seeds is not None:
        _, first, count = np.unique(seeds, return_index=True, return_counts=True)
        if (count > 1).any():
            raise UserError(f"{path} repeats seed {seeds[first[count > 1][0]]}: its images are not distinct "
                            "samples, so metrics over them would be wrong")
        if seeds_expected is not None and not np.array_equal(seeds, np.asarray(seeds_expected[:len(seeds)])):
            raise UserError(f"{path} holds seeds {_seed_text(seeds)}, not the {_seed_text(seeds_expected)} its row "
                            "sampled: resample it (its metrics would compare other noise)")
    return imgs


def _seed_text(seeds) -> str:
    seeds = np.asarray(seeds)
    if len(seeds) and np.array_equal(seeds, np.arange(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds[:3].tolist())) + (", ..." if len(seeds) > 3 else "")
