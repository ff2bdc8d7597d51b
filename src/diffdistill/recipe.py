"""How a model samples (`Recipe`): a checkpoint carries its whole recipe, a result row a
partial one that overrides it. No torch at import: the workflow plans its rows with it
(`diffdistill.rows`), and the Snakemake workflow catalog lints the workflow where only
Snakemake is installed. Sampling by a recipe is `diffdistill.sampling`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .flagtext import flag, flags
from .errors import UserError
from .schedules import REQUIRED as SCHEDULE_REQUIRED
from .schedules import Schedule

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Recipe:
    """How a model samples: solver, NFE, AFS, grid, final-step rule and schedule, and the
    timestamps that follow from them. A checkpoint stores its whole recipe (`to_dict`);
    a row holds a partial one (None: the checkpoint's value) whose `to_flags` are the
    `diffdistill sample` options that `from_args` parses back over the checkpoint's.
    `nfe` is a tuple for a model that serves several (SFD-v, with `step_conditioning`)."""
    solver: str | None = None
    nfe: int | tuple | None = None
    afs: bool | None = None
    grid: str | None = None
    final_step: str | None = None
    schedule: Schedule | None = None
    timesteps: tuple | None = None
    step_conditioning: bool | None = None

    SETTINGS: ClassVar[tuple] = ("solver", "nfe", "afs", "grid", "final_step")  # flags; with the schedule's
    SHAPING: ClassVar[tuple] = ("solver", "nfe", "afs", "grid", "schedule")       # what the timestamps follow

    def __post_init__(self):
        for k in ("nfe", "timesteps"):
            if isinstance(getattr(self, k), list):
                object.__setattr__(self, k, tuple(getattr(self, k)))

    def to_dict(self) -> dict:
        """The checkpoint's form: flat keys, schedule fields in place, None left out."""
        out = {k: getattr(self, k) for k in self.SETTINGS}
        out.update(self.schedule.to_dict() if self.schedule else {})
        out.update(timesteps=self.timesteps, step_conditioning=self.step_conditioning)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Recipe":
        d = dict(d or {})
        keys = [f.name for f in dataclasses.fields(Schedule)]
        sched = Schedule(**{k: d[k] for k in keys if d.get(k) is not None}) \
            if all(d.get(k) is not None for k in SCHEDULE_REQUIRED) else None
        for k in keys:
            d.pop(k, None)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise UserError(f"unknown sampling recipe keys {sorted(unknown)}")
        return cls(schedule=sched, **d)

    def to_flags(self) -> str:
        """The `diffdistill sample` flags of the settings this recipe gives."""
        text = flags({k: getattr(self, k) for k in self.SETTINGS})
        return " ".join(t for t in (text, self.schedule.to_flags() if self.schedule else "") if t)

    @classmethod
    def from_args(cls, args, base: "Recipe | None" = None) -> "Recipe":
        """The recipe the parsed sample options give, over `base` (a checkpoint's recipe)."""
        base = base or cls()
        given = {k: getattr(args, k, None) for k in cls.SETTINGS}
        sched = None
        if any(getattr(args, f.name, None) is not None for f in dataclasses.fields(Schedule)):
            sched = Schedule.from_args(args, base.schedule or default_schedule())
        return cls(schedule=sched, **given).over(base)

    def over(self, base: "Recipe") -> "Recipe":
        """This recipe's given settings over `base`'s; `base`'s recorded timestamps are
        kept only while none of the settings they follow changes."""
        changed = {k: v for k in self.SHAPING if (v := getattr(self, k)) is not None and v != getattr(base, k)}
        out = dataclasses.replace(base, **{f.name: v for f in dataclasses.fields(self)
                                           if (v := getattr(self, f.name)) is not None})
        return dataclasses.replace(out, timesteps=None) if changed and self.timesteps is None else out

    def resolved(self) -> "Recipe":
        """Complete for sampling: a teacher's missing grid, final step, AFS and schedule
        are the defaults; an NFE must be one the model serves."""
        r = dataclasses.replace(self, grid=self.grid or "edm", final_step=self.final_step or "force",
                                afs=False if self.afs is None else self.afs,
                                schedule=self.schedule or default_schedule())
        if isinstance(r.nfe, tuple):
            raise UserError(f"the model serves NFE {list(r.nfe)}: give --nfe")
        missing = [k for k in self.SETTINGS if getattr(r, k) is None]
        if missing:
            raise UserError("the checkpoint carries no sampling recipe for "
                            f"{', '.join(missing)}: give {' '.join(flag(k) for k in missing)}")
        return r

    def grid_timesteps(self) -> torch.Tensor:
        from .schedules import timesteps

        return timesteps(self.grid, self.nfe, self.afs, self.solver, self.schedule)

    def sampling_timesteps(self, source: str = "the checkpoint") -> torch.Tensor:
        """The timestamps to sample at: the recorded ones, which must be what the recipe's
        settings give (else one line), or the settings' own when none are recorded."""
        import torch

        ts = self.grid_timesteps()
        if self.timesteps is not None:
            rec = torch.tensor(self.timesteps, dtype=ts.dtype)
            if rec.shape != ts.shape or not torch.allclose(rec, ts, rtol=1e-12, atol=0):
                raise UserError(f"{source} records {len(rec)} timestamps ({_head(rec)}) but its recipe gives "
                                f"{len(ts)} ({_head(ts)}): the recipe and its timestamps disagree")
            return rec
        return ts

    def given_nfe(self, served: "Recipe") -> None:
        """Refuse an NFE the model does not serve (SFD-v serves a list)."""
        if isinstance(served.nfe, tuple) and self.nfe is not None and self.nfe not in served.nfe:
            raise UserError(f"--nfe {self.nfe}: the model serves NFE {list(served.nfe)} only")


def _head(t: torch.Tensor) -> str:
    return ", ".join(f"{float(v):.6g}" for v in t[:3]) + (", ..." if len(t) > 3 else "")


def default_schedule() -> Schedule:
    """The config schema's schedule: that of a checkpoint without a recipe (a teacher)."""
    from .config import schema_default
    return Schedule(**{k: schema_default(f"schedule.{k}") for k in SCHEDULE_REQUIRED})
