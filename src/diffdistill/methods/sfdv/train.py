"""SFD-v: the loss and the update (one step-conditioned student for several NFE)."""
from __future__ import annotations

from dataclasses import replace
from ...errors import UserError
from ...provenance import read_meta
from ...recipe import Recipe
from ...schedules import Schedule
from .. import register
from ..sfd.train import SFDBatches, student_timesteps, trajectory_batches, trajectory_targets
from .plan import SFDVPlan


@register
class SFDV(SFDVPlan):
    teacher_afs = False

    def __init__(self, settings, device):
        if len(settings.trajectories) != len(settings.nfe):
            raise UserError(f"--trajectories gives {len(settings.trajectories)} caches for {len(settings.nfe)} NFE values")
        from ...nets.stepcond import from_teacher, step_conditioned_spec
        from ...precond import load_teacher

        self.settings, self.schedule = settings, Schedule.from_args(settings)
        teacher, base_spec = load_teacher(settings.teacher, device=device)
        self.model = from_teacher(teacher, embed_dim=settings.embed_dim).to(device)
        self.spec = step_conditioned_spec(base_spec, settings.embed_dim, settings.nfe)
        self.per_nfe = {}
        for nfe, path in zip(settings.nfe, settings.trajectories):
            ts = student_timesteps(nfe, settings.afs, self.schedule)
            one = replace(settings, trajectories=path)
            batches, _ = trajectory_batches(one, settings.teacher, ts, self.teacher_afs, device)
            self.per_nfe[len(ts)] = SFDBatches(self, batches, ts, settings.batch_size, settings.afs, settings.loss)
        self.per_nfe = dict(sorted(self.per_nfe.items()))
        self.counters = {"teacher_nfe": 0, "trajectories": 0, **{f"batches_steps{k}": 0 for k in self.per_nfe}}

    def train_step(self, iteration, gen, opt_step) -> dict:
        import torch

        keys = list(self.per_nfe)
        n = keys[int(torch.randint(len(keys), (1,), generator=gen))]
        self.counters[f"batches_steps{n}"] += 1
        return {**self.per_nfe[n].train_step(gen, opt_step, self.counters, num_steps=n), "num_steps": n}

    def curve_probes(self, seeds, device) -> list:
        """Every NFE it serves, each against its own teacher targets: the curve is their mean."""
        import torch

        return [({"timesteps": torch.tensor(b.t), "afs": self.settings.afs, "solver": "euler", "model_kwargs": {"num_steps": n}},
                 trajectory_targets(self.settings, self.settings.teacher, torch.tensor(b.t), self.teacher_afs, seeds, device))
                for n, b in self.per_nfe.items()]

    def recipe(self) -> Recipe:
        return Recipe(solver="euler", nfe=tuple(self.settings.nfe), afs=self.settings.afs, grid="edm", final_step="force",
                      schedule=self.schedule, step_conditioning=True)

    def meta(self, res) -> dict:
        return {"nfe": list(self.settings.nfe),
                "teacher_nfe": sum(read_meta(p).get("teacher_nfe", 0) for p in self.settings.trajectories)}
