"""Per-seed randomness: an image depends on its seed only, never on batch size."""
from __future__ import annotations

import torch

from .io import UserError


def parse_seeds(spec: str) -> list[int]:
    """'0-1999' or '1,5,7' or '0-9,100' -> list of ints."""
    seeds: list[int] = []
    try:
        for part in str(spec).split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-")
                seeds.extend(range(int(a), int(b) + 1))
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise UserError(f"bad seed list '{spec}': use e.g. 0-1999 or 1,5,7") from None
    if not seeds:
        raise UserError(f"empty seed list '{spec}'")
    return seeds


def noise_for_seeds(seeds, shape, dtype=torch.float32) -> torch.Tensor:
    """One standard-normal tensor of `shape` per seed, stacked: [len(seeds), *shape]."""
    out = torch.empty((len(seeds), *shape), dtype=dtype)
    for i, s in enumerate(seeds):
        out[i] = torch.randn(shape, generator=torch.Generator().manual_seed(int(s)), dtype=dtype)
    return out


def iteration_generator(seed: int, iteration: int) -> torch.Generator:
    """The RNG of one training iteration: resuming at iteration k draws what an
    uninterrupted run would have drawn."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(iteration))
