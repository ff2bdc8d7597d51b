"""Device and mixed precision, chosen by CLI flags (`--device`, `--amp`)."""
from __future__ import annotations

import contextlib
import os

import torch

from .errors import UserError


def resolve_device(name) -> torch.device:
    if isinstance(name, torch.device):
        return name
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device 'cuda' requested but this torch ({torch.__version__}) sees no CUDA "
                        "GPU; set device: cpu in the config or run on a GPU node")
    if name not in ("cpu", "cuda"):
        raise UserError(f"unknown device '{name}' (cpu, cuda)")
    if name == "cuda" and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per process
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device(name)


def autocast(device, enabled: bool):
    """bfloat16 autocast around network calls (no loss scaling needed, unlike fp16);
    the preconditioning wrappers keep their inputs and outputs in float32."""
    if not enabled:
        return contextlib.nullcontext()
    # cache_enabled=False: the context spans many optimizer steps, and a cached bfloat16
    # copy of a weight would go stale after the first one.
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16,
                          cache_enabled=False)


def set_threads(n: int) -> None:
    """torch's intra-op threads and numpy's BLAS threads (metrics) of this process."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(n)


def apply_run_options(args) -> None:
    """A command's --threads and --device, where it has them: the threads set, the device resolved."""
    if hasattr(args, "threads"):
        set_threads(args.threads)
    if hasattr(args, "device"):
        args.device = resolve_device(args.device)
