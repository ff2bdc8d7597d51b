"""Progressive Distillation (Salimans & Ho, ICLR 2022) in EDM's VE form.

One round halves the step count: the student starts as a copy of the teacher and
learns to take ONE Euler (= DDIM) step from t to t'' that lands where the teacher's
TWO Euler steps t -> t' -> t'' land. With x'' the teacher's two-step result, the
denoiser value that makes one Euler step hit x'' is (METHODS.md section 2)

    D_tilde = (x'' - (t''/t) x) / (1 - t''/t),

which on the last step (t'' = 0) is x'' itself, i.e. the teacher's denoised value at
the midpoint. The loss is PD's truncated-SNR weight max(SNR, 1) = max(1/t^2, 1) times
the squared error of the student's denoised value against D_tilde.

The grids of all rounds are nested: N steps = N points uniform in t^(1/rho) from
t_max towards t_min, plus a final 0 (`pd_timesteps`); the 2N-step grid holds every
point of the N-step grid, so a round's student grid is its next round's teacher grid.
"""
from __future__ import annotations

import torch


def pd_timesteps(num_steps: int, t_min: float = 0.006, t_max: float = 80.0, rho: float = 7.0,
                 dtype=torch.float64) -> torch.Tensor:
    """num_steps + 1 timestamps: t(i / num_steps) for i < num_steps, then 0, where t(u)
    is EDM's polynomial from t_max (u = 0) to t_min (u = 1). Nested across halvings."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    u = torch.arange(num_steps, dtype=dtype) / num_steps
    t = (t_max ** (1 / rho) + u * (t_min ** (1 / rho) - t_max ** (1 / rho))) ** rho
    return torch.cat([t, t.new_zeros(1)])


def _col(t, x):
    return torch.as_tensor(t, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def euler(x, t_cur, t_next, denoised):
    """One Euler (DDIM) step with per-sample times (t_cur > 0)."""
    return x + (t_next - t_cur) * (x - denoised) / t_cur


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
    return torch.clamp(1 / t ** 2, min=1.0)


class ProgressiveDistillation:
    """One PD round: a student with `num_steps` steps from a teacher with 2 * num_steps."""

    def __init__(self, model, teacher, images: torch.Tensor, num_steps: int, batch_size: int,
                 t_min: float = 0.006, t_max: float = 80.0, rho: float = 7.0):
        self.model, self.teacher, self.images = model, teacher, images
        self.batch_size, self.num_steps = batch_size, num_steps
        self.teacher_t = pd_timesteps(2 * num_steps, t_min, t_max, rho)
        self.student_t = self.teacher_t[::2]
        self.counters = {"teacher_nfe": 0, "images_seen": 0}

    def teacher_denoise(self, x, t):
        with torch.no_grad():
            return self.teacher(x, t)

    def batch(self, gen: torch.Generator):
        """Noisy images at a random student timestamp, with its midpoint and end."""
        idx = torch.randint(len(self.images), (self.batch_size,), generator=gen)
        y = self.images[idx]
        i = torch.randint(self.num_steps, (self.batch_size,), generator=gen)
        t, t_mid, t_next = (_col(self.teacher_t[2 * i + k].float(), y) for k in range(3))
        x = y + t * torch.randn(y.shape, generator=gen)
        return x, t, t_mid, t_next

    def loss(self, x, t, t_mid, t_next) -> torch.Tensor:
        x_next = two_teacher_steps(self.teacher_denoise, x, t, t_mid, t_next)
        target = pd_target(x, t, t_next, x_next)
        denoised = self.model(x, t.flatten())
        return (snr_weight(t) * (denoised - target) ** 2).flatten(1).mean(1).mean()

    def train_step(self, iteration, gen, opt_step) -> dict:
        loss = self.loss(*self.batch(gen))
        opt_step(loss)
        self.counters["teacher_nfe"] += 2 * self.batch_size
        self.counters["images_seen"] += self.batch_size
        return {"loss": loss.item()}
