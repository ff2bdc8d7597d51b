"""A training run's resume point: `resume.pt`, rewritten atomically every `ckpt_every`
iterations, in `results/resume/<the output's path>/` for outputs under a `results` folder
(outside the folders DVC deletes before it reruns a stage, so `dvc repro` after a kill
resumes too), else in the output's folder; with the arguments that shape the result
(`runner.signature`). A rerun with the same ones continues from it, and per-iteration RNG
(diffdistill.seeding) makes it take the very same steps as an uninterrupted run. A rerun
with other ones is refused in one line naming the differing keys; `--restart` starts over.

`restore` and `save_resume` take the runner's loop (`runner._Loop`): its model, optimizer,
EMA, method counters, state (iteration, curve, plateau rule) and best weights.
"""
from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

from .errors import UserError
from .files import torch_save
from .safe_pickle import torch_load


def resume_dir(out) -> Path:
    """Where a training run keeps its resume point: never inside the folder of its
    output, which DVC deletes before it reruns a stage."""
    return beside_results(out, "resume", Path(out).parent)


def restore(loop) -> None:
    """Continue `loop` from its resume point (`loop.resume`), made with its signature."""
    ck = torch_load(loop.resume)
    _check_resume(ck, loop.resume, loop.signature)
    loop.model.load_state_dict(ck["model"])
    loop.opt.load_state_dict(ck["optimizer"])
    if loop.ema is not None:
        loop.ema.load_state_dict(ck["ema"])
    loop.method.counters.update(ck["counters"])
    loop.best = ck.get("best")
    loop.state = {**loop.fresh(), **ck["state"]}
    print(f"resuming from {loop.resume} at iteration {loop.state['iteration']}", file=sys.stderr)


def save_resume(loop) -> None:
    """Write `loop`'s resume point (rank 0's; the ranks' states are the same)."""
    if loop.main:
        torch_save(loop.resume, {"model": loop.model.state_dict(), "optimizer": loop.opt.state_dict(),
                                 "ema": loop.ema.state_dict() if loop.ema is not None else None,
                                 "counters": dict(loop.method.counters), "state": dict(loop.state),
                                 "best": loop.best,
                                 "config": asdict(loop.cfg), "signature": loop.signature})


def beside_results(out, kind: str, fallback: Path) -> Path:
    """results/<kind>/<the output's folder below results>, or `fallback` for an output
    outside a results folder."""
    parts = Path(out).parent.parts
    if "results" in parts:
        i = parts.index("results")
        return Path(*parts[:i + 1], kind, *parts[i + 1:])
    return fallback


def _check_resume(ck: dict, resume: Path, sig: dict | None) -> None:
    have = ck.get("signature")
    if sig is None or have == sig:
        return
    if have is None:
        raise UserError(f"{resume} records no settings (an older version's resume point): rerun with --restart")
    keys = sorted(set(have) | set(sig))
    diff = [f"{k}: {have.get(k)!r} -> {sig.get(k)!r}" for k in keys if have.get(k) != sig.get(k)]
    raise UserError(f"{resume} was made with other settings ({'; '.join(diff)}): "
                    "rerun with --restart to start over, or with its settings to resume")
