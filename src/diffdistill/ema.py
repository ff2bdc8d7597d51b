"""The exponential moving average of a run's weights (`--ema`): the weights it exports,
updated after every iteration in one foreach pass (benchmarks/train_step.py), with a
decay that ramps up."""
from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn


def ema_copy(model: nn.Module, ema: Optional[float]) -> Optional[nn.Module]:
    """The module of the averaged weights: a frozen copy of `model`; None without an EMA
    (`ema` None or 0)."""
    return copy.deepcopy(model).eval().requires_grad_(False) if ema else None


def ema_update(average: nn.Module, model: nn.Module, ema: float, it: int) -> None:
    """Move `average` towards `model` after iteration `it`."""
    with torch.no_grad():
        torch._foreach_lerp_(list(average.parameters()), list(model.parameters()), 1 - ema_decay(ema, it))


def ema_decay(ema: float, it: int) -> float:
    """EMA decay with a ramp-up, so short runs do not average in their first steps."""
    return min(ema, (1 + it) / (10 + it))
