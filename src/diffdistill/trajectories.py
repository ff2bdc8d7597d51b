"""Teacher trajectories: generate them with the solver driver's callback, store the
states at the student timestamps, and serve batches from the cache.

A cache file holds its format, the states [S, N, C, H, W] (index 0 = x_T) and its *key*:
the hash of the teacher checkpoint and every setting that shapes the states (solver, K,
final-step rule, thresholding, student timestamps, teacher AFS, seeds). A reader states
the key it needs (`expected_key`) and `load_cache` refuses, in one line naming the
differing settings, a cache made otherwise.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Callable, Optional

import torch

from .distributed import rank_slice
from .naming import FRESH_SEEDS
from .atomic import written
from .errors import UserError
from .files import torch_save
from .memory import check_memory
from .provenance import sha256, write_meta
from .safe_pickle import torch_load
from .schedules import refine
from .seeding import noise_for_seeds, parse_seeds
from .solvers import sample

CACHE_FORMAT = "diffdistill-trajectories/2"


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
                final_step: str, rho: float, afs: bool = False) -> torch.Tensor:
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


def generate(model, seeds, student_t: torch.Tensor, K: int, solver: str, final_step: str, thresholding: bool,
             rho: float, batch_size: int = 500, img_shape=(1, 8, 8), progress: bool = True,
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


def expected_key(teacher_path, *, solver: str, K: int, final_step: str, thresholding: bool,
                 timesteps, teacher_afs: bool, seeds: str) -> dict:
    """Everything that shapes a trajectory set; a cache must carry exactly this."""
    return {"teacher_sha256": sha256(teacher_path), "solver": solver, "K": int(K), "final_step": final_step,
            "thresholding": bool(thresholding), "timesteps": [round(float(t), 12) for t in timesteps],
            "teacher_afs": bool(teacher_afs), "seeds": str(seeds)}


def build_cache(teacher_path, out, *, student_t: torch.Tensor, K: int, solver: str, final_step: str,
                thresholding: bool, rho: float, seeds: str, batch_size: int, teacher_afs: bool = False,
                device="cpu", amp: bool = False, progress: bool = True, args: dict | None = None) -> dict:
    """Generate the trajectories of `seeds` and write the cache `out` (+ metadata)."""
    from .precond import image_shape, load_teacher
    from .runtime import autocast

    model, spec = load_teacher(teacher_path, device=device)
    key = expected_key(teacher_path, solver=solver, K=K, final_step=final_step, thresholding=thresholding,
                       timesteps=student_t.tolist(), teacher_afs=teacher_afs, seeds=seeds)
    seed_list = parse_seeds(seeds)
    check_memory(2 * 4 * len(seed_list) * len(student_t) * math.prod(image_shape(spec)),  # float32, batches + cat
                 f"a trajectory cache of {len(seed_list)} trajectories x {len(student_t)} timestamps")
    t0 = time.perf_counter()
    with autocast(device, amp), torch.inference_mode():
        states = generate(model, seed_list, student_t, K, solver, final_step, thresholding, rho, batch_size,
                          image_shape(spec), progress=progress, device=device, teacher_afs=teacher_afs).cpu()
    wall = time.perf_counter() - t0
    teacher_nfe = len(seed_list) * (K * (len(student_t) - 1) - int(teacher_afs))
    torch_save(out, {"format": CACHE_FORMAT, "states": states.float(), "timesteps": student_t, "key": key})
    size = written(out).stat().st_size
    write_meta(out, args or {}, None, wall_time=wall, cache_key=key, teacher_nfe=teacher_nfe, size_bytes=size,
               num_trajectories=len(seed_list), timesteps=student_t.tolist())
    print(f"{len(seed_list)} trajectories in {wall:.1f} s, {size / 2**20:.1f} MiB", file=sys.stderr)
    return {"wall_time": wall, "size_bytes": size, "num": len(seed_list)}


def load_cache(path, expect: dict | None = None) -> dict:
    """A cache file; refused in one line if it is of another format or (with `expect`)
    was made with other settings than `expect`."""
    cache = torch_load(path)
    if not isinstance(cache, dict) or cache.get("format") != CACHE_FORMAT:
        fmt = cache.get("format", 1) if isinstance(cache, dict) else "?"
        raise UserError(f"{path} is not a trajectory cache of this version (format {fmt!r}, this version reads "
                        f"{CACHE_FORMAT!r}): delete it and rerun the rule that makes it")
    if expect is not None:
        have = cache["key"]
        diff = [k for k in expect if have.get(k) != expect[k]]
        if diff:
            shown = ", ".join(f"{k} {_short(have.get(k))} (asked for {_short(expect[k])})" for k in diff)
            raise UserError(f"trajectory cache {path} was made with other settings: {shown}")
    return cache


def _short(v) -> str:
    if isinstance(v, str) and len(v) == 64:
        return v[:12] + "..."
    return repr(v)


class TrajectoryBatches:
    """Batches of cached trajectories, or fresh ones from new noise (`make_fresh`)."""

    def __init__(self, states: Optional[torch.Tensor] = None, make_fresh: Optional[Callable] = None):
        if (states is None) == (make_fresh is None):
            raise ValueError("give exactly one of cached states or a fresh-trajectory maker")
        self.states, self.make_fresh = states, make_fresh

    def batch(self, batch_size: int, gen: torch.Generator) -> torch.Tensor:
        # the whole batch is drawn on every rank; each keeps its share (one process: all)
        if self.states is not None:
            idx = torch.randint(len(self.states), (batch_size,), generator=gen)
            return self.states[rank_slice(idx)]
        seeds = torch.randint(FRESH_SEEDS.start, FRESH_SEEDS.stop, (batch_size,), generator=gen)
        return self.make_fresh(rank_slice(seeds).tolist())
