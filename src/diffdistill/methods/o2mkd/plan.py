"""O2MKD's planning: its routers' settings and variants, the study's runs and budget, the
rows, its training rule's flags and its config checks. No torch: the workflow plans
from here."""
from __future__ import annotations

from ... import naming
from ...errors import UserError
from ...naming import CONFIG_RECIPE, O2MKD_STUDY, router_label, student_model
from ...options import DATA_OPTIONS, SCHEDULE_OPTIONS, Opt, positive_int
from ...recipe import Recipe
from ...rows import Row
from ...schedules import num_timestamps
from ...solvers import SOLVER_NAMES
from ..base import Method, curve_values, solver_row
from ...nets.students import depth_mismatch


SPLITS = ("log_sigma", "rho", "steps")


class O2MKDPlan(Method):
    """O2MKD's class attributes and its workflow side; `train.O2MKD` adds the training."""

    name = "o2mkd"
    label = "O2MKD"
    colour = "tab:green"
    section = "o2mkd"
    order = 50
    summary = "O2MKD: N small students over contiguous noise ranges (N = 1: one-to-one KD)"
    find_unused = True
    curves = True
    plan_only = ("ddim_nfe", "fast_solver", "fast_nfe", "claim_students")  # its table's columns, the claim's N
    options = (Opt("teacher", required=True, help="teacher checkpoint"),
               Opt("num_students", required=True, help="students N (1: one-to-one KD)", kwargs={"type": positive_int}),
               Opt("curve_nfe", key="o2mkd.study.nfe", help="DDIM steps of the FID curve",
                   kwargs={"type": positive_int})) + DATA_OPTIONS + SCHEDULE_OPTIONS

    VARIED = ("split", "kd", "model_channels", "init")

    @staticmethod
    def defaults(cfg: dict) -> dict:
        o = cfg["o2mkd"]
        return {"split": o["split"], "kd": o["kd"], "model_channels": o["student_kwargs"].get("model_channels"),
                "init": o["init"]}

    @staticmethod
    def variant(cfg: dict, n: int, **changed) -> str:
        d = O2MKDPlan.defaults(cfg)
        return naming.name({"num_students": n, **{k: v for k, v in changed.items() if v != d[k]}})

    @classmethod
    def rule_values(cls, cfg: dict, wildcards, input, output) -> dict:
        s = naming.parse(wildcards.variant)
        if "num_students" not in s:
            raise UserError(f"O2MKD folder '{wildcards.variant}' does not name its student count (N<n>)")
        kw = {**cfg["o2mkd"]["student_kwargs"]}
        if "model_channels" in s:
            kw["model_channels"] = s["model_channels"]
        study = {"iters": s["iters"], "curve_every": O2MKDPlan.study_budget(cfg)[1]} if "iters" in s else {}
        return {"teacher": input.teacher, "num_students": s["num_students"], "student_kwargs": kw,
                **{k: s[k] for k in ("split", "kd", "init", "ema", "lr_schedule") if k in s},
                **({"seed": s["train_seed"]} if "train_seed" in s else {}), **study,
                **curve_values(cfg, input, output)}

    @staticmethod
    def study_budget(cfg: dict) -> tuple[int, int]:
        """The study's iterations and its curves' spacing (the nulls resolved)."""
        o, st = cfg["o2mkd"], cfg["o2mkd"]["study"]
        iters = st["iters"] or 4 * o["iters"]
        return iters, max(1, iters // 8) if st["curve_every"] is None else st["curve_every"]

    @staticmethod
    def study_runs(cfg: dict) -> list[dict]:
        """The study's routers: {students, train_seed, recipe, variant} for N = 1 and the
        claim's N, every training seed with the config's recipe, and the first seed with
        each recipe variant (EMA decays, LR schedules) of `o2mkd.study`."""
        o, st = cfg["o2mkd"], cfg["o2mkd"]["study"]
        recipes = [{}] + [{"ema": e} for e in st["ema"] if (e or None) != (o["ema"] or None)] + \
            [{"lr_schedule": v} for v in st["lr_schedule"] if v != o["lr_schedule"]]
        iters, runs = O2MKDPlan.study_budget(cfg)[0], []
        if not st["train_seeds"]:
            return runs
        for n in dict.fromkeys([1, o["claim_students"]]):
            for k, recipe in enumerate(recipes):
                for i in range(st["train_seeds"] if k == 0 else 1):
                    seed = cfg["seed"] + i
                    name = naming.name({"iters": iters, "num_students": n, **recipe, "train_seed": seed})
                    runs.append({"students": n, "train_seed": seed, "recipe": recipe, "iters": iters,
                                 "variant": name})
        return runs

    @staticmethod
    def _router_rows(cfg: dict, variant: str, label: str, cols, tables, meta=None) -> list:
        rows = []
        for solver, k in cols:
            col = f"FID {'DDIM' if solver == 'euler' else SOLVER_NAMES.get(solver, solver)} {k}"
            rows.append(Row(name=f"students/o2mkd/{variant}-{solver}/nfe{k}", label=label, nfe=k, family="o2mkd",
                            model=student_model("o2mkd", variant), recipe=Recipe(solver=solver, nfe=k),
                            tables=tables, meta={**(meta or {}), tables[0]: {"row": label, "col": col}}))
        return rows

    @staticmethod
    def rows(cfg: dict) -> list:
        o, abl = cfg["o2mkd"], cfg["o2mkd"]["ablations"]
        cols = [("euler", k) for k in o["ddim_nfe"]] + [(o["fast_solver"], o["fast_nfe"])]
        rows = []
        for solver, k in cols:
            col = f"FID {'DDIM' if solver == 'euler' else SOLVER_NAMES.get(solver, solver)} {k}"
            rows.append(solver_row(cfg, solver, k, False, tables=("o2mkd",), meta={"o2mkd": {"row": "teacher",
                                                                                           "col": col}}))
        for n in o["num_students"]:
            label = router_label(n)
            rows += O2MKDPlan._router_rows(cfg, O2MKDPlan.variant(cfg, n), label, cols, ("o2mkd",))
        d = O2MKDPlan.defaults(cfg)
        runs = [("default", "")] + [(f, v) for f in O2MKDPlan.VARIED for v in abl[f] if v != d[f]]
        names = {"split": "range split", "kd": "KD loss", "model_channels": "student width", "init": "initialisation"}
        for factor, value in runs:
            var = O2MKDPlan.variant(cfg, abl["num_students"], **({factor: value} if value != "" else {}))
            meta = {"factor": factor, "factor_name": names.get(factor, factor), "value": str(value)}
            label = f"O2MKD N={abl['num_students']}" + (f" ({factor} {value})" if value != "" else "")
            if factor == "default":
                meta["description"] = (f"{d['split']} split, {d['kd']} KD, students of {d['model_channels']} channels "
                                       f"from the {'teacher' if d['init'] == 'teacher' else 'scratch'}, "
                                       f"{cfg['o2mkd']['iters']} iterations; FID at DDIM {abl['nfe']}")
            rows += O2MKDPlan._router_rows(cfg, var, label, [("euler", abl["nfe"])], ("ablations_o2mkd",), meta)
        return rows + O2MKDPlan.study_rows(cfg)

    @staticmethod
    def study_rows(cfg: dict) -> list:
        """The study's rows (table ablations_o2mkd_study): each router with DDIM study.nfe."""
        k, rows = cfg["o2mkd"]["study"]["nfe"], []
        for run in O2MKDPlan.study_runs(cfg):
            n, var = run["students"], run["variant"]
            recipe = ", ".join("no EMA" if key == "ema" and not v else f"{key.replace('_', ' ')} {v}"
                               for key, v in run["recipe"].items())
            label = router_label(n) + (f" ({recipe})" if recipe else "")
            model = student_model("o2mkd", var)
            rows.append(Row(name=f"students/o2mkd/{var}-euler/nfe{k}", label=label, nfe=k, family="o2mkd",
                            model=model, recipe=Recipe(solver="euler", nfe=k), tables=(O2MKD_STUDY,),
                            claims=not recipe,  # the claim compares the config's recipe over training seeds
                            meta={"students": n, "train_seed": run["train_seed"], "recipe": recipe or CONFIG_RECIPE,
                                  "iters": run["iters"],
                                  "curve": model.replace("model.pt", "fid_curve.json")}))
        return rows

    @staticmethod
    def check_config(cfg: dict) -> None:
        from ...nets import check_kwargs

        o = cfg["o2mkd"]
        net = cfg["teacher"]["net"] if cfg["teacher"]["source"] == "train" else "songunet"
        check_kwargs(net, o["student_kwargs"], key="o2mkd.student_kwargs")
        if net != "unet" and "teacher" in [o["init"], *o["ablations"]["init"]]:
            raise UserError(f"config key o2mkd.init (or o2mkd.ablations.init) = teacher: channel selection is "
                            f"implemented for the unet backbone, not {net}; use scratch")
        why = depth_mismatch(cfg["teacher"]["net_kwargs"], o["student_kwargs"]) if net == "unet" else None
        if why and "teacher" in [o["init"], *o["ablations"]["init"]]:
            raise UserError(f"config key o2mkd.student_kwargs: with init teacher (channel selection) the students "
                            f"keep the teacher's depth, but {why} (teacher.net_kwargs)")
        splits = [(o["split"], n, "o2mkd.num_students") for n in o["num_students"]]
        splits += [(sp, o["ablations"]["num_students"], "o2mkd.ablations.num_students") for sp in o["ablations"]["split"]]
        for split, n, key in splits:
            if split == "steps" and o["split_grid"] < n:
                raise UserError(f"config key o2mkd.split_grid = {o['split_grid']}: the steps split needs at least "
                                f"as many timestamps as students ({key} has {n})")
        if 1 in o["num_students"] and o["claim_students"] not in o["num_students"]:
            raise UserError(f"config key o2mkd.claim_students = {o['claim_students']}: not among "
                            f"o2mkd.num_students {o['num_students']}, so the claim could not be decided")
        if num_timestamps(o["fast_nfe"], False, o["fast_solver"]) is None:
            raise UserError(f"config key o2mkd.fast_nfe = {o['fast_nfe']}: solver {o['fast_solver']} cannot take "
                            "exactly that many NFE without AFS")
