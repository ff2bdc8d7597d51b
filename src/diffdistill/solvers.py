"""ODE solvers for the probability-flow ODE dx/dt = (x - D(x; t)) / t (EDM's VE form).

Each solver is one small pure step function
    step(x, t_cur, t_next, hist, order, denoise) -> x_next
where `hist` lists (t, x, denoised) of the steps so far, newest last (the current one
included), and `denoise` is only called by solvers that need more than one evaluation
per step (Heun). The consistency sampler (`cm`) is the one stochastic step: it re-noises
the model's output to t_next with fresh noise the driver draws from the seeded source it
is given (`noise`), so a sample still depends on its seed only. One driver, `sample`, owns the loop, the AFS option, the order
schedule and the per-step callback; nothing here does I/O, shows progress or disables
autograd (distillation runs solver steps inside its loss).
"""
from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:  # no torch at import: the workflow reads the solver names (SOLVER_NAMES) while it plans
    import torch

Denoiser = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def _d(x, t, denoised):
    return (x - denoised) / t


def euler(x, t_cur, t_next, denoised):
    """The one Euler (= DDIM) step along d = (x - D) / t; t_cur and t_next are floats or
    per-sample columns (t_cur > 0). Solvers, SFD, PD and O2MKD x SFD all step with it."""
    return x + (t_next - t_cur) * _d(x, t_cur, denoised)


def euler_step(x, t_cur, t_next, hist, order, denoise):
    """First order; on sigma this is exactly DDIM."""
    return euler(x, t_cur, t_next, hist[-1][2])


def heun_step(x, t_cur, t_next, hist, order, denoise):
    """EDM's 2nd-order Heun; the last step to t = 0 is Euler."""
    _, _, den = hist[-1]
    d_cur = _d(x, t_cur, den)
    x_next = x + (t_next - t_cur) * d_cur
    if t_next == 0:
        return x_next
    d_next = _d(x_next, t_next, denoise(x_next, t_next))
    return x + (t_next - t_cur) * 0.5 * (d_cur + d_next)


def dpmpp_step(x, t_cur, t_next, hist, order, denoise, d2_coef=1.0):
    """DPM-Solver++ multistep with data prediction, order 1..3 (alpha = 1, lambda = -log t).

    The order-3 update is the one of the reference implementations (DPM-Solver,
    k-diffusion, diff-sampler). Its D2 term carries half of the Taylor coefficient, so on
    the analytic Gaussian its local error falls like h^3, not h^4 (tests/test_solvers.py
    measures it); `dpmpp3m_exact` (d2_coef=2) is the variant with the full coefficient."""
    (_, _, m0) = hist[-1]
    if t_next == 0:
        return m0
    ratio = t_next / t_cur
    h = math.log(t_cur / t_next)
    phi1 = math.expm1(-h)                                # DPM-Solver's phi_1 (negative)
    x_next = ratio * x - phi1 * m0
    if order == 1:
        return x_next
    t1, _, m1 = hist[-2]
    r0 = math.log(t1 / t_cur) / h
    D1_0 = (m0 - m1) / r0
    if order == 2:
        return x_next - 0.5 * phi1 * D1_0
    t2, _, m2 = hist[-3]
    r1 = math.log(t2 / t1) / h
    D1_1 = (m1 - m2) / r1
    D1 = D1_0 + r0 / (r0 + r1) * (D1_0 - D1_1)
    D2 = (D1_0 - D1_1) / (r0 + r1)
    phi2 = phi1 / h + 1
    phi3 = phi2 / h - 0.5
    return x_next + phi2 * D1 - d2_coef * phi3 * D2


def cm_step(x, t_cur, t_next, hist, order, denoise, eps=None):
    """The multistep consistency sampler (Song et al. 2023, Algorithm 1): the model's
    output f(x; t_cur), re-noised to t_next with fresh noise `eps`. As locuslab/ect
    samples, x = f + t_next eps (Algorithm 1's sqrt(t_next^2 - t_min^2) differs by less
    than 1e-5 at the papers' t_min 0.002 and t_next 0.821); t_next = 0 ends at f."""
    out = hist[-1][2]
    if t_next == 0:
        return out
    if eps is None:
        raise ValueError("the consistency sampler re-noises between steps: give the driver a seeded noise source")
    return out + t_next * eps


_AB = {1: [1.0], 2: [1.5, -0.5], 3: [23 / 12, -16 / 12, 5 / 12], 4: [55 / 24, -59 / 24, 37 / 24, -9 / 24]}


def ipndm_step(x, t_cur, t_next, hist, order, denoise):
    """Improved PNDM: Adams-Bashforth on the ODE direction d, warm-started at lower order."""
    ds = [_d(xh, th, dh) for th, xh, dh in reversed(hist[-order:])]
    d = sum(c * di for c, di in zip(_AB[order], ds))
    return x + (t_next - t_cur) * d


SOLVERS = {  # the one list of solver names: the config schema's $defs.solver is written from it
    # name: (step function, maximum order of its history use)
    "euler": (euler_step, 1),
    "heun": (heun_step, 1),
    "dpmpp2m": (dpmpp_step, 2),
    "dpmpp3m": (dpmpp_step, 3),
    "dpmpp3m_exact": (functools.partial(dpmpp_step, d2_coef=2.0), 3),
    "ipndm": (ipndm_step, 4),
    "cm": (cm_step, 1),
}
STOCHASTIC = ("cm",)  # steps that take fresh noise (the driver's `noise` source)

FINAL_STEP_RULES = ("force", "dpm", "off")
SOLVER_NAMES = {"euler": "Euler (DDIM)", "heun": "Heun", "dpmpp2m": "DPM-Solver++(2M)",
                "dpmpp3m": "DPM-Solver++(3M)", "dpmpp3m_exact": "DPM-Solver++(3M, exact)", "ipndm": "iPNDM",
                "cm": "consistency sampler"}


def step_order(i: int, n_steps: int, max_order: int, final_step: str = "force") -> int:
    """Order of step i of n: warm-up from history, and lower order at the end.

    'force' always lowers the order on the final steps; 'dpm' follows DPM-Solver's
    convention (only below 10 steps); 'off' never."""
    order = min(max_order, i + 1)
    if final_step == "force" or (final_step == "dpm" and n_steps < 10):
        order = min(order, n_steps - i)
    return max(order, 1)


def afs_denoised(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Analytical first step: at t_max the data is negligible, so d = x / sqrt(1 + t^2),
    i.e. the implied denoised value is x - t * d. No network call."""
    return x - t * x / (1 + t ** 2).sqrt()


def sample(denoise: Denoiser, x: torch.Tensor, timesteps, solver: str = "euler",
           afs: bool = False, final_step: str = "force",
           callback: Optional[Callable] = None, noise: Optional[Callable] = None) -> torch.Tensor:
    """Integrate from timesteps[0] to timesteps[-1]; x starts as t_max * noise.

    callback(i, x, t_cur, t_next, denoised, x_next) runs after each step (trajectory
    recording uses it); noise(i) -> fresh standard noise like x for step i, which only a
    stochastic step (STOCHASTIC) draws."""
    import torch

    if solver not in SOLVERS:
        raise ValueError(f"unknown solver '{solver}' (known: {', '.join(SOLVERS)})")
    if final_step not in FINAL_STEP_RULES:
        raise ValueError(f"unknown final-step rule '{final_step}' (known: {', '.join(FINAL_STEP_RULES)})")
    step, max_order = SOLVERS[solver]
    ts = [torch.as_tensor(t, dtype=torch.float64) for t in timesteps]
    n = len(ts) - 1
    hist: list = []
    for i in range(n):
        t_cur, t_next = ts[i], ts[i + 1]
        tc = t_cur.to(x.dtype)
        denoised = afs_denoised(x, tc) if (afs and i == 0) else denoise(x, tc)
        hist.append((float(t_cur), x, denoised))
        del hist[:-4]
        order = step_order(i, n, max_order, final_step)
        extra = {"eps": noise(i) if noise is not None and float(t_next) > 0 else None} if solver in STOCHASTIC else {}
        x_next = step(x, float(t_cur), float(t_next), hist, order,
                      lambda xx, tt: denoise(xx, torch.as_tensor(tt, dtype=x.dtype)), **extra)
        if callback is not None:
            callback(i, x, t_cur, t_next, denoised, x_next)
        x = x_next
    return x


class CountingDenoiser:
    """Wraps a denoiser and counts its evaluations (NFE)."""

    def __init__(self, denoise: Denoiser):
        self.denoise, self.nfe = denoise, 0

    def __call__(self, x, t):
        self.nfe += 1
        return self.denoise(x, t)
