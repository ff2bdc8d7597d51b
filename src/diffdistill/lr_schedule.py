"""The optimizer of every training run and its learning rate: the schedules (constant,
step, linear, plateau), the plateau rule's turn after each curve point (the rule itself:
`diffdistill.convergence`) and Adam."""
from __future__ import annotations

import torch

from . import distributed
from .convergence import CONTINUE, DECAY, STOP, decide, lr_factor
from .errors import UserError

STEP_DECAY, STEP_DECAY_AT = 0.1, 0.5  # lr schedule 'step': x0.1 from half of training on
ADAM_BETAS = (0.9, 0.999)


def lr_at(cfg, it: int, decays: int = 0) -> float:
    """The learning rate at iteration `it` of a run of `cfg` (runner.TrainConfig); under
    'plateau', after `decays` plateaus."""
    if cfg.lr_schedule == "plateau":
        return cfg.lr * lr_factor(decays, cfg.plateau)
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "step":
        return cfg.lr * (STEP_DECAY if it >= STEP_DECAY_AT * cfg.iters else 1.0)
    if cfg.lr_schedule == "linear":
        return cfg.lr * (1 - it / cfg.iters)
    raise UserError(f"unknown lr_schedule '{cfg.lr_schedule}' (constant, step, linear, plateau)")


def plateau_rule(cfg, state: dict, model: torch.nn.Module, main: bool) -> str:
    """The plateau rule after a curve point (lr_schedule 'plateau'): rank 0 (`main`)
    decides from the curve in the loop's `state`, every rank follows (CONTINUE, DECAY or
    STOP); a DECAY counts in `state["decays"]` and opens a new window."""
    if cfg.lr_schedule != "plateau":
        return CONTINUE
    action = CONTINUE
    if main:
        if cfg.monitor not in (state["curve"][-1] if state["curve"] else {}):
            raise UserError(f"the validation curve has no '{cfg.monitor}' for the plateau rule")
        values = [p[cfg.monitor] for p in state["curve"][state["window_from"]:]]
        action = decide(values, state["decays"], cfg.plateau)
    device = distributed.module_device(model)
    if distributed.main_says(action == STOP, device):
        return STOP
    if distributed.main_says(action == DECAY, device):
        state["decays"] += 1
        state["window_from"] = len(state["curve"]) - 1  # the point at the change opens the new window
        return DECAY
    return CONTINUE


def adam(params: list, lr: float) -> torch.optim.Optimizer:
    """Adam with torch's fused kernel where it has one for these parameters (floating
    point, on the CPU or a GPU): the same update in one pass over the weights, which on
    the CPU saves a few per cent of each training step
    (benchmarks/train_step.py)."""
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, lr=lr, betas=ADAM_BETAS, fused=fused or None)
