"""The teacher's planning: its rows (the training-free samplers' baselines), its training
rule and its config checks. No torch: the workflow plans from here."""
from __future__ import annotations

from ...errors import UserError
from ...naming import TEACHER
from ...options import DATA_OPTIONS
from ...schedules import num_timestamps
from ..base import Method, solver_row, teacher_row


class TeacherPlan(Method):
    """Teacher's class attributes and its workflow side; `train.Teacher` adds the training."""

    name = "teacher"
    section = "teacher"
    order = 0
    stage_inputs = ()  # the dataset only
    shared_keys = ("seed", "device", "amp", "dataset")  # training draws sigma from its own distribution
    plan_only = ("source", "edm_pickle", "edm_pickle_url", "edm_pickle_sha256")  # importing EDM's instead
    summary = "train an EDM-preconditioned teacher on the dataset (EDM loss, EMA)"
    options = DATA_OPTIONS

    @classmethod
    def stage_outputs(cls) -> tuple[str, ...]:
        return (TEACHER.rsplit("/", 1)[0],)

    @classmethod
    def rule_inputs(cls, cfg: dict, wildcards=None) -> dict:
        """The dataset file or folder (so a fetch job can make it); none for embedded data."""
        return {"data": [cfg["dataset"]["path"]] if cfg["dataset"]["path"] else []}

    @classmethod
    def rule_values(cls, cfg: dict, wildcards, input, output) -> dict:
        return {}

    @staticmethod
    def rows(cfg: dict) -> list:
        ref = cfg["baselines"]["reference"]
        rows = [teacher_row(cfg, f"reference/nfe{ref['nfe']}", "teacher (reference)", ref["nfe"], ref["solver"],
                            grid="edm_zero", kind="reference", all_seed_sets=True, noise_floor=True, figure=True,
                            column=f"NFE {ref['nfe']}")]
        for solver, afs, nfe in TeacherPlan.baseline_grid(cfg):
            main = solver == "dpmpp3m" and not afs
            rows.append(solver_row(cfg, solver, nfe, afs, all_seed_sets=main, figure=main))
        return rows

    @staticmethod
    def baseline_grid(cfg: dict) -> list:
        """(solver, afs, nfe) of every baseline row: the solvers x afs x nfe grid, then EDM's
        Heun at each of `heun_nfe` with the AFS setting its parity allows (Heun spends 2
        NFE per step; AFS saves one: even NFE without, odd NFE with)."""
        base = cfg["baselines"]
        grid = [(s, a, n) for s in base["solvers"] for a in base["afs"] for n in base["nfe"]]
        return grid + [("heun", n % 2 == 1, n) for n in base["heun_nfe"]]

    @staticmethod
    def check_config(cfg: dict) -> None:
        """Every configured baseline plans a row: a combination no solver can serve is refused."""
        for solver, afs, nfe in TeacherPlan.baseline_grid(cfg):
            if num_timestamps(nfe, afs, solver) is None:
                raise UserError(f"config keys baselines.solvers/afs/nfe: {solver} cannot take exactly {nfe} NFE "
                                f"with afs {str(afs).lower()}; list Heun's NFE in baselines.heun_nfe instead")
        ref = cfg["baselines"]["reference"]
        if ref["nfe"] % 2 == 0:
            raise UserError(f"config key baselines.reference.nfe = {ref['nfe']}: EDM's Heun sampler spends "
                            "2 N - 1 NFE on N steps; give an odd NFE (35: 18 steps)")
