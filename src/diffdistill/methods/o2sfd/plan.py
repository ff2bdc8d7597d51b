"""O2MKD x SFD, planning: its folders, rows, training rule and config checks. No torch:
the workflow plans from here."""
from __future__ import annotations

from ...errors import UserError
from ...naming import TEACHER, TRAJECTORIES, cache_path, student_model
from ...options import SCHEDULE_OPTIONS, Opt, nfe_int
from ...rows import EXTENDED, Row
from ..base import Method, curve_inputs, curve_values
from ...nets.students import depth_mismatch
from ..sfd.plan import TEACHER_OPTIONS, SFDPlan


class O2SFDPlan(Method):
    """O2SFD's class attributes and its workflow side; `train.O2SFD` adds the training."""

    name = "o2sfd"
    label = "O2MKD x SFD"
    colour = "tab:red"
    section = "o2sfd"
    order = 60
    reads = ("sfd", "trajectories")
    stage_inputs = ("results/teacher", "results/featnet", TRAJECTORIES)
    curves = True
    summary = "O2MKD x SFD: small students, one per group of steps, fine-tuned with SFD's loss"
    options = (Opt("teacher", required=True, help="teacher checkpoint"),
               Opt("trajectories", help="trajectory cache (.pt); omitted: regenerate per batch from fresh noise"),
               Opt("nfe", required=True, help="student NFE", kwargs={"type": nfe_int}),
               Opt("afs", key="sfd.afs"), Opt("loss", key="sfd.loss")) + SCHEDULE_OPTIONS + TEACHER_OPTIONS

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
        return [Row(name=f"students/o2sfd/{O2SFDPlan.folder(cfg, n)}/nfe{n}", label=label, nfe=n, family="o2sfd",
                    model=student_model("o2sfd", O2SFDPlan.folder(cfg, n), n), all_seed_sets=True, tables=EXTENDED,
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
