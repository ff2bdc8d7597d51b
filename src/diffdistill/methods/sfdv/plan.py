"""SFD-v's planning: its rows (one model, every NFE of sfdv.nfe), its training rule's inputs
and flags. No torch: the workflow plans from here."""
from __future__ import annotations

from ...naming import TEACHER, TRAJECTORIES, cache_path, student_model
from ...options import SCHEDULE_OPTIONS, Opt
from ...rows import EXTENDED, Row
from ...recipe import Recipe
from ..base import Method, curve_inputs, curve_values
from ..sfd.plan import TEACHER_OPTIONS, SFDPlan


class SFDVPlan(Method):
    """SFDV's class attributes and its workflow side; `train.SFDV` adds the training."""

    name = "sfdv"
    label = "SFD-v"
    colour = "tab:cyan"
    section = "sfdv"
    reads = ("sfd", "trajectories")
    order = 20
    stage_inputs = ("results/teacher", "results/featnet", TRAJECTORIES)
    summary = "SFD-v: one step-conditioned student for several NFE (each batch draws its NFE)"
    curves = True
    options = (Opt("teacher", required=True, help="teacher checkpoint"),
               Opt("trajectories", required=True, help="one cache per --nfe value, same order",
                   kwargs={"nargs": "+"}), Opt("afs", key="sfd.afs"), Opt("loss", key="sfd.loss")) + SCHEDULE_OPTIONS + TEACHER_OPTIONS

    @classmethod
    def rule_inputs(cls, cfg: dict, wildcards=None) -> dict:
        d = SFDPlan.defaults(cfg)
        return {"teacher": TEACHER, "traj": [cache_path(SFDPlan.cache_settings(cfg, d), n) for n in cfg["sfdv"]["nfe"]],
                **curve_inputs(cfg)}

    @classmethod
    def rule_values(cls, cfg: dict, wildcards, input, output) -> dict:
        return {"teacher": input.teacher, "trajectories": list(input.traj),
                "schedule": SFDPlan.default_schedule(cfg), **curve_values(cfg, input, output)}

    @staticmethod
    def rows(cfg: dict) -> list:
        if not cfg["sfdv"]["enabled"]:
            return []
        return [Row(name=f"students/sfdv/default/nfe{n}", label="SFD-v (one model)", nfe=n, family="sfdv",
                    model=student_model("sfdv"), recipe=Recipe(nfe=n), all_seed_sets=True, figure=True, tables=EXTENDED,
                    meta={"target": SFDPlan.target_row(cfg, n)} if n in cfg["sfd"]["nfe"] else {})
                for n in cfg["sfdv"]["nfe"]]
