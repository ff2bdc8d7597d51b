"""Time schedules. In EDM's VE form the time t *is* the noise level sigma."""
from __future__ import annotations

import torch


def edm_timesteps(num_steps: int, t_min: float = 0.002, t_max: float = 80.0, rho: float = 7.0,
                  append_zero: bool = False, dtype=torch.float64) -> torch.Tensor:
    """EDM polynomial schedule: num_steps timestamps from t_max down to t_min, uniform in
    t^(1/rho). With append_zero a final 0 is added (EDM's sampler convention)."""
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2, got {num_steps}")
    i = torch.arange(num_steps, dtype=dtype)
    t = (t_max ** (1 / rho) + i / (num_steps - 1) * (t_min ** (1 / rho) - t_max ** (1 / rho))) ** rho
    return torch.cat([t, t.new_zeros(1)]) if append_zero else t


def num_timestamps(nfe: int, afs: bool, solver: str = "euler") -> int | None:
    """Timestamps needed for `nfe` network evaluations (None if the solver cannot hit it).

    Single-evaluation solvers: N timestamps cost N-1 NFE, N-2 with AFS. Heun costs 2 per
    step (one less with AFS, whose first step needs no evaluation at its start)."""
    if solver == "heun":
        steps2 = nfe + (1 if afs else 0)
        return steps2 // 2 + 1 if steps2 % 2 == 0 else None
    return nfe + (2 if afs else 1)


def refine(student_t: torch.Tensor, K: int, rho: float = 7.0) -> torch.Tensor:
    """Teacher grid: K steps between consecutive student timestamps, uniform in t^(1/rho).
    Every K-th point of the result is a student timestamp."""
    s = student_t.to(torch.float64) ** (1 / rho)
    frac = torch.arange(K, dtype=torch.float64) / K
    fine = (s[:-1, None] + frac[None, :] * (s[1:, None] - s[:-1, None])).reshape(-1)
    return torch.cat([fine, s[-1:]]) ** rho
