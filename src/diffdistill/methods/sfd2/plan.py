"""SFD's second stage, planning: the stage-1 student it starts from, its cache, rows and
config checks. No torch: the workflow plans from here."""
from __future__ import annotations

from ...errors import UserError
from ...naming import TRAJECTORIES, cache_path, source_name, student_dir, student_model, variant
from ...options import SCHEDULE_OPTIONS, Opt
from ...rows import EXTENDED, Row
from ...schedules import Schedule
from ..base import curve_inputs, curve_values
from ..sfd.plan import SFDPlan


class SFD2Plan(SFDPlan):
    """SFD2's class attributes and its workflow side; `train.SFD2` adds the training."""

    name = "sfd2"
    label = "SFD second stage"
    colour = "tab:purple"
    section = "sfd2"
    reads = ("sfd", "trajectories")
    order = 30
    stage_inputs = ("results/teacher", "results/featnet", TRAJECTORIES, "results/students/sfd")
    summary = "SFD's second stage: a stage-1 SFD student teaches a 1-NFE student"
    options = (Opt("teacher", required=True, help="the stage-1 SFD student"),
               Opt("trajectories", help="its trajectory cache (.pt); omitted: regenerate per batch"),
               Opt("pool", key="trajectories.num"), Opt("seed_start", key="trajectories.seed_start")
               ) + SCHEDULE_OPTIONS

    @staticmethod
    def stage1_variant(cfg: dict) -> str:
        """The stage-1 student's SFD variant: the paper's ramp (t_last 0), whose grid holds
        the 1-NFE student's 3 timestamps ('default' unless sfd.t_last is set)."""
        d = SFDPlan.defaults(cfg)
        return variant({**d, "t_last": 0.0}, d)

    @staticmethod
    def cache(cfg: dict) -> str:
        s2, t = cfg["sfd2"], cfg["trajectories"]
        return cache_path({"source": source_name("sfd", s2["teacher_nfe"], SFD2Plan.stage1_variant(cfg)), "solver": "euler",
                           "K": (s2["teacher_nfe"] + 1) // 2, "final_step": "force", "thresholding": False,
                           **Schedule.from_config(cfg).to_dict(), "afs": True, "teacher_afs": True, "num": t["num"],
                           "seed_start": t["seed_start"]}, 1, root=f"{student_dir('sfd2', 'default')}/trajectories")

    @classmethod
    def rule_inputs(cls, cfg: dict, wildcards=None) -> dict:
        return {"teacher": student_model("sfd", SFD2Plan.stage1_variant(cfg), cfg["sfd2"]["teacher_nfe"]),
                "traj": SFD2Plan.cache(cfg), **curve_inputs(cfg)}

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
