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
ordinary SFD batch on that NFE's cached teacher trajectories."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..nets.unet import positional_embedding
from .sfd import SFD


class StepConditioned(nn.Module):
    """D(x; sigma, num_steps): a denoiser whose backbone also sees the step count.
    `num_steps` defaults to `self.num_steps`, which samplers set to the number of
    timestamps they use."""

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
        self.num_steps: int | None = None

    def step_embedding(self, num_steps, batch: int, device) -> torch.Tensor:
        n = torch.as_tensor(num_steps, device=device).float().reshape(-1).expand(batch)
        return self.step_map1(F.silu(self.step_map0(positional_embedding(n, self.embed_dim))))

    def forward(self, x, sigma, class_labels=None, num_steps=None, **model_kwargs):
        num_steps = self.num_steps if num_steps is None else num_steps
        if num_steps is None:
            raise ValueError("SFD-v model needs num_steps (set model.num_steps before sampling)")
        emb = self.step_embedding(num_steps, x.shape[0], x.device)
        return self.denoiser(x, sigma, class_labels=class_labels, extra_emb=emb, **model_kwargs)


def build_step_conditioned(spec: dict) -> StepConditioned:
    from ..precond import build_denoiser
    return StepConditioned(build_denoiser(spec["base"]), embed_dim=int(spec.get("embed_dim", 32)),
                           zero_init=False)


def step_conditioned_spec(base_spec: dict, embed_dim: int, nfe_list) -> dict:
    return {"kind": "stepcond", "base": base_spec, "embed_dim": embed_dim, "nfe": list(nfe_list)}


def from_teacher(teacher: nn.Module, embed_dim: int = 32) -> StepConditioned:
    """A student that starts as the teacher (weights copied, new layers zero at output)."""
    import copy
    return StepConditioned(copy.deepcopy(teacher), embed_dim=embed_dim, zero_init=True)


class SFDV:
    """One SFD student per batch's NFE: `per_nfe` maps a timestamp count to an SFD
    method (its cached trajectories and timestamps) sharing one model."""

    def __init__(self, model: StepConditioned, per_nfe: dict[int, SFD]):
        self.model = model
        self.per_nfe = dict(sorted(per_nfe.items()))
        self.counters = {"teacher_nfe": 0, "trajectories": 0, **{f"batches_steps{k}": 0 for k in self.per_nfe}}
        for sfd in self.per_nfe.values():  # one set of counters, saved and resumed by the trainer
            sfd.counters = self.counters

    def train_step(self, iteration, gen, opt_step) -> dict:
        keys = list(self.per_nfe)
        n = keys[int(torch.randint(len(keys), (1,), generator=gen))]
        self.counters[f"batches_steps{n}"] += 1
        return {**self.per_nfe[n].train_step(iteration, gen, opt_step, num_steps=n), "num_steps": n}
