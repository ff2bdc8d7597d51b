"""O2MKD x SFD: the loss and the update (SFD's loss on small students, one per group of steps)."""
from __future__ import annotations

from dataclasses import replace
from ...errors import UserError
from ...provenance import read_meta
from ...recipe import Recipe
from ...schedules import Schedule
from .. import register
from ...nets.students import student_spec, students_from_teacher
from ..sfd.plan import euler_recipe
from ..sfd.train import SFDBatches, trajectory_batches, trajectory_targets
from .plan import O2SFDPlan


def step_boundaries(timesteps, afs: bool, num_students: int, rho: float) -> list[float]:
    """Descending router boundaries so that student j owns the j-th group of the
    evaluated timestamps (all but the last, and the first with AFS)."""
    evaluated = [float(t) for t in timesteps[(1 if afs else 0):-1]]
    if not 1 <= num_students <= len(evaluated):
        raise UserError(f"{num_students} students for {len(evaluated)} network steps: need 1 <= N <= NFE")
    size, extra = divmod(len(evaluated), num_students)  # the first `extra` groups one larger (np.array_split)
    last = [(j + 1) * size + min(j + 1, extra) - 1 for j in range(num_students - 1)]  # each group's last index
    return [(0.5 * (evaluated[i] ** (1 / rho) + evaluated[i + 1] ** (1 / rho))) ** rho for i in last]


@register
class O2SFD(O2SFDPlan):
    find_unused = True

    teacher_afs = False

    def __init__(self, settings, device):
        from ...nets.router import router_spec
        from ...precond import build_denoiser, load_teacher

        self.settings = settings
        self.sampler = euler_recipe(settings.nfe, settings.afs, Schedule.from_args(settings))
        self.student_t = self.sampler.grid_timesteps()
        n = settings.num_students or settings.nfe
        self.boundaries = step_boundaries(self.student_t, settings.afs, n, settings.rho)
        batches, per_traj = trajectory_batches(settings, settings.teacher, self.student_t, self.teacher_afs, device)
        teacher, tspec = load_teacher(settings.teacher, device=device)
        self.spec = router_spec(student_spec(tspec, settings.student_kwargs, settings.init), n, self.boundaries)
        self.model = build_denoiser(self.spec).to(device)
        if settings.init == "teacher":
            students_from_teacher(self.model, teacher)
        self.sfd = SFDBatches(self, batches, self.student_t, settings.batch_size, settings.afs, settings.loss, per_traj)
        self.counters = {"teacher_nfe": 0, "trajectories": 0}

    def train_step(self, iteration, gen, opt_step) -> dict:
        return self.sfd.train_step(gen, opt_step, self.counters)

    def curve_sampler(self) -> dict:
        return {"timesteps": self.student_t, "afs": self.settings.afs, "solver": "euler"}

    def curve_probes(self, seeds, device) -> list:
        return [(self.curve_sampler(), trajectory_targets(self.settings, self.settings.teacher, self.student_t,
                                                          self.teacher_afs, seeds, device))]

    def recipe(self) -> Recipe:
        return replace(self.sampler, timesteps=tuple(self.student_t.tolist()))

    def meta(self, res) -> dict:
        out = {"nfe": self.settings.nfe, "num_students": len(self.boundaries) + 1, "boundaries": self.boundaries,
               "timesteps": self.student_t.tolist()}
        if self.settings.trajectories:
            out["teacher_nfe"] = read_meta(self.settings.trajectories).get("teacher_nfe", 0)
        return out
