"""Data parallelism for the runner: torch's DistributedDataParallel under torchrun.

Under `torchrun --nproc_per_node N` (WORLD_SIZE > 1) every rank draws the *whole*
batch with the same per-iteration generator and keeps its own contiguous slice
(`rank_slice`), so the total batch size and every per-seed draw are those of a single
process; `wrap` puts the trained module in DistributedDataParallel, whose all-reduce
averages the gradients of the ranks' slices after every backward. Only rank 0 writes
files (`is_main`). With one process every function here is a no-op.
"""
from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist

from .errors import UserError


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def init_from_env(use_cuda: bool = False) -> int:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, MASTER_ADDR/PORT).
    gloo for CPU tensors, nccl for CUDA ones. Returns the world size."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        atexit.register(dist.destroy_process_group)
    return world_size()


def rank_slice(x: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous share of a batch drawn identically on every rank."""
    n = world_size()
    if n == 1:
        return x
    if x.shape[0] % n:
        raise UserError(f"batch size {x.shape[0]} is not divisible by the {n} processes")
    k = x.shape[0] // n
    return x[rank() * k:(rank() + 1) * k]


def wrap(module: torch.nn.Module, find_unused: bool = False) -> torch.nn.Module:
    """`module` in DistributedDataParallel when several processes train, else itself.
    DDP starts every rank from rank 0's weights and averages gradients on backward;
    `find_unused` for models that leave some parameters out of a step (O2MKD's router)."""
    if world_size() == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [module_device(module).index] if module_device(module).type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=find_unused)


def module_device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def mean_scalar(x: torch.Tensor) -> torch.Tensor:
    """The ranks' mean of a scalar (for logging and the non-finite-loss check)."""
    if world_size() == 1:
        return x.detach()
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / world_size()


def main_says(flag: bool, device: torch.device | None = None) -> bool:
    """Rank 0's value of `flag` on every rank (a decision only rank 0 can take, e.g. from
    the FID curve it alone evaluates)."""
    if world_size() == 1:
        return bool(flag)
    y = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(y, src=0)
    return bool(y.item())
