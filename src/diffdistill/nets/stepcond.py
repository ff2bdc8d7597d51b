"""SFD-v's step-conditioned denoiser D(x; sigma, num_steps): one model for every NFE
(`diffdistill.methods.sfdv` trains it; checkpoints of kind 'stepcond' load through
`diffdistill.precond` alone)."""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import UserError
from .unet import positional_embedding


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


def build_step_conditioned(spec: dict, build) -> StepConditioned:
    """The student of a spec; `build` makes its base denoiser."""
    return StepConditioned(build(spec["base"]), embed_dim=int(spec.get("embed_dim", 32)), zero_init=False)


def step_conditioned_spec(base_spec: dict, embed_dim: int, nfe_list) -> dict:
    return {"kind": "stepcond", "base": base_spec, "embed_dim": embed_dim, "nfe": list(nfe_list)}


def from_teacher(teacher: nn.Module, embed_dim: int = 32) -> StepConditioned:
    """A student that starts as the teacher (weights copied, new layers zero at output)."""
    return StepConditioned(copy.deepcopy(teacher), embed_dim=embed_dim, zero_init=True)
