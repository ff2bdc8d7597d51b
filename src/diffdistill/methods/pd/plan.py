"""Progressive Distillation's planning: its rounds (from pd.n0 down to its NFE list), the
rows (every round's student, the first teacher on the PD grid), its training rule's
inputs and flags, and its config checks. No torch: the workflow plans from here."""
from __future__ import annotations

from ...errors import UserError
from ...naming import TEACHER, student_model
from ...options import DATA_OPTIONS, SCHEDULE_OPTIONS, Opt, nfe_int
from ...rows import EXTENDED, Row
from ..base import Method, curve_inputs, curve_values, teacher_row


class PDPlan(Method):
    """PD's class attributes and its workflow side; `train.ProgressiveDistillation` adds the training."""
    name = "pd"
    label = "PD"
    colour = "tab:orange"
    section = "pd"
    order = 40
    summary = "one Progressive Distillation round: a student of N steps from a teacher of 2N"
    curves = True
    monitor = "val_loss"
    plan_only = ("n0", "first_teacher_steps")  # the rounds: each round's command gets its own teacher and NFE
    options = (Opt("teacher", required=True, help="the trained teacher, or the previous round's student"),
               Opt("nfe", required=True, help="student steps N (the teacher takes 2N)",
                   kwargs={"type": nfe_int})
               ) + DATA_OPTIONS + SCHEDULE_OPTIONS

    # ---- the workflow's side ---------------------------------------------------------
    @classmethod
    def rule_inputs(cls, cfg: dict, wildcards) -> dict:
        """Round N's teacher is round 2N's student (the trained teacher when 2N = pd.n0)."""
        n = int(wildcards.nfe)
        teacher = TEACHER if 2 * n == cfg["pd"]["n0"] else student_model("pd", "default", 2 * n)
        return {"teacher": teacher, **curve_inputs(cfg)}

    @classmethod
    def rule_values(cls, cfg: dict, wildcards, input, output) -> dict:
        return {"teacher": input.teacher, "nfe": wildcards.nfe, **curve_values(cfg, input, output)}

    @staticmethod
    def rounds(cfg: dict) -> list[int]:
        """Student step counts of every round, from n0 / 2 down to min(pd.nfe); none when
        pd.nfe is empty (PD is not run)."""
        n0 = cfg["pd"]["n0"]
        n, out, last = n0 // 2, [], min(cfg["pd"]["nfe"], default=n0)
        while n >= last:
            out.append(n)
            n //= 2
        return out

    @staticmethod
    def rows(cfg: dict) -> list:
        pd = cfg["pd"]
        if not pd["nfe"]:
            return []  # PD is not run: no students, and no row for its first teacher either
        # the chain is serial and does not fit the main job's budget with converged rounds: results/extended
        first = teacher_row(cfg, f"pd-teacher/nfe{pd['n0']}", "PD first teacher (DDIM on the PD grid)", pd["n0"],
                            "euler", grid="pd", family="pd", tables=EXTENDED)
        def teacher_of(n):  # the row of what round n is trained to reproduce: its teacher, when evaluated
            return first.name if 2 * n == pd["n0"] else f"students/pd/default/nfe{2 * n}" if 2 * n in pd["nfe"] else None

        students = [Row(name=f"students/pd/default/nfe{n}", label="PD (progressive distillation)", nfe=n,
                        family="pd", model=student_model("pd", "default", n), all_seed_sets=True, figure=True,
                        tables=EXTENDED,
                        meta={"target": teacher_of(n)} if teacher_of(n) else {})
                    for n in pd["nfe"]]
        return [first, *PDPlan.first_teacher_rows(cfg), *students]

    @staticmethod
    def first_teacher_rows(cfg: dict) -> list:
        """DDIM on PD's grid at each of `pd.first_teacher_steps` (table ablations_pd): the
        row at n0 is the default the others are compared with; the ablation table also
        compares each with the reference sampler."""
        pd, out = cfg["pd"], []
        steps = sorted(set(pd["first_teacher_steps"]) | ({pd["n0"]} if pd["first_teacher_steps"] else set()))
        for n in steps:
            meta = {"factor": "default" if n == pd["n0"] else "steps", "factor_name": "DDIM steps (PD grid)",
                    "value": "" if n == pd["n0"] else str(n),
                    "description": f"PD's first teacher, DDIM {pd['n0']} steps on the PD grid (pd.n0)"}
            label = "PD first teacher (DDIM on the PD grid)" if n == pd["n0"] else f"DDIM {n} steps (PD grid)"
            out.append(teacher_row(cfg, f"pd-teacher/nfe{n}", label, n, "euler", grid="pd", family="pd",
                                   tables=("ablations_pd",), meta=meta,
                                   claims=n in pd["nfe"]))  # each round against DDIM halving its teacher
        return out

    @staticmethod
    def check_config(cfg: dict) -> None:
        n0 = cfg["pd"]["n0"]
        for n in cfg["pd"]["nfe"]:
            halvings = n0 // n if n0 % n == 0 else 0
            if n >= n0 or halvings < 2 or halvings & (halvings - 1):
                raise UserError(f"config key pd.nfe: {n} is not pd.n0 = {n0} halved one or more times")
