"""SFD's planning: its settings' defaults, the rows (SFD per NFE, its targets, the
ablation suite of SFD's Table 1: one factor at a time around the default, each value a
student folder named by the settings that differ, `diffdistill.naming`), its training
rule's inputs and flags, and its config checks. No torch: the workflow plans from here."""
from __future__ import annotations

from dataclasses import replace

from ...errors import UserError
from ...naming import TEACHER, TRAJECTORIES, cache_path, parse_variant, source_name, student_model, variant
from ...options import SCHEDULE_OPTIONS, Opt, nfe_int
from ...recipe import Recipe
from ...rows import Row
from ...schedules import Schedule
from ..base import Method, curve_inputs, curve_values

TEACHER_OPTIONS = (Opt("solver", key="trajectories.solver"), Opt("K", key="trajectories.K"),
                   Opt("final_step", key="trajectories.final_step"),
                   Opt("thresholding", key="trajectories.thresholding"),
                   Opt("pool", key="trajectories.num", help="trajectories in the cache's pool"),
                   Opt("seed_start", key="trajectories.seed_start", help="first noise seed of the cache's pool"))
ABLATION_FACTORS = ("solver", "final_step", "afs", "t_min", "loss", "K", "num")
# the ablation values the claims read (None: every value); the rest only the ablation table
CLAIMED = {"default": None, "train_seed": None, "afs": None, "loss": None, "t_min": None, "K": None,
           "solver": ("euler",), "final_step": ("dpm",)}
FACTOR_NAMES = {"solver": "teacher solver", "final_step": "teacher final step", "afs": "AFS", "t_min": "t_min",
                "loss": "loss", "K": "K (teacher steps per student step)", "num": "training trajectories",
                "train_seed": "default, another training seed"}


def claimed(factor: str, value) -> bool:
    """Whether a claim reads the ablation row of this factor and value."""
    return factor in CLAIMED and (CLAIMED[factor] is None or str(value) in CLAIMED[factor])


def euler_recipe(nfe: int, afs: bool, schedule: Schedule) -> Recipe:
    """The students' sampler: Euler steps on the EDM grid (t_max .. t_min; with the
    schedule's t_last, t_max .. t_last, then t_min), AFS optional."""
    return Recipe(solver="euler", nfe=nfe, afs=afs, grid="edm", final_step="force", schedule=schedule)



class SFDPlan(Method):
    """SFD's class attributes and its workflow side; `train.SFD` adds the training."""
    name = "sfd"
    colour = "tab:blue"
    compare_with = "pd"  # SFD against Progressive Distillation at equal NFE (the papers' cost claim)
    section = "sfd"
    reads = ("trajectories", "ablations")
    order = 10
    stage_inputs = ("results/teacher", "results/featnet", TRAJECTORIES)
    label = "SFD"
    summary = "SFD: fine-tune the teacher so that each Euler step lands on its trajectory (one NFE)"
    curves = True
    options = (Opt("teacher", required=True, help="teacher checkpoint"),
               Opt("trajectories", help="trajectory cache (.pt); omitted: regenerate per batch from fresh noise"),
               Opt("nfe", required=True, help="student NFE", kwargs={"type": nfe_int})) + SCHEDULE_OPTIONS + TEACHER_OPTIONS

    @staticmethod
    def defaults(cfg: dict) -> dict:
        """The default student's settings: the factors the ablations vary, and iterations."""
        s, t = cfg["sfd"], cfg["trajectories"]
        return {"iters": s["iters"], "solver": t["solver"], "K": t["K"], "final_step": t["final_step"],
                "afs": s["afs"], "t_min": cfg["schedule"]["t_min"], "t_last": s["t_last"], "loss": s["loss"],
                "num": t["num"],
                "train_seed": cfg["seed"]}

    @staticmethod
    def cache_settings(cfg: dict, settings: dict) -> dict:
        t = cfg["trajectories"]
        return {"source": source_name(), "solver": settings["solver"], "K": settings["K"],
                "final_step": settings["final_step"], "thresholding": t["thresholding"],
                **SFDPlan.schedule(cfg, settings).to_dict(), "afs": settings["afs"], "teacher_afs": False,
                "num": settings["num"], "seed_start": t["seed_start"]}

    @staticmethod
    def schedule(cfg: dict, settings: dict) -> Schedule:
        """A student's schedule: the config's, with the t_min and t_last its settings name."""
        return replace(Schedule.from_config(cfg), t_min=settings["t_min"], t_last=settings["t_last"])

    @staticmethod
    def default_schedule(cfg: dict) -> Schedule:
        """The default students' schedule: SFD-v's and O2MKD x SFD's too (they read its caches)."""
        return SFDPlan.schedule(cfg, SFDPlan.defaults(cfg))

    @classmethod
    def settings(cls, cfg: dict, variant_name: str) -> dict:
        return parse_variant(variant_name, cls.defaults(cfg))

    @classmethod
    def cached(cls, cfg: dict, settings: dict) -> bool:
        """Whether a student trains on a trajectory cache: where the config caches, and for
        a variant that names its own pool size (the ablation of `num`); else fresh
        trajectories per batch."""
        return cfg["trajectories"]["cache"] or settings["num"] != cls.defaults(cfg)["num"]

    @classmethod
    def rule_inputs(cls, cfg: dict, wildcards) -> dict:
        inputs = {"teacher": TEACHER, **curve_inputs(cfg)}
        s = cls.settings(cfg, wildcards.variant)
        if cls.cached(cfg, s):
            inputs["traj"] = cache_path(cls.cache_settings(cfg, s), wildcards.nfe)
        return inputs

    @classmethod
    def rule_values(cls, cfg: dict, wildcards, input, output) -> dict:
        s = cls.settings(cfg, wildcards.variant)
        return {"teacher": input.teacher, "trajectories": input.get("traj"), "nfe": wildcards.nfe,
                "solver": s["solver"], "K": s["K"], "final_step": s["final_step"], "afs": s["afs"],
                "schedule": cls.schedule(cfg, s), "loss": s["loss"], "pool": s["num"], "iters": s["iters"], "seed": s["train_seed"],
                **curve_values(cfg, input, output)}

    @staticmethod
    def ablation_runs(cfg: dict) -> list[tuple[str, object, str]]:
        """(factor, value, variant) of every ablation student, the default row first."""
        abl = cfg["ablations"]
        d = SFDPlan.defaults(cfg)
        base = {**d, "iters": abl["iters"] or d["iters"]}
        runs = [("default", "", variant(base, d))]
        for factor in ABLATION_FACTORS:
            for value in abl[factor]:
                if value != d[factor]:
                    runs.append((factor, value, variant({**base, factor: value}, d)))
        # the default again with other training seeds: the spread of training itself
        runs += [("train_seed", d["train_seed"] + i, variant({**base, "train_seed": d["train_seed"] + i}, d))
                 for i in range(1, abl["train_seeds"])]
        return runs

    @staticmethod
    def replica_runs(cfg: dict) -> list[tuple[str, object, int, str]]:
        """(factor, value, replica, variant): the claims' ablation settings trained with more
        seeds (replica i: seed + i), up to claims.max_train_seeds models per setting; the
        default's beyond its ablations.train_seeds. Declared for the claims plan to choose
        from (results/claims-plan); none is built unless the plan asks for it."""
        d, n = SFDPlan.defaults(cfg), cfg["claims"]["max_train_seeds"]
        base = {**d, "iters": cfg["ablations"]["iters"] or d["iters"]}
        runs = [(f, v, i, variant({**base, f: v, "train_seed": d["train_seed"] + i}, d))
                for f, v, _ in SFDPlan.ablation_runs(cfg) if f not in ("default", "train_seed") and claimed(f, v)
                for i in range(1, n)]
        return runs + [("train_seed", d["train_seed"] + i, i, variant({**base, "train_seed": d["train_seed"] + i}, d))
                       for i in range(cfg["ablations"]["train_seeds"], n)]

    @staticmethod
    def ablation_description(cfg: dict) -> str:
        d = SFDPlan.defaults(cfg)
        iters = cfg["ablations"]["iters"] or d["iters"]
        pool = f"a pool of {d['num']}" if cfg["trajectories"]["cache"] else "fresh"
        last = f", last step from t_last {d['t_last']}" if d["t_last"] else ""
        return (f"teacher {d['solver']} with K = {d['K']} and final step '{d['final_step']}', AFS "
                f"{'on' if d['afs'] else 'off'}, t_min {d['t_min']}{last}, {d['loss'].upper()} loss, {pool} "
                "trajectories, "
                f"{iters} iterations")

    @staticmethod
    def target_cache(cfg: dict, nfe: int) -> str:
        """The default student's teacher trajectories for the evaluation seeds: its target row's samples."""
        ev = cfg["eval"]
        return cache_path({**SFDPlan.cache_settings(cfg, SFDPlan.defaults(cfg)), "num": ev["num_samples"] * ev["seed_sets"],
                           "seed_start": 0}, nfe)

    @staticmethod
    def target_row(cfg: dict, nfe: int) -> str:
        """Name of the target row of the default students of `nfe` (what they are trained to reproduce)."""
        return f"target/{SFDPlan.target_cache(cfg, nfe).split('/')[2]}/nfe{nfe}"

    @staticmethod
    def rows(cfg: dict) -> list:
        rows = []
        for nfe in cfg["sfd"]["nfe"]:  # each NFE's target, on the evaluation seeds: paired with every row
            rows.append(Row(name=SFDPlan.target_row(cfg, nfe), label="SFD target (teacher trajectories)", nfe=nfe,
                            family="sfd", kind="target", samples=SFDPlan.target_cache(cfg, nfe)))
        rows += [Row(name=f"students/sfd/default/nfe{nfe}", label="SFD", nfe=nfe, family="sfd",
                     model=student_model("sfd", "default", nfe), all_seed_sets=True, figure=True,
                     meta={"target": SFDPlan.target_row(cfg, nfe)})
                 for nfe in cfg["sfd"]["nfe"]]
        nfe = cfg["ablations"]["nfe"]
        for factor, value, var in SFDPlan.ablation_runs(cfg):
            model = student_model("sfd", var, nfe)
            rows.append(Row(name=f"students/sfd/{var}/nfe{nfe}", label="SFD" if var == "default" else f"SFD {var}",
                            nfe=nfe, family="sfd", model=model, tables=("ablations",), all_seed_sets=True,
                            claims=claimed(factor, value),
                            meta={"factor": factor, "factor_name": FACTOR_NAMES.get(factor, factor),
                                  "value": "" if factor == "default" else str(value),
                                  "curve": model.replace("model.pt", "fid_curve.json"),
                                  **({"description": SFDPlan.ablation_description(cfg)} if factor == "default" else {})}))
        for factor, value, i, var in SFDPlan.replica_runs(cfg):
            rows.append(Row(name=f"students/sfd/{var}/nfe{nfe}", label=f"SFD {var}", nfe=nfe, family="sfd",
                            model=student_model("sfd", var, nfe), tables=("replicas",),
                            meta={"factor": factor, "factor_name": FACTOR_NAMES.get(factor, factor),
                                  "value": str(value), "replica": i}))
        return rows

    @staticmethod
    def check_config(cfg: dict) -> None:
        t_last, t_max = cfg["sfd"]["t_last"], cfg["schedule"]["t_max"]
        if t_last and not cfg["schedule"]["t_min"] < t_last < t_max:
            raise UserError(f"config key sfd.t_last: {t_last} is not between schedule.t_min "
                            f"{cfg['schedule']['t_min']} and schedule.t_max {t_max} (0: off)")
        for t in cfg["ablations"]["t_min"]:
            if not t < (t_last or t_max):
                key = "sfd.t_last" if t_last else "schedule.t_max"
                raise UserError(f"config key ablations.t_min: {t} is not below {key} {t_last or t_max}")
