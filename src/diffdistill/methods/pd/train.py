"""Progressive Distillation (Salimans & Ho, ICLR 2022) in EDM's VE form, one round per
run: the loss and the update (rows, rule and config checks: `plan.py`).

One round halves the step count: the student starts as a copy of the teacher and
learns to take ONE Euler (= DDIM) step from t to t'' that lands where the teacher's
TWO Euler steps t -> t' -> t'' land. With x'' the teacher's two-step result, the
denoiser value that makes one Euler step hit x'' is (Salimans & Ho, Algorithm 2, in σ)

    D_tilde = (x'' - (t''/t) x) / (1 - t''/t),

which on the last step (t'' = 0) is x'' itself, i.e. the teacher's denoised value at
the midpoint. The loss is PD's truncated-SNR weight max(SNR, 1) = max(1/t^2, 1) times
the squared error of the student's denoised value against D_tilde.

The grids of all rounds are nested (`schedules.pd_timesteps`): a round's student grid is
its next round's teacher grid. Round N's teacher is round 2N's student (the trained
teacher when 2N = pd.n0), so rebuilding a round leaves earlier ones untouched.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ...atomic import meta_path
from ...provenance import read_meta
from ...recipe import Recipe
from ...schedules import Schedule, pd_timesteps
from ...solvers import euler
from .. import register
from .plan import PDPlan

if TYPE_CHECKING:  # torch is imported where training needs it: the workflow plans rows without it
    import torch


def two_teacher_steps(denoise, x, t, t_mid, t_next):
    """The teacher's two Euler steps t -> t' -> t'' (per-sample column times)."""
    x_mid = euler(x, t, t_mid, denoise(x, t.flatten()))
    return euler(x_mid, t_mid, t_next, denoise(x_mid, t_mid.flatten()))


def pd_target(x, t, t_next, x_next):
    """Denoiser value whose single Euler step from (x, t) reaches x_next at t_next."""
    ratio = t_next / t
    return (x_next - ratio * x) / (1 - ratio)


def snr_weight(t):
    """Truncated SNR, max(SNR, 1), with SNR = 1 / t^2 in VE form."""
    return (1 / t ** 2).clamp(min=1.0)


def _col(t, x):
    """A tensor of times as a per-sample column in x's dtype."""
    return t.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def previous_costs(teacher_path) -> dict:
    """Costs of the PD rounds before this one (zero when the teacher is the trained one)."""
    m = read_meta(teacher_path) if meta_path(teacher_path).exists() else {}
    if m.get("method") != "pd":
        return {"wall_time": 0.0, "teacher_nfe": 0, "optimizer_steps": 0}
    return {"wall_time": m["cumulative_wall_time"], "teacher_nfe": m["cumulative_teacher_nfe"],
            "optimizer_steps": m["cumulative_optimizer_steps"]}


@register
class ProgressiveDistillation(PDPlan):
    def __init__(self, settings, device):
        from ...data import load_dataset
        from ...precond import load_denoiser, load_teacher

        self.settings = settings
        images, _ = load_dataset(settings.dataset, settings.dataset_path)
        self.teacher, self.spec = load_teacher(settings.teacher, device=device, images=images)
        self.model, _ = load_denoiser(settings.teacher, device=device)
        self.images, self.batch_size, self.num_steps = images.to(device), settings.batch_size, settings.nfe
        s = Schedule.from_args(settings)
        self.teacher_t = pd_timesteps(2 * settings.nfe, s.t_min, s.t_max, s.rho)
        self.sampler = Recipe(solver="euler", nfe=settings.nfe, afs=False, grid="pd", final_step="force", schedule=s)
        self.student_t = self.teacher_t[::2]
        self.counters = {"teacher_nfe": 0, "images_seen": 0}

    def teacher_denoise(self, x, t):
        import torch

        with torch.no_grad():
            return self.teacher(x, t)

    def batch(self, gen: torch.Generator):
        """Noisy images at a random student timestamp, with its midpoint and end (this
        rank's share of the batch)."""
        import torch

        from ...distributed import rank_slice

        idx = torch.randint(len(self.images), (self.batch_size,), generator=gen)
        y = self.images[idx.to(self.images.device)]
        i = torch.randint(self.num_steps, (self.batch_size,), generator=gen)
        t, t_mid, t_next = (_col(self.teacher_t[2 * i + k].float(), y).to(y.device) for k in range(3))
        x = y + t * torch.randn(y.shape, generator=gen).to(y.device)
        return tuple(rank_slice(v) for v in (x, t, t_mid, t_next))

    def target(self, x, t, t_mid, t_next) -> torch.Tensor:
        return pd_target(x, t, t_next, two_teacher_steps(self.teacher_denoise, x, t, t_mid, t_next))

    def loss(self, x, t, t_mid, t_next, target=None, model=None) -> torch.Tensor:
        target = self.target(x, t, t_mid, t_next) if target is None else target
        denoised = (model or self.train_model)(x, t.flatten())
        return (snr_weight(t) * (denoised - target) ** 2).flatten(1).mean(1).mean()

    def train_step(self, iteration, gen, opt_step) -> dict:
        loss = self.loss(*self.batch(gen))
        opt_step(loss)
        self.counters["teacher_nfe"] += 2 * self.batch_size
        self.counters["images_seen"] += self.batch_size
        return {"loss": loss.item()}

    def recipe(self) -> Recipe:
        return replace(self.sampler, timesteps=tuple(self.student_t.tolist()))

    def curve_sampler(self) -> dict:
        return {"timesteps": self.student_t, "afs": False, "solver": "euler"}

    def validation_batch(self, seeds):
        """The validation loss's fixed batch, drawn once from a generator seeded with the first
        curve seed: training images with fresh noise (not held-out images) at the student
        timestamps k mod N (every step equally), with the teacher's targets computed once."""
        import torch

        gen = torch.Generator().manual_seed(seeds[0])
        n, dev = len(seeds), self.images.device
        y = self.images[torch.randint(len(self.images), (n,), generator=gen).to(dev)]
        i = torch.arange(n) % self.num_steps
        t, t_mid, t_next = (_col(self.teacher_t[2 * i + k].float(), y).to(dev) for k in range(3))
        x = y + t * torch.randn(y.shape, generator=gen).to(dev)
        return x, t, t_mid, t_next, self.target(x, t, t_mid, t_next)

    def curve_evaluator(self, device):
        """The validation loss on a fixed batch (`val_loss`, the monitor: one student step against the teacher's
        two on the curve seeds, cheap at any step count) and, for rounds of at most
        `curve_sample_steps` steps, the agreement of N-step samples with the teacher's 2N
        steps and their FID."""
        from ...curves import curve_seeds

        settings = self.settings
        seeds = curve_seeds(settings.curve_seed_start, settings.curve_samples)
        val = self.validation_batch(seeds)
        samples = super().curve_evaluator(device) if self.num_steps <= settings.curve_sample_steps else None

        def evaluate(model) -> dict:
            out = {"val_loss": float(self.loss(*val, model=model))}
            return {**out, **(samples(model) if samples else {})}
        return evaluate

    def curve_probes(self, seeds, device) -> list:
        from ...precond import image_shape
        from ...sampling import generate_images
        target = generate_images(self.teacher, seeds, self.teacher_t, "euler", False, img_shape=image_shape(self.spec),
                                 progress=False, device=device)
        return [(self.curve_sampler(), target)]

    def meta(self, res) -> dict:
        prev = previous_costs(self.settings.teacher)
        return {"nfe": self.settings.nfe, "timesteps": self.student_t.tolist(),
                "cumulative_wall_time": prev["wall_time"] + res.wall_time,
                "cumulative_teacher_nfe": prev["teacher_nfe"] + res.counters["teacher_nfe"],
                "cumulative_optimizer_steps": prev["optimizer_steps"] + res.optimizer_steps}
