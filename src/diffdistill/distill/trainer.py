"""The one training loop shared by teacher training and every distillation method.

It owns the optimizer, the learning-rate schedule, EMA, checkpoint/resume, progress
and logging. A *method* owns the loss: `method.train_step(iteration, gen, opt_step)`
draws its batch with `gen` and calls `opt_step(loss)` once or several times (SFD takes
one optimizer step per timestamp).

Resume: `resume.pt` in the run folder is rewritten atomically every `ckpt_every`
iterations; a rerun continues from it. Per-iteration RNG (diffdistill.seeding) makes a
resumed run take the very same steps as an uninterrupted one.

Under torchrun (WORLD_SIZE > 1) the loop is data-parallel (diffdistill.distributed):
methods draw the whole batch and keep their rank's slice, gradients are averaged
across ranks, and only rank 0 writes the resume point and the log.
"""
from __future__ import annotations

import copy
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol

import torch
from torch import nn

from .. import distributed
from ..io import UserError, torch_load, torch_save
from ..seeding import iteration_generator


@dataclass
class TrainConfig:
    iters: int                          # training iterations (batches)
    lr: float                           # base learning rate (Adam)
    lr_schedule: str = "constant"       # constant | step (x lr_decay at lr_decay_at) | linear (to 0)
    lr_decay: float = 0.1               # factor of the 'step' schedule
    lr_decay_at: float = 0.5            # fraction of training where 'step' decays
    betas: tuple = (0.9, 0.999)         # Adam betas
    grad_clip: Optional[float] = None   # max gradient norm, None = off
    ema: Optional[float] = None         # EMA decay of the exported weights, None = off
    seed: int = 0                       # base seed of the per-iteration RNG
    ckpt_every: int = 100               # iterations between resume checkpoints
    log_every: int = 10                 # iterations between log lines
    max_iters_this_run: Optional[int] = None  # stop early (tests: simulate an interruption)
    eval_every: int = 0                 # iterations between evaluations (FID curve), 0 = off


class Method(Protocol):
    model: nn.Module                    # the trained parameters (checkpointed)
    counters: dict                      # e.g. teacher_nfe; checkpointed

    def train_step(self, iteration: int, gen: torch.Generator, opt_step) -> dict: ...


def lr_at(cfg: TrainConfig, it: int) -> float:
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "step":
        return cfg.lr * (cfg.lr_decay if it >= cfg.lr_decay_at * cfg.iters else 1.0)
    if cfg.lr_schedule == "linear":
        return cfg.lr * (1 - it / cfg.iters)
    raise UserError(f"unknown lr_schedule '{cfg.lr_schedule}' (constant, step, linear)")


def ema_decay(ema: float, it: int) -> float:
    """EMA decay with a ramp-up, so short runs do not average in their first steps."""
    return min(ema, (1 + it) / (10 + it))


@dataclass
class TrainResult:
    model: nn.Module                    # the exported weights (EMA if enabled)
    iterations: int
    optimizer_steps: int
    wall_time: float                    # seconds of training, summed over resumed runs
    counters: dict = field(default_factory=dict)
    final_loss: float = float("nan")
    resumed_from: int = 0
    curve: list = field(default_factory=list)  # [{iteration, value, wall_time}] of `evaluate`


def train(method: Method, cfg: TrainConfig, run_dir, progress: bool = True,
          evaluate: Optional[Callable[[nn.Module], float]] = None) -> TrainResult:
    """`evaluate(model)` (e.g. FID on fixed seeds) runs on the exported weights at
    iteration 0, every `cfg.eval_every` iterations and at the end, on rank 0; its time
    is not counted as training time, and its points survive a resume."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    model = method.model
    model.train().requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas))
    ema = copy.deepcopy(model).eval().requires_grad_(False) if cfg.ema else None
    state = {"iteration": 0, "optimizer_steps": 0, "wall_time": 0.0, "curve": []}
    resume = run_dir / "resume.pt"
    if resume.exists():
        ck = torch_load(resume)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if ema is not None:
            ema.load_state_dict(ck["ema"])
        method.counters.update(ck["counters"])
        state = {"curve": [], **ck["state"]}
        print(f"resuming from {resume} at iteration {state['iteration']}", file=sys.stderr)
    resumed_from = state["iteration"]
    distributed.init_from_env(use_cuda=next(model.parameters()).is_cuda)
    distributed.broadcast_params(model)
    main = distributed.is_main()

    def save_resume():
        if not main:
            return
        torch_save(resume, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                            "ema": ema.state_dict() if ema is not None else None,
                            "counters": dict(method.counters), "state": dict(state),
                            "config": asdict(cfg)})

    def opt_step(loss: torch.Tensor):
        mean_loss = distributed.mean_scalar(loss)  # every rank stops together
        if not torch.isfinite(mean_loss):
            raise RuntimeError(f"non-finite loss {mean_loss.item()} at iteration {state['iteration']}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(params)
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        state["optimizer_steps"] += 1

    bar = _progress(range(state["iteration"], cfg.iters), progress and main, initial=state["iteration"], total=cfg.iters)
    log = (run_dir / "train_log.jsonl").open("a") if main else open(os.devnull, "w")
    def record_eval():
        if evaluate is None or not cfg.eval_every or not main:
            return
        if state["curve"] and state["curve"][-1]["iteration"] == state["iteration"]:
            return
        exported = ema if ema is not None else model
        was_training = exported.training
        exported.eval()
        with torch.no_grad():
            value = float(evaluate(exported))
        exported.train(was_training)
        state["curve"].append({"iteration": state["iteration"], "value": value,
                               "wall_time": round(state["wall_time"], 3)})

    if state["iteration"] == 0:
        record_eval()
    last_loss, t0, stop_at = float("nan"), time.perf_counter(), None
    if cfg.max_iters_this_run is not None:
        stop_at = state["iteration"] + cfg.max_iters_this_run
    try:
        for it in bar:
            if stop_at is not None and it >= stop_at:
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(cfg, it)
            stats = method.train_step(it, iteration_generator(cfg.seed, it), opt_step)
            if ema is not None:
                with torch.no_grad():
                    beta = ema_decay(cfg.ema, it)
                    for pe, pm in zip(ema.parameters(), model.parameters()):
                        pe.lerp_(pm, 1 - beta)
            last_loss = float(stats.get("loss", float("nan")))
            state["iteration"] = it + 1
            now = time.perf_counter()
            state["wall_time"] += now - t0
            t0 = now
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{last_loss:.4g}", refresh=False)
            if (it + 1) % cfg.log_every == 0 or it + 1 == cfg.iters:
                log.write(json.dumps({"iteration": it + 1, "lr": lr_at(cfg, it),
                                      "wall_time": round(state["wall_time"], 3), **stats}) + "\n")
                log.flush()
            if cfg.eval_every and ((it + 1) % cfg.eval_every == 0 or it + 1 == cfg.iters):
                record_eval()
                t0 = time.perf_counter()  # evaluation is not training time
            if (it + 1) % cfg.ckpt_every == 0 and it + 1 < cfg.iters:
                save_resume()
    finally:
        log.close()
    if state["iteration"] < cfg.iters:  # stopped early on purpose: keep the resume point
        save_resume()
    out = ema if ema is not None else model
    return TrainResult(model=out.eval().requires_grad_(False), iterations=state["iteration"],
                       optimizer_steps=state["optimizer_steps"], wall_time=state["wall_time"],
                       counters=dict(method.counters), final_loss=last_loss, resumed_from=resumed_from,
                       curve=list(state["curve"]))


def finish(run_dir) -> None:
    """Drop the resume point once the final output is safely written."""
    p = Path(run_dir) / "resume.pt"
    if p.exists() and distributed.is_main():
        p.unlink()


def _progress(it, enabled, **kw):
    if not enabled:
        return it
    from tqdm import tqdm
    return tqdm(it, dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 10, **kw)
