"""SFD: Simple and Fast Distillation (Zhou et al., NeurIPS 2024): the loss and the update.

The student (the whole teacher network, fine-tuned) takes Euler steps between the
student timestamps. Each step starts from the student's own previous output, detached
(no backprop through time), and is pulled onto the teacher's trajectory state with an
L1 (or L2) loss; one optimizer step per timestamp. With AFS the first step is
analytical and has no loss.

Teacher trajectories come from a cache (`diffdistill trajectories`), whose key must
match the teacher and the settings given here, or are regenerated per batch from fresh
noise (no `--trajectories`), as the reference code does. Rows, rule and config checks:
`plan.py`.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ...provenance import read_meta
from ...recipe import Recipe
from ...schedules import Schedule
from ...solvers import afs_denoised, euler
from .. import register
from .plan import SFDPlan, euler_recipe

if TYPE_CHECKING:  # torch is imported where training needs it: the workflow plans rows without it
    import torch


def step_loss(x_hat, target, kind: str) -> torch.Tensor:
    diff = (x_hat - target).flatten(1)
    per = diff.abs().sum(1) if kind == "l1" else diff.pow(2).sum(1)
    return per.mean()  # sum over elements, mean over the batch


def student_timesteps(nfe: int, afs: bool, schedule: Schedule) -> torch.Tensor:
    return euler_recipe(nfe, afs, schedule).grid_timesteps()


def pool_seeds(settings) -> str:
    return f"{settings.seed_start}-{settings.seed_start + settings.pool - 1}"


def trajectory_batches(settings, teacher_path, student_t, teacher_afs: bool, device):
    """(TrajectoryBatches, teacher NFE per drawn trajectory): the cache `settings.trajectories`
    checked against the settings asked for, or fresh trajectories of the teacher."""
    from ...precond import image_shape, load_teacher
    from ...trajectories import TrajectoryBatches, expected_key, generate, load_cache

    if settings.trajectories:
        expect = expected_key(teacher_path, solver=settings.solver, K=settings.K, final_step=settings.final_step,
                              thresholding=settings.thresholding, timesteps=student_t.tolist(),
                              teacher_afs=teacher_afs, seeds=pool_seeds(settings))
        return TrajectoryBatches(states=load_cache(settings.trajectories, expect)["states"].to(device)), 0
    teacher, spec = load_teacher(teacher_path, device=device)
    return TrajectoryBatches(make_fresh=lambda seeds: generate(
        teacher, seeds, student_t, settings.K, settings.solver, settings.final_step, settings.thresholding, settings.rho,
        len(seeds), image_shape(spec), progress=False, device=device, teacher_afs=teacher_afs)), \
        settings.K * (len(student_t) - 1) - int(teacher_afs)


def trajectory_targets(settings, teacher_path, student_t, teacher_afs: bool, seeds, device) -> torch.Tensor:
    """The teacher's trajectory end points for `seeds`: what a student of `student_t`
    is trained to reproduce (the validation curve's targets), [N, C, H, W] on the CPU."""
    import torch

    from ...precond import image_shape, load_teacher
    from ...trajectories import generate

    teacher, spec = load_teacher(teacher_path, device=device)
    with torch.inference_mode():
        states = generate(teacher, seeds, student_t, settings.K, settings.solver, settings.final_step, settings.thresholding,
                          settings.rho, 500, image_shape(spec), progress=False, device=device, teacher_afs=teacher_afs)
    return states[:, -1].cpu()


class SFDBatches:
    """SFD's loss over one batch of trajectories: shared by SFD, SFD-v and the second stage."""

    def __init__(self, method, batches, timesteps, batch_size: int, afs: bool, loss: str,
                 teacher_nfe_per_traj: int = 0):
        self.method, self.batches, self.batch_size = method, batches, batch_size
        self.t = [float(t) for t in timesteps]
        self.afs, self.loss_kind, self.teacher_nfe_per_traj = afs, loss, teacher_nfe_per_traj

    def train_step(self, gen, opt_step, counters: dict, **model_kwargs) -> dict:
        traj = self.batches.batch(self.batch_size, gen)
        counters["trajectories"] += self.batch_size
        counters["teacher_nfe"] += self.batch_size * self.teacher_nfe_per_traj
        return self.distill_batch(traj, opt_step, **model_kwargs)

    def distill_batch(self, traj: torch.Tensor, opt_step, **model_kwargs) -> dict:
        """One pass over the timestamps of a batch; `model_kwargs` go to every student call
        (SFD-v's num_steps)."""
        import torch

        x = traj[:, 0]
        losses = []
        for i in range(len(self.t) - 1):
            t_cur, t_next = self.t[i], self.t[i + 1]
            tc = torch.tensor(t_cur, dtype=x.dtype)
            if self.afs and i == 0:
                x = euler(x, t_cur, t_next, afs_denoised(x, tc))
                continue
            x_hat = euler(x, t_cur, t_next, self.method.train_model(x, tc, **model_kwargs))
            loss = step_loss(x_hat, traj[:, i + 1], self.loss_kind)
            opt_step(loss)
            losses.append(loss.item())
            x = x_hat.detach()
        return {"loss": sum(losses) / len(losses), "loss_last": losses[-1]}


@register
class SFD(SFDPlan):
    teacher_afs = False    # a pretrained teacher never takes an analytical first step

    def __init__(self, settings, device):
        from ...precond import load_teacher

        self.settings = settings
        self.sampler = euler_recipe(settings.nfe, settings.afs, Schedule.from_args(settings))
        self.student_t = self.sampler.grid_timesteps()
        batches, per_traj = trajectory_batches(settings, settings.teacher, self.student_t, self.teacher_afs, device)
        self.model, self.spec = load_teacher(settings.teacher, device=device)
        self.sfd = SFDBatches(self, batches, self.student_t, settings.batch_size, settings.afs, settings.loss, per_traj)
        self.counters = {"teacher_nfe": 0, "trajectories": 0}

    def train_step(self, iteration, gen, opt_step) -> dict:
        return self.sfd.train_step(gen, opt_step, self.counters)

    def recipe(self) -> Recipe:
        return replace(self.sampler, timesteps=tuple(self.student_t.tolist()))

    def curve_sampler(self) -> dict:
        return {"timesteps": self.student_t, "afs": self.settings.afs, "solver": "euler"}

    def curve_probes(self, seeds, device) -> list:
        return [(self.curve_sampler(), trajectory_targets(self.settings, self.settings.teacher, self.student_t,
                                                          self.teacher_afs, seeds, device))]

    def meta(self, res) -> dict:
        out = {"nfe": self.settings.nfe, "timesteps": self.student_t.tolist()}
        if self.settings.trajectories:  # the cache's teacher cost, paid once
            out["teacher_nfe"] = read_meta(self.settings.trajectories).get("teacher_nfe", 0)
        return out
