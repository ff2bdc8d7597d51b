"""O2MKD: one-to-many knowledge distillation (Zhang & Ma 2024), and its one-to-one
baseline (N = 1).

N small students each own a contiguous range of noise levels; `Router` presents them
as one denoiser D(x; sigma) that sends every sample to the student owning its sigma, so
every solver of `diffdistill.solvers` runs on it unchanged. The paper's body is not
public (METHODS.md section 3); the range split, the student size and the KD losses are
choices, see `split_boundaries` and `O2MKD`.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

SPLITS = ("log_sigma", "rho", "steps")
KD_KINDS = ("output", "output+feature")


def split_boundaries(n: int, split: str, t_min: float, t_max: float, rho: float = 7.0,
                     grid_steps: int = 18) -> list[float]:
    """The n - 1 inner boundaries (descending) of n contiguous ranges of [t_min, t_max].

    log_sigma: equal widths in log sigma. rho: equal widths in t^(1/rho), the coordinate
    in which EDM's sampling grid is uniform, so each student serves the same number of
    steps at any step count. steps: equal numbers of steps of one teacher grid of
    `grid_steps` timestamps (boundaries between grid points, at their midpoint in
    t^(1/rho))."""
    if n < 1:
        raise ValueError(f"need at least one student, got {n}")
    if split == "log_sigma":
        lo, hi = math.log(t_min), math.log(t_max)
        return [math.exp(hi + k / n * (lo - hi)) for k in range(1, n)]
    if split == "rho":
        lo, hi = t_min ** (1 / rho), t_max ** (1 / rho)
        return [(hi + k / n * (lo - hi)) ** rho for k in range(1, n)]
    if split == "steps":
        if grid_steps < n:
            raise ValueError(f"a grid of {grid_steps} timestamps cannot feed {n} students")
        s = [(t_max ** (1 / rho) + i / (grid_steps - 1) * (t_min ** (1 / rho) - t_max ** (1 / rho)))
             for i in range(grid_steps)]
        cuts = [round(k * grid_steps / n) for k in range(1, n)]
        return [(0.5 * (s[c - 1] + s[c])) ** rho for c in cuts]
    raise ValueError(f"unknown split '{split}' (known: {', '.join(SPLITS)})")


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

    def owner(self, sigma: torch.Tensor) -> torch.Tensor:
        """Index of the owning student for each sigma (flattened), compared in float32."""
        s = torch.as_tensor(sigma).to(torch.float32).reshape(-1)
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
    nk = student_spec["net_kwargs"]
    return {"kind": "router", "boundaries": list(boundaries), "students": [copy.deepcopy(student_spec)] * n,
            # image shape, read by the sampler as for any denoiser
            "net_kwargs": {"img_channels": nk["img_channels"], "img_resolution": nk["img_resolution"]}}


def build_router(spec: dict) -> Router:
    from ..precond import build_denoiser
    return Router([build_denoiser(s) for s in spec["students"]], spec["boundaries"])


def _feature_module(denoiser: nn.Module) -> nn.Module:
    """The backbone's bottleneck (last mid block): the feature KD point."""
    net = getattr(denoiser, "model", denoiser)
    if not hasattr(net, "mid"):
        raise ValueError(f"feature KD needs a backbone with a 'mid' stage, not {type(net).__name__}")
    return net.mid[-1]


def attention_map(f: torch.Tensor) -> torch.Tensor:
    """Parameter-free feature summary comparable across widths (attention transfer):
    channel mean of squares, flattened, L2-normalised per sample."""
    a = f.float().pow(2).mean(1).flatten(1)
    return a / (a.norm(dim=1, keepdim=True) + 1e-8)


class _Capture:
    def __init__(self, module):
        self.out = None
        self.handle = module.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        self.out = output


class O2MKD:
    """KD of a teacher into a Router (N = 1: the one-to-one baseline).

    Each iteration: a batch of training images, sigma uniform in t^(1/rho) over
    [t_min, t_max] (the students' ranges partition it, so with N students each sees
    its own range and, on average, batch / N samples; the total budget is that of the
    one-to-one student), the teacher's denoised value as target, EDM's loss weight
    (sigma^2 + sd^2) / (sigma sd)^2. 'output+feature' adds `feature_weight` times the
    distance between the bottleneck attention maps of student and teacher."""

    def __init__(self, router: Router, teacher, images: torch.Tensor, batch_size: int,
                 t_min: float = 0.006, t_max: float = 80.0, rho: float = 7.0, kd: str = "output",
                 feature_weight: float = 1.0, sigma_data: float = 0.5):
        if kd not in KD_KINDS:
            raise ValueError(f"unknown kd '{kd}' (known: {', '.join(KD_KINDS)})")
        self.model, self.teacher, self.images = router, teacher, images
        self.batch_size, self.t_min, self.t_max, self.rho = batch_size, t_min, t_max, rho
        self.kd, self.feature_weight, self.sigma_data = kd, feature_weight, sigma_data
        self.counters = {"teacher_nfe": 0, "images_seen": 0}
        if kd == "output+feature":
            self._t_feat = _Capture(_feature_module(teacher))
            self._s_feat = [_Capture(_feature_module(s)) for s in router.students]

    def sample_sigma(self, n: int, gen: torch.Generator) -> torch.Tensor:
        u = torch.rand(n, generator=gen, dtype=torch.float64)
        lo, hi = self.t_min ** (1 / self.rho), self.t_max ** (1 / self.rho)
        return ((hi + u * (lo - hi)) ** self.rho).float()

    def loss(self, y: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = y + sigma.view(-1, 1, 1, 1) * noise
        with torch.no_grad():
            target = self.teacher(x, sigma)
        sd = self.sigma_data
        w = ((sigma ** 2 + sd ** 2) / (sigma * sd) ** 2).view(-1, 1, 1, 1)
        own = self.model.owner(sigma)
        total = x.new_zeros(())
        for j in own.unique().tolist():  # per student, so feature hooks see one subset each
            m = own == j
            d = self.model.students[j](x[m], sigma[m])
            total = total + (w[m] * (d - target[m]) ** 2).flatten(1).mean(1).sum()
            if self.kd == "output+feature":
                a_s = attention_map(self._s_feat[j].out)
                a_t = attention_map(self._t_feat.out[m])
                total = total + self.feature_weight * (a_s - a_t).pow(2).sum(1).sum() * a_s.shape[1]
        return total / len(y)

    def train_step(self, iteration, gen, opt_step) -> dict:
        idx = torch.randint(len(self.images), (self.batch_size,), generator=gen)
        y = self.images[idx]
        sigma = self.sample_sigma(self.batch_size, gen)
        noise = torch.randn(y.shape, generator=gen)
        loss = self.loss(y, sigma, noise)
        opt_step(loss)
        self.counters["teacher_nfe"] += self.batch_size
        self.counters["images_seen"] += self.batch_size
        return {"loss": loss.item()}


def count_macs(model: nn.Module, x: torch.Tensor, sigma: float) -> int:
    """Multiply-accumulates of one denoiser evaluation on x (Conv2d and Linear layers,
    counted with forward hooks), per image."""
    total = [0]

    def hook(mod, inputs, output):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            total[0] += output.numel() * k
        elif isinstance(mod, nn.Linear):
            total[0] += output.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(x, torch.full((x.shape[0],), sigma))
    finally:
        for h in handles:
            h.remove()
    return total[0] // x.shape[0]
