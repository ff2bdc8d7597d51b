"""O2MKD: one-to-many knowledge distillation (Zhang & Ma 2024), and its one-to-one
baseline (N = 1).

N small students each own a contiguous range of noise levels; `Router` presents them
as one denoiser D(x; sigma) that sends every sample to the student owning its sigma, so
every solver runs on it unchanged. The paper's body is not public (its abstract is);
the range split, the student size and the KD losses are choices, see
`split_boundaries` and `O2MKD`.

The loss and the update; rows, rule and config checks: `plan.py`."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING
from ...errors import UserError
from ...recipe import Recipe
from ...schedules import Schedule, sigma_at, timesteps
from .. import register
from ...nets.students import student_spec, students_from_teacher
from .plan import SPLITS, O2MKDPlan

if TYPE_CHECKING:  # torch is imported where training needs it
    import torch
    from torch import nn


def split_boundaries(n: int, split: str, t_min: float, t_max: float, rho: float, grid_steps: int = 18) -> list[float]:
    """The n - 1 inner boundaries (descending) of n contiguous ranges of [t_min, t_max].

    log_sigma: equal widths in log sigma. rho: equal widths in t^(1/rho), the coordinate
    in which EDM's sampling grid is uniform, so each student serves the same number of
    steps at any step count. steps: equal numbers of steps of one teacher grid of
    `grid_steps` timestamps (boundaries between grid points, at their midpoint in
    t^(1/rho))."""
    if n < 1:
        raise UserError(f"need at least one student, got {n}")
    if split == "log_sigma":
        lo, hi = math.log(t_min), math.log(t_max)
        return [math.exp(hi + k / n * (lo - hi)) for k in range(1, n)]
    if split == "rho":
        return [sigma_at(k / n, t_min, t_max, rho) for k in range(1, n)]
    if split == "steps":
        if grid_steps < n:
            raise UserError(f"a grid of {grid_steps} timestamps cannot feed {n} students")
        u = [i / (grid_steps - 1) for i in range(grid_steps)]
        cuts = [round(k * grid_steps / n) for k in range(1, n)]
        return [sigma_at(0.5 * (u[c - 1] + u[c]), t_min, t_max, rho) for c in cuts]
    raise UserError(f"unknown split '{split}' (known: {', '.join(SPLITS)})")


def _feature_module(denoiser: nn.Module) -> nn.Module:
    """The feature KD point: the backbone's bottleneck (`bottleneck()` of every network in nets/)."""
    net = getattr(denoiser, "model", denoiser)
    if not hasattr(net, "bottleneck"):
        raise UserError(f"feature KD needs a backbone with a bottleneck, which {type(net).__name__} lacks; "
                        "use --kd output")
    return net.bottleneck()


def attention_map(f: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Parameter-free feature summary comparable across widths (attention transfer):
    channel mean of squares, average-pooled to `size` x `size` when given (students with
    fewer levels have a larger bottleneck), flattened, L2-normalised per sample."""
    from torch.nn import functional as F

    a = f.float().pow(2).mean(1, keepdim=True)
    if size is not None and a.shape[-1] != size:
        a = F.adaptive_avg_pool2d(a, size)
    a = a.flatten(1)
    return a / (a.norm(dim=1, keepdim=True) + 1e-8)


class _Capture:
    def __init__(self, module):
        self.out = None
        self.handle = module.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        self.out = output



@register
class O2MKD(O2MKDPlan):
    """KD of a teacher into a Router (N = 1: the one-to-one baseline).

    Each iteration: for every student a full batch of `batch_size` training images with
    sigma uniform in t^(1/rho) within that student's range (the students' ranges
    partition [t_min, t_max]; N = 1 draws over the whole schedule), so each student gets
    as many samples per update as the one-to-one student; the teacher's denoised value
    as target, EDM's loss weight (sigma^2 + sd^2) / (sigma sd)^2, one Adam step for all.
    'output+feature' adds `feature_weight` times the distance between the bottleneck
    attention maps of student and teacher."""

    def __init__(self, settings, device):
        import torch

        from ...data import load_dataset
        from ...nets import check_kwargs
        from ...nets.router import router_spec
        from ...precond import build_denoiser, load_teacher

        self.settings = settings
        images, _ = load_dataset(settings.dataset, settings.dataset_path)
        self.teacher, tspec = load_teacher(settings.teacher, device=device, images=images)
        check_kwargs(tspec["net"], settings.student_kwargs, key="--student-kwargs")
        self.schedule = Schedule.from_args(settings)
        self.boundaries = split_boundaries(settings.num_students, settings.split, **self.schedule.to_dict(),
                                           grid_steps=settings.split_grid)
        self.spec = router_spec(student_spec(tspec, settings.student_kwargs, settings.init), settings.num_students,
                                self.boundaries)
        # each student's range of u (sigma = schedule.sigma_at(u)): t_max (u = 0) for student 0 .. t_min (u = 1)
        u = [0.0, *(float(self.schedule.u_at(b)) for b in self.boundaries), 1.0]
        self.u_ranges = list(zip(u[:-1], u[1:]))
        torch.manual_seed(settings.seed)
        self.model = build_denoiser(self.spec).to(device)
        if settings.init == "teacher":
            students_from_teacher(self.model, self.teacher)
        self.images, self.batch_size = images.to(device), settings.batch_size
        self.sigma_data = float(tspec.get("precond_kwargs", {}).get("sigma_data", 0.5))
        self.counters = {"teacher_nfe": 0, "images_seen": 0}
        if settings.kd == "output+feature":
            self._t_feat = _Capture(_feature_module(self.teacher))
            self._s_feat = [_Capture(_feature_module(s)) for s in self.model.students]

    def sample_sigma(self, n: int, gen: torch.Generator, u_range=(0.0, 1.0)) -> torch.Tensor:
        """n noise levels uniform in t^(1/rho) within u_range (the whole schedule by default)."""
        import torch

        lo, hi = u_range
        u = lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)
        return self.schedule.sigma_at(u).float()

    def loss(self, y: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Summed over the samples and divided by the batch size: with every student's
        batch in y, each student's gradient is that of its own batch mean."""
        import torch

        x = y + sigma.view(-1, 1, 1, 1) * noise
        with torch.no_grad():
            target = self.teacher(x, sigma)
        sd = self.sigma_data
        w = ((sigma ** 2 + sd ** 2) / (sigma * sd) ** 2).view(-1, 1, 1, 1)
        d = self.train_model(x, sigma)   # the router: each student sees the samples it owns
        total = (w * (d - target) ** 2).flatten(1).mean(1).sum()
        if self.settings.kd == "output+feature":
            own = self.model.owner(sigma)
            for j in own.unique().tolist():   # each student ran once, on its own samples
                size = min(self._s_feat[j].out.shape[-1], self._t_feat.out.shape[-1])
                a_s = attention_map(self._s_feat[j].out, size)
                a_t = attention_map(self._t_feat.out[own == j], size)
                total = total + self.settings.feature_weight * (a_s - a_t).pow(2).sum(1).sum() * a_s.shape[1]
        return total * self.settings.num_students / len(y)

    def draw_batch(self, gen: torch.Generator):
        """Images, noise levels and noise of one update: for every student a full batch
        (`batch_size` images, sigma uniform in t^(1/rho) within its own range), so each
        student sees as many samples per update as the one-to-one student (N = 1 draws
        exactly what the one-to-one baseline always drew)."""
        import torch

        parts = []
        for u_range in self.u_ranges:
            idx = torch.randint(len(self.images), (self.batch_size,), generator=gen)
            y = self.images[idx.to(self.images.device)]
            sigma = self.sample_sigma(self.batch_size, gen, u_range).to(y.device)
            parts.append((y, sigma, torch.randn(y.shape, generator=gen).to(y.device)))
        return [torch.cat(v) for v in zip(*parts)]

    def train_step(self, iteration, gen, opt_step) -> dict:
        from ...distributed import rank_slice

        y, sigma, noise = self.draw_batch(gen)
        loss = self.loss(*(rank_slice(v) for v in (y, sigma, noise)))
        opt_step(loss)
        self.counters["teacher_nfe"] += len(y)
        self.counters["images_seen"] += len(y)
        return {"loss": loss.item()}

    def curve_sampler(self) -> dict:
        """DDIM at `curve_nfe` steps on EDM's grid (the rows' sampler)."""
        return {"timesteps": timesteps("edm", self.settings.curve_nfe, False, "euler", self.schedule), "afs": False,
                "solver": "euler"}

    def curve_probes(self, seeds, device) -> list:
        """The router with DDIM `curve_nfe` against the teacher with the same sampler."""
        from ...precond import image_shape
        from ...sampling import generate_images
        s = self.curve_sampler()
        target = generate_images(self.teacher, seeds, s["timesteps"], "euler", False, img_shape=image_shape(self.spec),
                                 progress=False, device=device)
        return [(s, target)]

    def recipe(self) -> Recipe:
        """Any step count: rows name the solver and NFE (DDIM, a fast solver)."""
        return Recipe(solver="euler", afs=False, grid="edm", final_step="force", schedule=self.schedule)

    def meta(self, res) -> dict:
        return {"num_students": self.settings.num_students, "boundaries": self.boundaries,
                "params_per_student": sum(p.numel() for p in self.model.students[0].parameters())}
