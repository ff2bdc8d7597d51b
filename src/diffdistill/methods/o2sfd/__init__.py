"""O2MKD x SFD: few steps AND cheaper steps.

SFD cuts the number of steps; O2MKD cuts the cost of each step with small students that
each own a range of noise levels. Here a router of N small students (O2MKD's `Router`,
started from the teacher by channel selection) is fine-tuned with SFD's loss on the
cached teacher trajectories: the same caches, AFS and t_min as SFD. At NFE n with AFS
the network is called at n student timestamps; they are split into N contiguous groups
(as equal as np.array_split makes them) and each student owns its group's noise range,
the boundaries lying halfway in t^(1/rho) between neighbouring timestamps. With N = n
(the default) each student learns exactly one step.
"""
from __future__ import annotations

from dataclasses import replace

from ...errors import UserError
from ...provenance import read_meta
from ...naming import TEACHER, TRAJECTORIES, cache_path, student_model
from ...options import SCHEDULE_OPTIONS, Opt, nfe_int
from ...rows import EXTENDED, Row
from ...recipe import Recipe
from ...schedules import Schedule
from .. import register
from ..base import Method, curve_inputs, curve_values
from ..o2mkd import depth_mismatch, student_spec, students_from_teacher
from ..sfd.plan import TEACHER_OPTIONS, SFDPlan, euler_recipe
from ..sfd.train import SFDBatches, trajectory_batches, trajectory_targets


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
class O2SFD(Method):
    name = "o2sfd"
    label = "O2MKD x SFD"
    colour = "tab:red"
    section = "o2sfd"
    order = 60
    reads = ("sfd", "trajectories")
    stage_inputs = ("results/teacher", "results/featnet", TRAJECTORIES)
    find_unused = True
    curves = True
    teacher_afs = False
    summary = "O2MKD x SFD: small students, one per group of steps, fine-tuned with SFD's loss"
    options = (Opt("teacher", required=True, help="teacher checkpoint"),
               Opt("trajectories", help="trajectory cache (.pt); omitted: regenerate per batch from fresh noise"),
               Opt("nfe", required=True, help="student NFE", kwargs={"type": nfe_int}),
               Opt("afs", key="sfd.afs"), Opt("loss", key="sfd.loss")) + SCHEDULE_OPTIONS + TEACHER_OPTIONS

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

    # ---- the workflow's side ---------------------------------------------------------
    @staticmethod
    def folder(cfg: dict, nfe: int) -> str:
        n = cfg["o2sfd"]["num_students"]
        return f"N{n or nfe}"

    @classmethod
    def rule_inputs(cls, cfg: dict, wildcards) -> dict:
        inputs = {"teacher": TEACHER, **curve_inputs(cfg)}
        if cfg["trajectories"]["cache"]:
            inputs["traj"] = cache_path(SFDPlan.cache_settings(cfg, SFDPlan.defaults(cfg)), wildcards.nfe)
        return inputs

    @classmethod
    def rule_values(cls, cfg: dict, wildcards, input, output) -> dict:
        return {"teacher": input.teacher, "trajectories": input.get("traj"), "nfe": wildcards.nfe,
                "num_students": int(wildcards.variant[1:]), "schedule": SFDPlan.default_schedule(cfg),
                **curve_values(cfg, input, output)}

    @staticmethod
    def rows(cfg: dict) -> list:
        if not cfg["o2sfd"]["enabled"]:
            return []
        label = "O2MKD x SFD" + ("" if cfg["o2sfd"]["num_students"] else " (one student per step)")
        return [Row(name=f"students/o2sfd/{O2SFD.folder(cfg, n)}/nfe{n}", label=label, nfe=n, family="o2sfd",
                    model=student_model("o2sfd", O2SFD.folder(cfg, n), n), all_seed_sets=True, tables=EXTENDED,
                    meta={"target": SFDPlan.target_row(cfg, n)} if n in cfg["sfd"]["nfe"] else {})
                for n in cfg["o2sfd"]["nfe"]]

    @staticmethod
    def check_config(cfg: dict) -> None:
        o = cfg["o2sfd"]
        if o["enabled"] and o["num_students"] and o["num_students"] > min(o["nfe"]):
            raise UserError(f"config key o2sfd.num_students = {o['num_students']}: more students than the "
                            f"{min(o['nfe'])} network steps of NFE {min(o['nfe'])}")
        net = cfg["teacher"]["net"] if cfg["teacher"]["source"] == "train" else "songunet"
        why = depth_mismatch(cfg["teacher"]["net_kwargs"], o["student_kwargs"]) if net == "unet" else None
        if o["enabled"] and o["init"] == "teacher" and why:
            raise UserError(f"config key o2sfd.student_kwargs: with init teacher (channel selection) the students "
                            f"keep the teacher's depth, but {why} (teacher.net_kwargs)")
        if o["enabled"] and o["init"] == "teacher" and net != "unet":
            raise UserError(f"config key o2sfd.init = teacher: channel selection is implemented for the unet "
                            f"backbone, not {net}; use scratch")
