"""Training step: the teacher network's forward, backward, optimizer step and EMA update,
with each Adam implementation torch has and each way of updating the EMA weights.

The runner uses the fused Adam and one foreach lerp for the EMA (`lr_schedule.adam`,
`ema.ema_update`); this measures what that saves against torch's default per-tensor
loops, at the SFD student's batch size. Medians of 5 repeats of `--steps` steps each.

    python -m benchmarks.train_step --teacher results/teacher/model.pt --out results/benchmark-runs
"""
from __future__ import annotations

import argparse

import torch

from .common import median_seconds, run, write

from diffdistill.precond import image_shape, load_denoiser
from diffdistill.lr_schedule import ADAM_BETAS


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--batch-size", type=int, default=48)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model, spec = load_denoiser(a.teacher)
    model.train().requires_grad_(True)
    params = list(model.parameters())
    ema = [p.detach().clone() for p in params]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(a.batch_size, *image_shape(spec), generator=gen)
    sigma = torch.exp(torch.randn(a.batch_size, generator=gen))

    def ema_loop():
        with torch.no_grad():
            for pe, pm in zip(ema, params):
                pe.lerp_(pm, 1e-3)

    def ema_foreach():
        with torch.no_grad():
            torch._foreach_lerp_(ema, params, 1e-3)

    def steps(opt, ema_update):
        def go():
            for _ in range(a.steps):
                opt.zero_grad(set_to_none=True)
                (model(x, sigma) - x).abs().mean().backward()
                opt.step()
                ema_update()
        return go

    cases = [("per-tensor (torch's CPU default)", {"foreach": False}, ema_loop, "loop"),
             ("foreach", {"foreach": True}, ema_foreach, "foreach"),
             ("fused (the runner's)", {"fused": True}, ema_foreach, "foreach")]
    rows = []
    for name, kw, ema_update, ema_name in cases:
        opt = torch.optim.Adam(params, lr=1e-6, betas=ADAM_BETAS, **kw)
        sec = median_seconds(steps(opt, ema_update), repeats=5) / a.steps
        rows.append({"Adam": name, "EMA": ema_name, "ms per step": 1e3 * sec})
    base, fused = rows[0]["ms per step"], rows[-1]["ms per step"]
    head = (f"training step at batch {a.batch_size}: {base:.1f} ms per-tensor, {fused:.1f} ms fused "
            f"({100 * (1 - fused / base):.1f} % less)")
    write(a.out, "train_step", "Training step", {"batch_size": a.batch_size, "threads": a.threads,
                                                 "parameters": sum(p.numel() for p in params), "headline": head},
          rows, "One step: forward, L1 loss, backward, optimizer step, EMA update of a copy of the weights.")


if __name__ == "__main__":
    run(main)
