"""Per-seed randomness: an image depends on its seed only, never on batch size."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    import torch


MAX_SEED = 2 ** 31 - 1    # noise seeds are 0 .. 2^31 - 1 (any torch generator, any platform's int)
MAX_SEEDS = 1_000_000     # images in one command: 20x CIFAR-10's 50k FID protocol


def seed_ranges(spec: str) -> list[range]:
    """'0-1999' or '1,5,7' or '0-9,100' -> ranges, checked before any list is built:
    values in 0..MAX_SEED, at most MAX_SEEDS in all, none repeated."""
    ranges: list[range] = []
    try:
        for part in str(spec).split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-")
                ranges.append(range(int(a), int(b) + 1))
            elif part:
                ranges.append(range(int(part), int(part) + 1))
    except ValueError:
        raise UserError(f"bad seed list '{spec}': use e.g. 0-1999 or 1,5,7") from None
    if not ranges or not any(ranges):
        raise UserError(f"empty seed list '{spec}'")
    for r in ranges:
        if r.start < 0 or r.stop - 1 > MAX_SEED:
            raise UserError(f"seed list '{spec}': seeds must lie in 0..{MAX_SEED}")
    total = sum(len(r) for r in ranges)
    if total > MAX_SEEDS:
        raise UserError(f"seed list '{spec}' has {total} seeds; at most {MAX_SEEDS} per command")
    ordered = sorted((r for r in ranges if r), key=lambda r: r.start)
    for a, b in zip(ordered, ordered[1:]):
        if b.start < a.stop:
            raise UserError(f"seed list '{spec}' repeats seed {b.start}: each seed is one image")
    return ranges


def parse_seeds(spec: str) -> list[int]:
    """The seeds of `spec` (see `seed_ranges`) as a list of ints."""
    return [s for r in seed_ranges(spec) for s in r]


def noise_for_seeds(seeds, shape, stream: int = 0) -> torch.Tensor:
    """One standard-normal float32 tensor of `shape` per seed, stacked: [len(seeds), *shape].
    `stream` >= 1 gives each seed's noise for a stochastic sampler's step `stream` (after
    the first network evaluation), a stream apart from the seed's starting noise (0): an
    image still depends on its seed only."""
    import torch

    out = torch.empty((len(seeds), *shape), dtype=torch.float32)
    for i, s in enumerate(seeds):
        gen = torch.Generator().manual_seed((int(stream) << 32) + int(s))
        out[i] = torch.randn(shape, generator=gen, dtype=torch.float32)
    return out


def iteration_generator(seed: int, iteration: int) -> torch.Generator:
    """The RNG of one training iteration: resuming at iteration k draws what an
    uninterrupted run would have drawn."""
    import torch

    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(iteration))
