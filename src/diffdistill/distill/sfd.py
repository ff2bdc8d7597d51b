"""SFD: Simple and Fast Distillation (Zhou et al., NeurIPS 2024).

The student (the whole teacher network, fine-tuned) takes Euler steps between the
student timestamps. Each step starts from the student's own previous output, detached
(no backprop through time), and is pulled onto the teacher's trajectory state with an
L1 (or L2) loss; one optimizer step per timestamp. With AFS the first step is
analytical and has no loss."""
from __future__ import annotations

import torch

from ..solvers import afs_denoised
from ..trajectories import TrajectoryBatches


def euler_student_step(model, x, t_cur, t_next, **model_kwargs):
    t = torch.as_tensor(t_cur, dtype=x.dtype)
    return x + (t_next - t_cur) * (x - model(x, t, **model_kwargs)) / t_cur


def step_loss(x_hat, target, kind: str) -> torch.Tensor:
    diff = (x_hat - target).flatten(1)
    per = diff.abs().sum(1) if kind == "l1" else diff.pow(2).sum(1)
    return per.mean()  # sum over elements, mean over the batch


class SFD:
    def __init__(self, model, batches: TrajectoryBatches, timesteps, batch_size: int,
                 afs: bool = True, loss: str = "l1", teacher_nfe_per_traj: int = 0):
        if loss not in ("l1", "l2"):
            raise ValueError(f"loss must be l1 or l2, got '{loss}'")
        self.model, self.batches, self.batch_size = model, batches, batch_size
        self.t = [float(t) for t in timesteps]
        self.afs, self.loss_kind = afs, loss
        self.teacher_nfe_per_traj = teacher_nfe_per_traj
        self.counters = {"teacher_nfe": 0, "trajectories": 0}

    def train_step(self, iteration, gen, opt_step, **model_kwargs) -> dict:
        traj = self.batches.batch(self.batch_size, gen)
        self.counters["trajectories"] += self.batch_size
        self.counters["teacher_nfe"] += self.batch_size * self.teacher_nfe_per_traj
        return self.distill_batch(traj, opt_step, **model_kwargs)

    def distill_batch(self, traj: torch.Tensor, opt_step, **model_kwargs) -> dict:
        """One pass over the timestamps of a batch; `model_kwargs` go to every student call
        (SFD-v's num_steps)."""
        x = traj[:, 0]
        losses = []
        for i in range(len(self.t) - 1):
            t_cur, t_next = self.t[i], self.t[i + 1]
            if self.afs and i == 0:
                tc = torch.tensor(t_cur, dtype=x.dtype)
                x = x + (t_next - t_cur) * (x - afs_denoised(x, tc)) / t_cur
                continue
            x_hat = euler_student_step(self.model, x, t_cur, t_next, **model_kwargs)
            loss = step_loss(x_hat, traj[:, i + 1], self.loss_kind)
            opt_step(loss)
            losses.append(loss.item())
            x = x_hat.detach()
        return {"loss": sum(losses) / len(losses), "loss_last": losses[-1]}
