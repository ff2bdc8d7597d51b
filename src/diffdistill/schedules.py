"""Time schedules. In EDM's VE form the time t *is* the noise level sigma.

One schedule function, `sigma_at(u)`: EDM's polynomial ramp from t_max (u = 0) to t_min
(u = 1), uniform in t^(1/rho). Sampling grids, Progressive Distillation's nested grids,
O2MKD's range split and its random noise draws all go through it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

from .flagtext import flags
from .errors import UserError

if TYPE_CHECKING:
    import torch

GRIDS = ("edm", "edm_zero", "pd", "cm")
REQUIRED = ("t_min", "t_max", "rho")  # the fields every schedule names (t_last is optional)


@dataclass(frozen=True)
class Schedule:
    """EDM's noise schedule: timestamps from t_max down to t_min, uniform in t^(1/rho).

    One value wherever it travels: a config's `schedule` section (`from_config`), a
    command line (`to_flags`, parsed back by `from_args`), a checkpoint's recipe and a
    trajectory cache's folder name (`to_dict`, the fields `diffdistill.naming` spells).

    `t_last` > 0 reshapes the few-step grid (`timesteps`, grid edm): the ramp runs from
    t_max to t_last and one last step goes from t_last to t_min, so the last network
    evaluation sees t_last whatever the NFE (SFD's students: `sfd.t_last`). 0: the plain
    ramp to t_min, and `to_dict` leaves it out."""
    t_min: float
    t_max: float
    rho: float
    t_last: float = 0.0

    def __post_init__(self):
        if not 0 < self.t_min < self.t_max:
            raise UserError(f"need 0 < t_min < t_max, got t_min {self.t_min}, t_max {self.t_max}")
        if self.t_last and not self.t_min < self.t_last < self.t_max:
            raise UserError(f"need t_min < t_last < t_max (or t_last 0: off), got t_min {self.t_min}, "
                            f"t_last {self.t_last}, t_max {self.t_max}")

    @classmethod
    def from_config(cls, cfg: dict) -> "Schedule":
        """The config's `schedule` section (t_last is a method's: SFD's `sfd.t_last`)."""
        return cls(**{k: cfg["schedule"][k] for k in REQUIRED})

    @classmethod
    def from_args(cls, args, base: "Schedule | None" = None) -> "Schedule":
        """From parsed options of the same names; one that is None (not given) is `base`'s
        (t_last: 0 without a base)."""
        given = {f.name: getattr(args, f.name, None) for f in fields(cls)}
        if base is not None:
            given = {k: getattr(base, k) if v is None else v for k, v in given.items()}
        if given["t_last"] is None:
            given["t_last"] = 0.0
        missing = [k for k, v in given.items() if v is None]
        if missing:
            raise UserError(f"no schedule value for {', '.join(missing)}")
        return cls(**given)

    def to_dict(self) -> dict:
        d = asdict(self)
        if not self.t_last:
            del d["t_last"]
        return d

    def to_flags(self) -> str:
        return flags(self.to_dict())

    def sigma_at(self, u):
        return sigma_at(u, self.t_min, self.t_max, self.rho)

    def u_at(self, sigma):
        """The inverse of `sigma_at`: u in [0, 1] of a noise level in [t_min, t_max]."""
        a, b = self.t_max ** (1 / self.rho), self.t_min ** (1 / self.rho)
        return (sigma ** (1 / self.rho) - a) / (b - a)


def sigma_at(u, t_min: float, t_max: float, rho: float):
    """sigma(u) = (t_max^(1/rho) + u (t_min^(1/rho) - t_max^(1/rho)))^rho for u in [0, 1];
    u may be a float or a tensor."""
    return (t_max ** (1 / rho) + u * (t_min ** (1 / rho) - t_max ** (1 / rho))) ** rho


def edm_timesteps(num_steps: int, t_min: float, t_max: float, rho: float,
                  append_zero: bool = False) -> torch.Tensor:
    """EDM polynomial schedule: num_steps timestamps (float64) from t_max down to t_min,
    uniform in t^(1/rho). With append_zero a final 0 is added (EDM's sampler convention)."""
    import torch

    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2, got {num_steps}")
    t = sigma_at(torch.arange(num_steps, dtype=torch.float64) / (num_steps - 1), t_min, t_max, rho)
    return torch.cat([t, t.new_zeros(1)]) if append_zero else t


def pd_timesteps(num_steps: int, t_min: float, t_max: float, rho: float) -> torch.Tensor:
    """Progressive Distillation's grid: num_steps + 1 timestamps (float64), sigma(i /
    num_steps) for i < num_steps, then 0. The 2N-step grid holds every point of the
    N-step grid."""
    import torch

    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    t = sigma_at(torch.arange(num_steps, dtype=torch.float64) / num_steps, t_min, t_max, rho)
    return torch.cat([t, t.new_zeros(1)])


def num_timestamps(nfe: int, afs: bool, solver: str = "euler") -> int | None:
    """Timestamps needed for `nfe` network evaluations (None if the solver cannot hit it).

    Single-evaluation solvers: N timestamps cost N-1 NFE, N-2 with AFS. Heun costs 2 per
    step (one less with AFS, whose first step needs no evaluation at its start)."""
    if solver == "heun":
        steps2 = nfe + (1 if afs else 0)
        return steps2 // 2 + 1 if steps2 % 2 == 0 else None
    return nfe + (2 if afs else 1)


def timesteps(grid: str, nfe: int, afs: bool, solver: str, schedule: Schedule) -> torch.Tensor:
    """The sampling grid that spends exactly `nfe` network evaluations.

    edm: N timestamps from t_max to t_min (the students' and baselines' grid; with the
    schedule's t_last, N - 1 from t_max to t_last, then t_min); edm_zero:
    EDM's own sampler, N timestamps then 0, Heun with 2N - 1 NFE; pd: Progressive
    Distillation's nested grid of nfe steps ending at 0 (Euler); cm: a consistency
    model's (`cm_timesteps`)."""
    if nfe < 1:
        raise UserError(f"NFE must be >= 1, got {nfe}")
    t_min, t_max, rho = schedule.t_min, schedule.t_max, schedule.rho
    if grid == "edm_zero":
        if solver != "heun" or (nfe + 1) % 2:
            raise UserError(f"grid edm_zero is EDM's Heun sampler with odd NFE, got {solver} NFE {nfe}")
        return edm_timesteps((nfe + 1) // 2, t_min, t_max, rho, append_zero=True)
    if grid == "pd":
        if afs:
            raise UserError("the PD grid has no analytical first step (afs false)")
        return pd_timesteps(nfe, t_min, t_max, rho)
    if grid == "cm":
        return cm_timesteps(nfe, afs, schedule)
    n = num_timestamps(nfe, afs, solver)
    if n is None:
        raise UserError(f"solver {solver} cannot take exactly {nfe} NFE (afs={afs})")
    if schedule.t_last:
        if n < 3:
            raise UserError(f"t_last needs at least 3 timestamps, {solver} at NFE {nfe} (afs={afs}) has {n}")
        import torch

        t = edm_timesteps(n - 1, schedule.t_last, t_max, rho)
        return torch.cat([t, t.new_full((1,), t_min)])
    return edm_timesteps(n, t_min, t_max, rho)


def cm_timesteps(nfe: int, afs: bool, schedule: Schedule) -> torch.Tensor:
    """A consistency model's grid of `nfe` evaluations, ending at 0: t_max alone at NFE 1;
    from NFE 2 the ramp from t_max to the schedule's t_last (the level its last evaluation
    re-noises to: 0.821 in the consistency-model papers), then 0."""
    import torch

    if afs:
        raise UserError("the consistency grid has no analytical first step (afs false)")
    if nfe == 1:
        return torch.tensor([schedule.t_max, 0.0], dtype=torch.float64)
    if not schedule.t_last:
        raise UserError(f"the consistency grid at NFE {nfe} re-noises to t_last: give a t_last > 0")
    t = edm_timesteps(nfe, schedule.t_last, schedule.t_max, schedule.rho)
    return torch.cat([t, t.new_zeros(1)])


def refine(student_t: torch.Tensor, K: int, rho: float) -> torch.Tensor:
    """Teacher grid: K steps between consecutive student timestamps, uniform in t^(1/rho).
    Every K-th point of the result is a student timestamp."""
    import torch

    s = student_t.to(torch.float64) ** (1 / rho)
    frac = torch.arange(K, dtype=torch.float64) / K
    fine = (s[:-1, None] + frac[None, :] * (s[1:, None] - s[:-1, None])).reshape(-1)
    return torch.cat([fine, s[-1:]]) ** rho
