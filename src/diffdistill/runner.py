"""The one runner of every training command: device, AMP, DistributedDataParallel,
resume, EMA, checkpoints, metadata, progress and live curves.

A *method* (`diffdistill.methods`) builds its model and owns the loss:
`method.train_step(iteration, gen, opt_step)` draws its batch with `gen` and calls
`opt_step(loss)` once or several times (SFD takes one optimizer step per timestamp),
calling the network through `method.train_model` (DDP's wrapper under torchrun).

Resume: a run keeps a resume point (`diffdistill.resume_point`) with the arguments that
shape the result; a rerun with the same ones continues from it and takes the very same
steps as an uninterrupted run, a rerun with other ones is refused; `--restart` starts over.
Progress and live curves (TensorBoard): `diffdistill.progress`. The learning rate, Adam
and the plateau rule's turn: `diffdistill.lr_schedule`; the EMA: `diffdistill.ema`.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from . import distributed
from .convergence import STOP, Plateau
from .atomic import check_writable
from .ema import ema_copy, ema_update
from .errors import UserError
from .lr_schedule import adam, lr_at, plateau_rule
from .progress import LiveCurves, default_log_dir, progress_bar
from .provenance import write_meta
from .options import settings_from, used_args
from .resume_point import restore, resume_dir, save_resume
from .runtime import autocast, resolve_device
from .seeding import iteration_generator

# run settings that do not change the result: not compared on resume, not in the signature
NOT_SHAPING = {"out", "threads", "quiet", "max_iters_this_run", "restart", "ckpt_every", "device", "debug",
               "tensorboard_dir", "curve_out"}

LOG_EVERY = 10                        # iterations between log points


# ---- a whole training command ----------------------------------------------------------

def run(method_cls, args) -> int:
    """Build the method from its command's typed settings (the parsed command line as one
    frozen dataclass, `options.settings_from`), train, and
    write the checkpoint (with its sampling recipe), its metadata and, where asked, the FID
    curve. Exit code: 0, or 3
    when stopped early on purpose (a rerun resumes)."""
    settings = settings_from(args, method_cls.name, method_cls.command_options())
    out = check_writable(settings.out)
    if getattr(settings, "curve_out", None):
        check_writable(settings.curve_out)
    device = resolve_device(settings.device)
    distributed.init_from_env(use_cuda=device.type == "cuda")
    torch.manual_seed(settings.seed)  # networks built from scratch start from the run's seed
    method = method_cls(settings, device)
    cfg = config_from_args(settings, monitor=method.monitor)
    evaluate = method.curve_evaluator(device) if cfg.eval_every else None
    res = train(method, cfg, resume_dir(out), progress=not settings.quiet, evaluate=evaluate,
                signature=signature(settings), restart=settings.restart,
                log_dir=settings.tensorboard_dir or default_log_dir(out))
    if res.iterations < settings.iters and not res.converged:
        print(f"stopped at iteration {res.iterations} of {settings.iters}; rerun to resume", file=sys.stderr)
        return 3
    if not distributed.is_main():
        return 0
    method.save(out, res)
    write_meta(out, used_args(settings), settings.seed, method=method.name, wall_time=res.wall_time,
               iterations=res.iterations, optimizer_steps=res.optimizer_steps, final_loss=res.final_loss,
               resumed_from=res.resumed_from, converged=res.converged, lr_decays=res.decays,
               best_iteration=res.best_iteration,
               num_params=sum(p.numel() for p in res.model.parameters()),
               **{**res.counters, **method.meta(res)})
    if getattr(settings, "curve_out", None):
        method.write_curve(res)
    (resume_dir(out) / "resume.pt").unlink(missing_ok=True)
    return 0


def signature(settings) -> dict:
    """The arguments that shape the result (compared when resuming)."""
    return {k: v for k, v in used_args(settings).items() if k not in NOT_SHAPING}


def config_from_args(settings, monitor: str = "rmse") -> TrainConfig:
    """The loop's configuration from a training command's settings."""
    s = settings
    return TrainConfig(iters=s.iters, lr=s.lr, lr_schedule=getattr(s, "lr_schedule", "constant"),
                       grad_clip=getattr(s, "grad_clip", None), ema=getattr(s, "ema", None), seed=s.seed,
                       ckpt_every=s.ckpt_every, max_iters_this_run=s.max_iters_this_run,
                       eval_every=getattr(s, "curve_every", 0) if getattr(s, "curve_out", None) else 0,
                       monitor=monitor, plateau=plateau_from_args(s), amp=s.amp)


def plateau_from_args(settings) -> Plateau:
    return Plateau(**{f.name: getattr(settings, f"plateau_{f.name}") for f in fields(Plateau)
                      if getattr(settings, f"plateau_{f.name}", None) is not None})


# ---- the loop ------------------------------------------------------------------------

def train(method, cfg: TrainConfig, run_dir, progress: bool = True,
          evaluate: Optional[Callable[[nn.Module], dict]] = None, signature: dict | None = None,
          restart: bool = False, log_dir=None) -> TrainResult:
    """Train `method.model`. `evaluate(model)` ({name: value} on the curve seeds, e.g. the
    agreement with the target and FID) runs on the exported weights at iteration 0, every
    `cfg.eval_every` iterations and at the end, on rank 0; its time is not counted as
    training time, and its points survive a resume. Under lr_schedule 'plateau' the
    curve's `cfg.monitor` drives the plateau rule (`diffdistill.convergence`)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    loop = _Loop(method, cfg, run_dir, evaluate, signature, restart, log_dir)
    try:
        last_loss = loop.run(progress)
    finally:
        loop.log.close()
    s = loop.state
    if s["iteration"] >= cfg.iters or s["converged"]:
        loop.keep_best()
    return TrainResult(model=loop.exported().eval().requires_grad_(False), iterations=s["iteration"],
                       optimizer_steps=s["optimizer_steps"], wall_time=s["wall_time"],
                       counters=dict(method.counters), final_loss=last_loss, resumed_from=loop.resumed_from,
                       curve=list(s["curve"]), converged=s["converged"], decays=s["decays"],
                       best_iteration=s["best_iteration"] if cfg.lr_schedule == "plateau" else None)


@dataclass
class TrainConfig:
    iters: int                          # training iterations (batches)
    lr: float                           # base learning rate (Adam)
    lr_schedule: str = "constant"       # constant | step (lr_schedule.STEP_DECAY) | linear (to 0) | plateau
    grad_clip: Optional[float] = None   # max gradient norm, None = off
    ema: Optional[float] = None         # EMA decay of the exported weights, None = off
    seed: int = 0                       # base seed of the per-iteration RNG
    ckpt_every: int = 100               # iterations between resume checkpoints
    max_iters_this_run: Optional[int] = None  # stop early (tests: simulate an interruption)
    eval_every: int = 0                 # iterations between curve points (validation on the curve seeds), 0 = off
    monitor: str = "rmse"               # the curve's value the plateau rule reads (lower is better)
    plateau: Plateau = Plateau()        # lr_schedule 'plateau': lower the rate, then stop, on a flat curve
    amp: bool = False                   # bfloat16 autocast of the training step


@dataclass
class TrainResult:
    model: nn.Module                    # the exported weights (EMA if enabled)
    iterations: int
    optimizer_steps: int
    wall_time: float                    # seconds of training, summed over resumed runs
    counters: dict = field(default_factory=dict)
    final_loss: float = float("nan")
    resumed_from: int = 0
    curve: list = field(default_factory=list)  # [{iteration, <evaluate's values>, wall_time, lr}]
    converged: bool = False             # ended by the plateau rule before `iters` (complete)
    decays: int = 0                     # learning-rate decays the plateau rule made
    best_iteration: Optional[int] = None  # plateau rule: the curve point whose weights are exported


class _Loop:
    """The state of one training run: optimizer, EMA, counters, resume point, curve and
    the plateau rule's progress (`decays`; `window_from`: the first curve point since the
    last learning-rate change)."""

    @staticmethod
    def fresh() -> dict:
        """The plateau rule's and the curve's starting state (a new list for every run);
        `best_value` / `best_iteration`: the best monitored curve point so far."""
        return {"curve": [], "converged": False, "decays": 0, "window_from": 0, "best_value": math.inf,
                "best_iteration": None}

    def __init__(self, method, cfg: TrainConfig, run_dir: Path, evaluate, signature, restart: bool, log_dir):
        self.method, self.cfg, self.evaluate, self.signature = method, cfg, evaluate, signature
        self.model = method.model.train().requires_grad_(True)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = adam(self.params, cfg.lr)
        self.ema = ema_copy(self.model, cfg.ema)
        self.state = {"iteration": 0, "optimizer_steps": 0, "wall_time": 0.0, **self.fresh()}
        self.best = None  # the exported weights at the best monitored curve point (lr_schedule 'plateau')
        self.resume = run_dir / "resume.pt"
        self.main = distributed.is_main()
        if self.resume.exists() and restart and self.main:
            self.resume.unlink()
        if self.resume.exists():
            restore(self)
        self.resumed_from = self.state["iteration"]
        method.train_model = distributed.wrap(self.model, find_unused=getattr(method, "find_unused", False))
        self.log = LiveCurves(log_dir, self.main, self.resumed_from)

    def run(self, progress: bool) -> float:
        cfg, state = self.cfg, self.state
        if state["iteration"] == 0:
            self.record_eval()
        bar = progress_bar(range(state["iteration"], cfg.iters), progress and self.main, initial=state["iteration"],
                           total=cfg.iters)
        last_loss, t0 = float("nan"), time.perf_counter()
        stop_at = None if cfg.max_iters_this_run is None else state["iteration"] + cfg.max_iters_this_run
        for it in bar:
            if stop_at is not None and it >= stop_at:
                break
            last_loss = float(self.iteration(it).get("loss", float("nan")))
            state["iteration"] = it + 1
            now = time.perf_counter()
            state["wall_time"] += now - t0
            t0 = now
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{last_loss:.4g}", refresh=False)
            if cfg.eval_every and ((it + 1) % cfg.eval_every == 0 or it + 1 == cfg.iters):
                self.record_eval()
                t0 = time.perf_counter()  # evaluation is not training time
                if plateau_rule(cfg, state, self.model, self.main) == STOP:
                    state["converged"] = True  # complete: flat after the learning rate was lowered
                    break
            if (it + 1) % cfg.ckpt_every == 0 and it + 1 < cfg.iters:
                save_resume(self)
        if state["iteration"] < cfg.iters and not state["converged"]:  # stopped on purpose: keep the resume point
            save_resume(self)
        return last_loss

    def iteration(self, it: int) -> dict:
        cfg = self.cfg
        lr = self.lr(it)
        for g in self.opt.param_groups:
            g["lr"] = lr
        with autocast(next(self.model.parameters()).device, cfg.amp):
            stats = self.method.train_step(it, iteration_generator(cfg.seed, it), self.opt_step)
        if self.ema is not None:
            ema_update(self.ema, self.model, cfg.ema, it)
        if (it + 1) % LOG_EVERY == 0 or it + 1 == cfg.iters:
            self.log.scalars(it + 1, lr=lr, **{f"train/{k}": v for k, v in stats.items()})
        return stats

    def opt_step(self, loss: torch.Tensor) -> None:
        mean_loss = distributed.mean_scalar(loss)  # every rank stops together
        if not torch.isfinite(mean_loss):
            raise UserError(f"non-finite loss ({mean_loss.item()}) at iteration {self.state['iteration']}: "
                            f"training diverged; lower the learning rate (--lr {self.cfg.lr})")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.opt.step()
        self.state["optimizer_steps"] += 1

    def lr(self, it: int) -> float:
        return lr_at(self.cfg, it, self.state["decays"])

    def exported(self) -> nn.Module:
        return self.ema if self.ema is not None else self.model

    def record_eval(self) -> None:
        if self.evaluate is None or not self.cfg.eval_every or not self.main:
            return
        curve = self.state["curve"]
        if curve and curve[-1]["iteration"] == self.state["iteration"]:
            return
        model = self.exported()
        was_training = model.training
        model.eval()
        with torch.no_grad():
            values = {k: float(v) for k, v in self.evaluate(model).items()}
        model.train(was_training)
        curve.append({"iteration": self.state["iteration"], **values, "wall_time": round(self.state["wall_time"], 3),
                      "lr": self.lr(self.state["iteration"])})
        self.log.scalars(self.state["iteration"], **{f"curve/{k}": v for k, v in values.items()})
        if self.cfg.lr_schedule == "plateau" and values.get(self.cfg.monitor, math.inf) < self.state["best_value"]:
            self.state["best_value"], self.state["best_iteration"] = values[self.cfg.monitor], self.state["iteration"]
            self.best = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def keep_best(self) -> None:
        """Under the plateau rule the exported weights are those of the best monitored
        curve point (on the curve seeds, never the evaluation seeds): training goes on
        until the curve stops improving, and what comes after its best is not kept."""
        if self.best is not None and self.cfg.lr_schedule == "plateau":
            self.exported().load_state_dict(self.best)
