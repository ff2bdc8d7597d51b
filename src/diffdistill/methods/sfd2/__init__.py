"""SFD's second stage (1 NFE): a stage-1 SFD student teaches.

The teacher is the stage-1 student of `sfd2.teacher_nfe` NFE stepping with Euler and
AFS over its teacher_nfe + 2 timestamps; the student has 3 timestamps with AFS (1 NFE)
and starts from that stage-1 model. Its 3 timestamps are points 0, K and 2K of the
teacher's grid (K = (teacher_nfe + 1) / 2), so the stage-1 trajectories are cached at
them like the teacher's (`trajectories --teacher-afs true --solver euler --K K`) and
SFD's loss runs unchanged. The loss is L1 (or L2) only: the paper adds LPIPS, whose
weights cannot be had offline. Its fine-tuning time includes stage 1's.
"""
from __future__ import annotations

from dataclasses import fields

from ...errors import UserError
from ...provenance import read_meta
from ...naming import TRAJECTORIES, cache_path, source_name, student_dir, student_model, variant
from ...options import SCHEDULE_OPTIONS, Opt, settings_class
from ...rows import EXTENDED, Row
from ...schedules import Schedule
from .. import all_options, register
from ..base import curve_inputs, curve_values
from ..sfd.train import SFD


@register
class SFD2(SFD):
    name = "sfd2"
    label = "SFD second stage"
    colour = "tab:purple"
    section = "sfd2"
    reads = ("sfd", "trajectories")
    order = 30
    stage_inputs = ("results/teacher", "results/featnet", TRAJECTORIES, "results/students/sfd")
    summary = "SFD's second stage: a stage-1 SFD student teaches a 1-NFE student"
    teacher_afs = True
    options = (Opt("teacher", required=True, help="the stage-1 SFD student"),
               Opt("trajectories", help="its trajectory cache (.pt); omitted: regenerate per batch"),
               Opt("pool", key="trajectories.num"), Opt("seed_start", key="trajectories.seed_start")
               ) + SCHEDULE_OPTIONS

    def __init__(self, settings, device):
        if settings.teacher_nfe % 2 == 0:
            raise UserError(f"--teacher-nfe {settings.teacher_nfe} must be odd: its {settings.teacher_nfe + 2} timestamps "
                            "must contain the 1-NFE student's 3")
        # SFD's settings: the stage-1 student's sampler, and the 1-NFE student with AFS
        sfd = settings_class(SFD.name, all_options(SFD))
        given = {f.name: getattr(settings, f.name) for f in fields(sfd) if hasattr(settings, f.name)}
        super().__init__(sfd(**{f.name: None for f in fields(sfd)} | given | dict(
            nfe=1, afs=True, solver="euler", final_step="force", thresholding=False, K=(settings.teacher_nfe + 1) // 2)),
            device)

    def meta(self, res) -> dict:
        stage1 = read_meta(self.settings.teacher)
        return {**super().meta(res), "stage": 2,
                "cumulative_wall_time": stage1.get("cumulative_wall_time", stage1["wall_time"]) + res.wall_time}

    @staticmethod
    def stage1_variant(cfg: dict) -> str:
        """The stage-1 student's SFD variant: the paper's ramp (t_last 0), whose grid holds
        the 1-NFE student's 3 timestamps ('default' unless sfd.t_last is set)."""
        d = SFD.defaults(cfg)
        return variant({**d, "t_last": 0.0}, d)

    @staticmethod
    def cache(cfg: dict) -> str:
        s2, t = cfg["sfd2"], cfg["trajectories"]
        return cache_path({"source": source_name("sfd", s2["teacher_nfe"], SFD2.stage1_variant(cfg)), "solver": "euler",
                           "K": (s2["teacher_nfe"] + 1) // 2, "final_step": "force", "thresholding": False,
                           **Schedule.from_config(cfg).to_dict(), "afs": True, "teacher_afs": True, "num": t["num"],
                           "seed_start": t["seed_start"]}, 1, root=f"{student_dir('sfd2', 'default')}/trajectories")

    @classmethod
    def rule_inputs(cls, cfg: dict, wildcards=None) -> dict:
        return {"teacher": student_model("sfd", SFD2.stage1_variant(cfg), cfg["sfd2"]["teacher_nfe"]),
                "traj": SFD2.cache(cfg), **curve_inputs(cfg)}

    @classmethod
    def rule_values(cls, cfg: dict, wildcards, input, output) -> dict:
        return {"teacher": input.teacher, "trajectories": input.traj, **curve_values(cfg, input, output)}

    @staticmethod
    def rows(cfg: dict) -> list:
        if not cfg["sfd2"]["enabled"]:
            return []
        return [Row(name="students/sfd2/default/nfe1", label="SFD second stage", nfe=1, family="sfd2",
                    model=student_model("sfd2", "default", 1), all_seed_sets=True, figure=True, tables=EXTENDED)]

    @staticmethod
    def check_config(cfg: dict) -> None:
        s2 = cfg["sfd2"]
        if not s2["enabled"]:
            return
        if s2["teacher_nfe"] not in cfg["sfd"]["nfe"]:
            raise UserError(f"config key sfd2.teacher_nfe = {s2['teacher_nfe']} is not in sfd.nfe {cfg['sfd']['nfe']}")
        if s2["teacher_nfe"] % 2 == 0:
            raise UserError(f"config key sfd2.teacher_nfe = {s2['teacher_nfe']} must be odd: its "
                            f"{s2['teacher_nfe'] + 2} timestamps must contain the 1-NFE student's 3")
