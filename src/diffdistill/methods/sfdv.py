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

import copy

import torch
from torch import nn
from torch.nn import functional as F

from ..io import UserError, read_meta
from ..naming import TEACHER, TRAJECTORIES, cache_path, student_model
from ..nets.unet import positional_embedding
from ..options import Opt
from ..precond import build_denoiser, load_teacher, register_kind
from ..rows import Row
from . import register
from .base import Method
from .sfd import SFD, TEACHER_OPTIONS, SFDBatches, student_timesteps, trajectory_batches
from .teacher import SCHEDULE_OPTIONS


class StepConditioned(nn.Module):
    """D(x; sigma, num_steps): a denoiser whose backbone also sees the step count."""

    def __init__(self, denoiser: nn.Module, embed_dim: int = 32, zero_init: bool = True):
        super().__init__()
        self.denoiser = denoiser
        emb_ch = denoiser.model.emb_channels
        self.embed_dim = embed_dim
        self.step_map0 = nn.Linear(embed_dim, emb_ch)
        self.step_map1 = nn.Linear(emb_ch, emb_ch)
        if zero_init:
            nn.init.zeros_(self.step_map1.weight)
            nn.init.zeros_(self.step_map1.bias)

    def step_embedding(self, num_steps, batch: int, device) -> torch.Tensor:
        n = torch.as_tensor(num_steps, device=device).float().reshape(-1).expand(batch)
        return self.step_map1(F.silu(self.step_map0(positional_embedding(n, self.embed_dim))))

    def forward(self, x, sigma, class_labels=None, num_steps=None, **model_kwargs):
        if num_steps is None:
            raise UserError("an SFD-v model needs num_steps (its recipe's step_conditioning)")
        emb = self.step_embedding(num_steps, x.shape[0], x.device)
        return self.denoiser(x, sigma, class_labels=class_labels, extra_emb=emb, **model_kwargs)


def build_step_conditioned(spec: dict) -> StepConditioned:
    return StepConditioned(build_denoiser(spec["base"]), embed_dim=int(spec.get("embed_dim", 32)), zero_init=False)


register_kind("stepcond", build_step_conditioned)


def step_conditioned_spec(base_spec: dict, embed_dim: int, nfe_list) -> dict:
    return {"kind": "stepcond", "base": base_spec, "embed_dim": embed_dim, "nfe": list(nfe_list)}


def from_teacher(teacher: nn.Module, embed_dim: int = 32) -> StepConditioned:
    """A student that starts as the teacher (weights copied, new layers zero at output)."""
    return StepConditioned(copy.deepcopy(teacher), embed_dim=embed_dim, zero_init=True)


@register
class SFDV(Method):
    name = "sfdv"
    section = "sfdv"
    reads = ("sfd", "trajectories")
    order = 20
    stage_inputs = ("results/teacher", "results/featnet", TRAJECTORIES)
    summary = "SFD-v: one step-conditioned student for several NFE (each batch draws its NFE)"
    teacher_afs = False
    options = (Opt("teacher", required=True, help="teacher checkpoint"),
               Opt("trajectories", required=True, help="one cache per --nfe value, same order",
                   kwargs={"nargs": "+"}),
               Opt("nfe", key="sfdv.nfe"), Opt("afs", key="sfd.afs"), Opt("loss", key="sfd.loss"),
               Opt("embed_dim", key="sfdv.embed_dim")) + SCHEDULE_OPTIONS + TEACHER_OPTIONS

    def __init__(self, args, device):
        if len(args.trajectories) != len(args.nfe):
            raise UserError(f"--trajectories gives {len(args.trajectories)} caches for {len(args.nfe)} NFE values")
        self.args = args
        teacher, base_spec = load_teacher(args.teacher, device=device)
        self.model = from_teacher(teacher, embed_dim=args.embed_dim).to(device)
        self.spec = step_conditioned_spec(base_spec, args.embed_dim, args.nfe)
        self.per_nfe = {}
        for nfe, path in zip(args.nfe, args.trajectories):
            ts = student_timesteps(nfe, args.afs, args.t_min, args.t_max, args.rho)
            one = copy.copy(args)
            one.trajectories = path
            batches, _ = trajectory_batches(one, args.teacher, ts, self.teacher_afs, device)
            self.per_nfe[len(ts)] = SFDBatches(self, batches, ts, args.batch_size, args.afs, args.loss)
        self.per_nfe = dict(sorted(self.per_nfe.items()))
        self.counters = {"teacher_nfe": 0, "trajectories": 0, **{f"batches_steps{k}": 0 for k in self.per_nfe}}

    def train_step(self, iteration, gen, opt_step) -> dict:
        keys = list(self.per_nfe)
        n = keys[int(torch.randint(len(keys), (1,), generator=gen))]
        self.counters[f"batches_steps{n}"] += 1
        return {**self.per_nfe[n].train_step(gen, opt_step, self.counters, num_steps=n), "num_steps": n}

    def recipe(self) -> dict:
        a = self.args
        return {"solver": "euler", "nfe": list(a.nfe), "afs": a.afs, "grid": "edm", "final_step": "force",
                "t_min": a.t_min, "t_max": a.t_max, "rho": a.rho, "step_conditioning": True}

    def meta(self, res) -> dict:
        return {"nfe": list(self.args.nfe),
                "teacher_nfe": sum(read_meta(p).get("teacher_nfe", 0) for p in self.args.trajectories)}

    @classmethod
    def rule_inputs(cls, cfg: dict, wildcards=None) -> dict:
        d = SFD.defaults(cfg)
        return {"teacher": TEACHER, "traj": [cache_path(SFD.cache_settings(cfg, d), n) for n in cfg["sfdv"]["nfe"]]}

    @classmethod
    def rule_values(cls, cfg: dict, wildcards, input, output) -> dict:
        return {"teacher": input.teacher, "trajectories": list(input.traj)}

    @staticmethod
    def rows(cfg: dict) -> list:
        if not cfg["sfdv"]["enabled"]:
            return []
        return [Row(name=f"students/sfdv/default/nfe{n}", label="SFD-v (one model)", nfe=n, family="sfdv",
                    model=student_model("sfdv"), sample_args=(("--nfe", n),), all_seed_sets=True, figure=True)
                for n in cfg["sfdv"]["nfe"]]
