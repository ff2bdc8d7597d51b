"""SFD-v: one student for every NFE (SFD, section "SFD-v").

The student is the teacher plus a step-count embedding: the number of student
timestamps (4..7 for NFE 2..5 with AFS) goes through a sinusoidal positional
embedding and two linear layers, and the result is added to the backbone's noise
embedding, so it modulates every residual block (the backbones' `extra_emb`).

Initialisation: the second linear layer starts at zero (weights and bias), so the
added embedding is exactly 0 and the student equals the teacher at step 0; the first
layer is random, so the gradient reaching the zero layer is not zero and it learns
from the first optimizer step.

Training: every batch draws one timestamp count from the configured set and runs an
ordinary SFD batch on that NFE's cached teacher trajectories (the per-NFE SFD caches).
The checkpoint's recipe lists the NFE it serves; sampling tells the model its count.
"""
from __future__ import annotations

from dataclasses import replace

from ...errors import UserError
from ...provenance import read_meta
from ...naming import TEACHER, TRAJECTORIES, cache_path, student_model
from ...options import SCHEDULE_OPTIONS, Opt
from ...rows import EXTENDED, Row
from ...recipe import Recipe
from ...schedules import Schedule
from .. import register
from ..base import Method, curve_inputs, curve_values
from ..sfd.plan import TEACHER_OPTIONS, SFDPlan
from ..sfd.train import SFDBatches, student_timesteps, trajectory_batches, trajectory_targets


@register
class SFDV(Method):
    name = "sfdv"
    label = "SFD-v"
    colour = "tab:cyan"
    section = "sfdv"
    reads = ("sfd", "trajectories")
    order = 20
    stage_inputs = ("results/teacher", "results/featnet", TRAJECTORIES)
    summary = "SFD-v: one step-conditioned student for several NFE (each batch draws its NFE)"
    teacher_afs = False
    curves = True
    options = (Opt("teacher", required=True, help="teacher checkpoint"),
               Opt("trajectories", required=True, help="one cache per --nfe value, same order",
                   kwargs={"nargs": "+"}), Opt("afs", key="sfd.afs"), Opt("loss", key="sfd.loss")) + SCHEDULE_OPTIONS + TEACHER_OPTIONS

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

    @classmethod
    def rule_inputs(cls, cfg: dict, wildcards=None) -> dict:
        d = SFDPlan.defaults(cfg)
        return {"teacher": TEACHER, "traj": [cache_path(SFDPlan.cache_settings(cfg, d), n) for n in cfg["sfdv"]["nfe"]],
                **curve_inputs(cfg)}

    @classmethod
    def rule_values(cls, cfg: dict, wildcards, input, output) -> dict:
        return {"teacher": input.teacher, "trajectories": list(input.traj),
                "schedule": SFDPlan.default_schedule(cfg), **curve_values(cfg, input, output)}

    @staticmethod
    def rows(cfg: dict) -> list:
        if not cfg["sfdv"]["enabled"]:
            return []
        return [Row(name=f"students/sfdv/default/nfe{n}", label="SFD-v (one model)", nfe=n, family="sfdv",
                    model=student_model("sfdv"), recipe=Recipe(nfe=n), all_seed_sets=True, figure=True, tables=EXTENDED,
                    meta={"target": SFDPlan.target_row(cfg, n)} if n in cfg["sfd"]["nfe"] else {})
                for n in cfg["sfdv"]["nfe"]]
