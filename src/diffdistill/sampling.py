"""Sampling: per-seed noise, one solver driver, uint8 images out, PNG grids."""
from __future__ import annotations

import math

import numpy as np
import torch

from .data import float_to_uint8
from .schedules import edm_timesteps, num_timestamps
from .seeding import noise_for_seeds
from .solvers import sample
from .io import UserError


def sampling_timesteps(solver: str, nfe: int, afs: bool, t_min: float, t_max: float,
                       rho: float, append_zero: bool = False) -> torch.Tensor:
    if append_zero:
        # EDM convention: N timestamps + 0; Heun's last step (to 0) is Euler: 2N - 1 NFE
        if solver != "heun" or (nfe + 1) % 2:
            raise UserError(f"append_zero sampling is defined for Heun with odd NFE, got {solver} NFE {nfe}")
        return edm_timesteps((nfe + 1) // 2, t_min, t_max, rho, append_zero=True)
    n = num_timestamps(nfe, afs, solver)
    if n is None:
        raise UserError(f"solver {solver} cannot take exactly {nfe} NFE (afs={afs})")
    return edm_timesteps(n, t_min, t_max, rho)


@torch.no_grad()
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
    for chunk in chunks:
        x = noise_for_seeds(chunk, img_shape).to(device) * float(timesteps[0])
        out.append(sample(denoise, x, timesteps, solver=solver, afs=afs, final_step=final_step).cpu())
    return torch.cat(out)


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

    from .io import atomic_path

    g = image_grid(images_uint8, nrow, scale)
    with atomic_path(path) as tmp:
        Image.fromarray(g[..., 0] if g.shape[-1] == 1 else g).save(tmp, format="PNG")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    return float_to_uint8(images).numpy()
