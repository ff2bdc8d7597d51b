"""O2MKD's router: one denoiser D(x; sigma) over N students, each owning a contiguous
range of noise levels (`diffdistill.methods.o2mkd` trains it; checkpoints of kind
'router' load through `diffdistill.precond` alone)."""
from __future__ import annotations

import copy

import torch
from torch import nn


class Router(nn.Module):
    """Denoiser D(x; sigma) over N students. Student j owns sigma in [b_j+1, b_j) with
    b_0 = +inf, b_N = -inf: every sigma (0 and beyond t_max included) has exactly one
    owner; a sigma equal to a boundary belongs to the higher-noise student."""

    def __init__(self, students: list[nn.Module], boundaries: list[float]):
        super().__init__()
        if len(boundaries) != len(students) - 1:
            raise ValueError(f"{len(students)} students need {len(students) - 1} boundaries")
        if any(a <= b for a, b in zip(boundaries, boundaries[1:])):
            raise ValueError(f"boundaries must be strictly descending, got {boundaries}")
        self.students = nn.ModuleList(students)
        # float32, the precision in which the solvers hand sigma to the denoiser
        self.register_buffer("boundaries", torch.tensor(boundaries, dtype=torch.float32))

    def params_per_step(self) -> int:
        """Parameters one network evaluation uses: one student's (the largest)."""
        return max(sum(p.numel() for p in s.parameters()) for s in self.students)

    def owner(self, sigma: torch.Tensor) -> torch.Tensor:
        """Index of the owning student for each sigma (flattened), compared in float32."""
        s = torch.as_tensor(sigma).to(torch.float32).reshape(-1).to(self.boundaries.device)
        return (s[:, None] < self.boundaries[None, :]).sum(1)

    def forward(self, x, sigma, **model_kwargs):
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
        sigma = sigma.reshape(-1).expand(x.shape[0]) if sigma.numel() == 1 else sigma.reshape(-1)
        own = self.owner(sigma)
        if len(self.students) == 1 or bool((own == own[0]).all()):
            return self.students[int(own[0])](x, sigma, **model_kwargs)
        out = torch.empty_like(x, dtype=torch.float32)
        for j in own.unique().tolist():
            m = own == j
            out[m] = self.students[j](x[m], sigma[m], **model_kwargs)
        return out


def router_spec(student_spec: dict, n: int, boundaries: list[float]) -> dict:
    return {"kind": "router", "boundaries": list(boundaries), "students": [copy.deepcopy(student_spec)] * n}


def build_router(spec: dict, build) -> Router:
    """The router of a spec; `build` makes each student's denoiser from its spec."""
    return Router([build(s) for s in spec["students"]], spec["boundaries"])
