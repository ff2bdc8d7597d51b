"""Data parallelism for the shared trainer (torchrun / DistributedDataParallel style).

Under `torchrun --nproc_per_node N` (WORLD_SIZE > 1) every rank draws the *whole*
batch with the same per-iteration generator and keeps its own contiguous slice
(`rank_slice`), so the total batch size and every per-seed draw are those of a single
process; gradients are averaged across ranks after each backward, exactly what
DistributedDataParallel's all-reduce does. Only rank 0 writes files (`is_main`).
With one process every function here is a no-op.
"""
from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist

from .io import UserError


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


def broadcast_params(module: torch.nn.Module) -> None:
    """Start every rank from rank 0's weights (as DDP does at construction)."""
    if world_size() > 1:
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def average_gradients(params) -> None:
    """Mean of the ranks' gradients: with equal slices and per-slice mean losses this is
    the gradient of the whole batch's mean loss."""
    n = world_size()
    if n == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= n
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_scalar(x: torch.Tensor) -> torch.Tensor:
    """The ranks' mean of a scalar (for logging and the non-finite-loss check)."""
    if world_size() == 1:
        return x.detach()
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / world_size()
