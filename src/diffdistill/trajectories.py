"""Teacher trajectories: generate them with the solver driver's callback, store the
states at the student timestamps, and serve batches from the cache."""
from __future__ import annotations

import hashlib
import json
from typing import Callable, Optional

import torch

from .distributed import rank_slice
from .schedules import refine
from .seeding import noise_for_seeds
from .solvers import sample


def dynamic_threshold(x0: torch.Tensor, quantile: float = 0.995) -> torch.Tensor:
    """Imagen-style thresholding of a denoised prediction (SFD's reference teacher):
    s = max(quantile(|x0|), 1); x0 = clamp(x0, -s, s) / s, per sample."""
    s = torch.quantile(x0.abs().flatten(1).float(), quantile, dim=1).clamp(min=1).to(x0.dtype)
    s = s.view(-1, *([1] * (x0.ndim - 1)))
    return torch.maximum(torch.minimum(x0, s), -s) / s


def teacher_denoiser(model, thresholding: bool) -> Callable:
    def denoise(x, t):
        with torch.no_grad():
            d = model(x, t)
        return dynamic_threshold(d) if thresholding else d
    return denoise


def run_teacher(denoise, x_T: torch.Tensor, student_t: torch.Tensor, K: int, solver: str,
                final_step: str, rho: float = 7.0, afs: bool = False) -> torch.Tensor:
    """One teacher solve over the refined grid; returns the states at the student
    timestamps, [B, N, ...] with index 0 = x_T. A pretrained teacher never uses AFS;
    a stage-1 SFD student teaching the second stage does (`afs`)."""
    fine = refine(student_t, K, rho)
    states = [x_T]

    def record(i, x, t_cur, t_next, denoised, x_next):
        if (i + 1) % K == 0:
            states.append(x_next)

    sample(denoise, x_T, fine, solver=solver, afs=afs, final_step=final_step, callback=record)
    return torch.stack(states, dim=1)


def generate(model, seeds, student_t: torch.Tensor, K: int, solver: str = "dpmpp3m",
             final_step: str = "force", thresholding: bool = True, batch_size: int = 500,
             img_shape=(1, 8, 8), progress: bool = True, rho: float = 7.0,
             device="cpu", teacher_afs: bool = False) -> torch.Tensor:
    """Trajectories for a fixed pool of noise seeds: [S, N, C, H, W], float32, on `device`
    (noise is drawn on the CPU per seed)."""
    denoise = teacher_denoiser(model, thresholding)
    out = []
    chunks = [seeds[i:i + batch_size] for i in range(0, len(seeds), batch_size)]
    if progress:
        from tqdm import tqdm
        chunks = tqdm(chunks, desc="teacher trajectories", dynamic_ncols=True, mininterval=5)
    for chunk in chunks:
        x_T = noise_for_seeds(chunk, img_shape).to(device) * float(student_t[0])
        out.append(run_teacher(denoise, x_T, student_t, K, solver, final_step, rho, afs=teacher_afs))
    return torch.cat(out)


def cache_key(**settings) -> str:
    """Short stable hash of the settings that shape a trajectory set."""
    blob = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class TrajectoryBatches:
    """Batches of cached trajectories, or fresh ones from new noise (`generator`)."""

    def __init__(self, states: Optional[torch.Tensor] = None, make_fresh: Optional[Callable] = None):
        if (states is None) == (make_fresh is None):
            raise ValueError("give exactly one of cached states or a fresh-trajectory maker")
        self.states, self.make_fresh = states, make_fresh

    def batch(self, batch_size: int, gen: torch.Generator) -> torch.Tensor:
        # the whole batch is drawn on every rank; each keeps its share (one process: all)
        if self.states is not None:
            idx = torch.randint(len(self.states), (batch_size,), generator=gen)
            return self.states[rank_slice(idx)]
        seeds = torch.randint(2 ** 31 - 1, (batch_size,), generator=gen)
        return self.make_fresh(rank_slice(seeds).tolist())
