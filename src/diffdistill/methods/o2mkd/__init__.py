"""O2MKD: one-to-many knowledge distillation (Zhang & Ma 2024), and its one-to-one
baseline (N = 1).

N small students each own a contiguous range of noise levels; `Router` presents them
as one denoiser D(x; sigma) that sends every sample to the student owning its sigma, so
every solver runs on it unchanged. The paper's body is not public (its abstract is);
the range split, the student size and the KD losses are choices, see
`split_boundaries` and `O2MKD`.
"""
from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

from ... import naming
from ...errors import UserError
from ...naming import CONFIG_RECIPE, O2MKD_STUDY, student_model
from ...options import DATA_OPTIONS, SCHEDULE_OPTIONS, Opt, positive_int
from ...recipe import Recipe
from ...rows import Row
from ...schedules import Schedule, num_timestamps, sigma_at, timesteps
from ...solvers import SOLVER_NAMES
from .. import register
from ..base import Method, curve_values, solver_row

if TYPE_CHECKING:  # torch is imported where training needs it; numpy and pandas in report.py
    import torch
    from torch import nn

    from ...nets.router import Router

SPLITS = ("log_sigma", "rho", "steps")
KD_KINDS = ("output", "output+feature")


def split_boundaries(n: int, split: str, t_min: float, t_max: float, rho: float, grid_steps: int = 18) -> list[float]:
    """The n - 1 inner boundaries (descending) of n contiguous ranges of [t_min, t_max].

    log_sigma: equal widths in log sigma. rho: equal widths in t^(1/rho), the coordinate
    in which EDM's sampling grid is uniform, so each student serves the same number of
    steps at any step count. steps: equal numbers of steps of one teacher grid of
    `grid_steps` timestamps (boundaries between grid points, at their midpoint in
    t^(1/rho))."""
    if n < 1:
        raise UserError(f"need at least one student, got {n}")
    if split == "log_sigma":
        lo, hi = math.log(t_min), math.log(t_max)
        return [math.exp(hi + k / n * (lo - hi)) for k in range(1, n)]
    if split == "rho":
        return [sigma_at(k / n, t_min, t_max, rho) for k in range(1, n)]
    if split == "steps":
        if grid_steps < n:
            raise UserError(f"a grid of {grid_steps} timestamps cannot feed {n} students")
        u = [i / (grid_steps - 1) for i in range(grid_steps)]
        cuts = [round(k * grid_steps / n) for k in range(1, n)]
        return [sigma_at(0.5 * (u[c - 1] + u[c]), t_min, t_max, rho) for c in cuts]
    raise UserError(f"unknown split '{split}' (known: {', '.join(SPLITS)})")


DEPTH_KEYS = ("channel_mult", "num_blocks")


def depth_mismatch(teacher_kwargs: dict, student_kwargs: dict) -> str | None:
    """Why channel selection cannot copy the teacher into a student with these backbone
    arguments (they change its depth), or None."""
    for k in DEPTH_KEYS:
        if k in student_kwargs and k in teacher_kwargs and student_kwargs[k] != teacher_kwargs[k]:
            return f"{k} {student_kwargs[k]} differs from the teacher's {teacher_kwargs[k]}"
    return None


def student_spec(teacher_spec: dict, student_kwargs: dict, init: str = "scratch") -> dict:
    """The teacher's spec with the backbone arguments `student_kwargs` changed (width,
    depth): everything else (image shape, attention, embeddings; ours or EDM's names)
    is the teacher's. Students made from the teacher keep its noise embedding's width."""
    spec = copy.deepcopy(teacher_spec)
    spec["net_kwargs"] = {**spec["net_kwargs"], **student_kwargs}
    if init == "teacher":
        if spec["net"] != "unet":
            raise UserError(f"init teacher (channel selection) is implemented for the unet backbone, not "
                            f"{spec['net']}: use --init scratch")
        why = depth_mismatch(teacher_spec["net_kwargs"], student_kwargs)
        if why:
            raise UserError(f"init teacher (channel selection) keeps the teacher's depth: the student's {why}; "
                            "change only the width (model_channels), or use --init scratch")
        spec["net_kwargs"]["noise_channels"] = teacher_spec["net_kwargs"].get("model_channels", 32)
    return spec


def students_from_teacher(router: "Router", teacher) -> None:
    """Every student starts as the teacher narrowed by channel selection (unet.select_channels:
    per channel space, the whole GroupNorm groups whose producing weights have the largest L2
    norm, in their original order). Norms rather than the first channels: a trained
    teacher's channels are not equally used, and the strongest carry most of its function."""
    from ...nets.unet import select_channels

    for s in router.students:
        select_channels(teacher.model, s.model, rule="norm")


def _feature_module(denoiser: nn.Module) -> nn.Module:
    """The feature KD point: the backbone's bottleneck (`bottleneck()` of every network in nets/)."""
    net = getattr(denoiser, "model", denoiser)
    if not hasattr(net, "bottleneck"):
        raise UserError(f"feature KD needs a backbone with a bottleneck, which {type(net).__name__} lacks; "
                        "use --kd output")
    return net.bottleneck()


def attention_map(f: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Parameter-free feature summary comparable across widths (attention transfer):
    channel mean of squares, average-pooled to `size` x `size` when given (students with
    fewer levels have a larger bottleneck), flattened, L2-normalised per sample."""
    from torch.nn import functional as F

    a = f.float().pow(2).mean(1, keepdim=True)
    if size is not None and a.shape[-1] != size:
        a = F.adaptive_avg_pool2d(a, size)
    a = a.flatten(1)
    return a / (a.norm(dim=1, keepdim=True) + 1e-8)


class _Capture:
    def __init__(self, module):
        self.out = None
        self.handle = module.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        self.out = output


# -- its report: methods/o2mkd/report.py, imported where a table is written (planning reads no pandas)

def write_tables(records: list[dict], profile: dict, out) -> None:
    """The O2MKD table (results/tables/o2mkd.*): `report.write_tables`."""
    from .report import write_tables as write

    write(records, profile, out)


def write_study(records: list[dict], out) -> None:
    """The study's table and learning curves (results/ablations): `report.write_study`."""
    from .report import write_study as write

    write(records, out)


def router_label(n: int) -> str:
    return "one-to-one KD (N=1)" if n == 1 else f"O2MKD N={n}"


@register
class O2MKD(Method):
    """KD of a teacher into a Router (N = 1: the one-to-one baseline).

    Each iteration: for every student a full batch of `batch_size` training images with
    sigma uniform in t^(1/rho) within that student's range (the students' ranges
    partition [t_min, t_max]; N = 1 draws over the whole schedule), so each student gets
    as many samples per update as the one-to-one student; the teacher's denoised value
    as target, EDM's loss weight (sigma^2 + sd^2) / (sigma sd)^2, one Adam step for all.
    'output+feature' adds `feature_weight` times the distance between the bottleneck
    attention maps of student and teacher."""

    name = "o2mkd"
    label = "O2MKD"
    colour = "tab:green"
    write_tables = staticmethod(write_tables)
    ablation_tables = {O2MKD_STUDY: write_study}
    section = "o2mkd"
    order = 50
    summary = "O2MKD: N small students over contiguous noise ranges (N = 1: one-to-one KD)"
    find_unused = True
    curves = True
    options = (Opt("teacher", required=True, help="teacher checkpoint"),
               Opt("num_students", required=True, help="students N (1: one-to-one KD)", kwargs={"type": positive_int}),
               Opt("curve_nfe", key="o2mkd.study.nfe", help="DDIM steps of the FID curve",
                   kwargs={"type": positive_int})) + DATA_OPTIONS + SCHEDULE_OPTIONS

    def __init__(self, settings, device):
        import torch

        from ...data import load_dataset
        from ...nets import check_kwargs
        from ...nets.router import router_spec
        from ...precond import build_denoiser, load_teacher

        self.settings = settings
        images, _ = load_dataset(settings.dataset, settings.dataset_path)
        self.teacher, tspec = load_teacher(settings.teacher, device=device, images=images)
        check_kwargs(tspec["net"], settings.student_kwargs, key="--student-kwargs")
        self.schedule = Schedule.from_args(settings)
        self.boundaries = split_boundaries(settings.num_students, settings.split, **self.schedule.to_dict(),
                                           grid_steps=settings.split_grid)
        self.spec = router_spec(student_spec(tspec, settings.student_kwargs, settings.init), settings.num_students,
                                self.boundaries)
        # each student's range of u (sigma = schedule.sigma_at(u)): t_max (u = 0) for student 0 .. t_min (u = 1)
        u = [0.0, *(float(self.schedule.u_at(b)) for b in self.boundaries), 1.0]
        self.u_ranges = list(zip(u[:-1], u[1:]))
        torch.manual_seed(settings.seed)
        self.model = build_denoiser(self.spec).to(device)
        if settings.init == "teacher":
            students_from_teacher(self.model, self.teacher)
        self.images, self.batch_size = images.to(device), settings.batch_size
        self.sigma_data = float(tspec.get("precond_kwargs", {}).get("sigma_data", 0.5))
        self.counters = {"teacher_nfe": 0, "images_seen": 0}
        if settings.kd == "output+feature":
            self._t_feat = _Capture(_feature_module(self.teacher))
            self._s_feat = [_Capture(_feature_module(s)) for s in self.model.students]

    def sample_sigma(self, n: int, gen: torch.Generator, u_range=(0.0, 1.0)) -> torch.Tensor:
        """n noise levels uniform in t^(1/rho) within u_range (the whole schedule by default)."""
        import torch

        lo, hi = u_range
        u = lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)
        return self.schedule.sigma_at(u).float()

    def loss(self, y: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Summed over the samples and divided by the batch size: with every student's
        batch in y, each student's gradient is that of its own batch mean."""
        import torch

        x = y + sigma.view(-1, 1, 1, 1) * noise
        with torch.no_grad():
            target = self.teacher(x, sigma)
        sd = self.sigma_data
        w = ((sigma ** 2 + sd ** 2) / (sigma * sd) ** 2).view(-1, 1, 1, 1)
        d = self.train_model(x, sigma)   # the router: each student sees the samples it owns
        total = (w * (d - target) ** 2).flatten(1).mean(1).sum()
        if self.settings.kd == "output+feature":
            own = self.model.owner(sigma)
            for j in own.unique().tolist():   # each student ran once, on its own samples
                size = min(self._s_feat[j].out.shape[-1], self._t_feat.out.shape[-1])
                a_s = attention_map(self._s_feat[j].out, size)
                a_t = attention_map(self._t_feat.out[own == j], size)
                total = total + self.settings.feature_weight * (a_s - a_t).pow(2).sum(1).sum() * a_s.shape[1]
        return total * self.settings.num_students / len(y)

    def draw_batch(self, gen: torch.Generator):
        """Images, noise levels and noise of one update: for every student a full batch
        (`batch_size` images, sigma uniform in t^(1/rho) within its own range), so each
        student sees as many samples per update as the one-to-one student (N = 1 draws
        exactly what the one-to-one baseline always drew)."""
        import torch

        parts = []
        for u_range in self.u_ranges:
            idx = torch.randint(len(self.images), (self.batch_size,), generator=gen)
            y = self.images[idx.to(self.images.device)]
            sigma = self.sample_sigma(self.batch_size, gen, u_range).to(y.device)
            parts.append((y, sigma, torch.randn(y.shape, generator=gen).to(y.device)))
        return [torch.cat(v) for v in zip(*parts)]

    def train_step(self, iteration, gen, opt_step) -> dict:
        from ...distributed import rank_slice

        y, sigma, noise = self.draw_batch(gen)
        loss = self.loss(*(rank_slice(v) for v in (y, sigma, noise)))
        opt_step(loss)
        self.counters["teacher_nfe"] += len(y)
        self.counters["images_seen"] += len(y)
        return {"loss": loss.item()}

    def curve_sampler(self) -> dict:
        """DDIM at `curve_nfe` steps on EDM's grid (the rows' sampler)."""
        return {"timesteps": timesteps("edm", self.settings.curve_nfe, False, "euler", self.schedule), "afs": False,
                "solver": "euler"}

    def curve_probes(self, seeds, device) -> list:
        """The router with DDIM `curve_nfe` against the teacher with the same sampler."""
        from ...precond import image_shape
        from ...sampling import generate_images
        s = self.curve_sampler()
        target = generate_images(self.teacher, seeds, s["timesteps"], "euler", False, img_shape=image_shape(self.spec),
                                 progress=False, device=device)
        return [(s, target)]

    def recipe(self) -> Recipe:
        """Any step count: rows name the solver and NFE (DDIM, a fast solver)."""
        return Recipe(solver="euler", afs=False, grid="edm", final_step="force", schedule=self.schedule)

    def meta(self, res) -> dict:
        return {"num_students": self.settings.num_students, "boundaries": self.boundaries,
                "params_per_student": sum(p.numel() for p in self.model.students[0].parameters())}

    # ---- the workflow's side ---------------------------------------------------------
    VARIED = ("split", "kd", "model_channels", "init")

    @staticmethod
    def defaults(cfg: dict) -> dict:
        o = cfg["o2mkd"]
        return {"split": o["split"], "kd": o["kd"], "model_channels": o["student_kwargs"].get("model_channels"),
                "init": o["init"]}

    @staticmethod
    def variant(cfg: dict, n: int, **changed) -> str:
        d = O2MKD.defaults(cfg)
        return naming.name({"num_students": n, **{k: v for k, v in changed.items() if v != d[k]}})

    @classmethod
    def rule_values(cls, cfg: dict, wildcards, input, output) -> dict:
        s = naming.parse(wildcards.variant)
        if "num_students" not in s:
            raise UserError(f"O2MKD folder '{wildcards.variant}' does not name its student count (N<n>)")
        kw = {**cfg["o2mkd"]["student_kwargs"]}
        if "model_channels" in s:
            kw["model_channels"] = s["model_channels"]
        study = {"iters": s["iters"], "curve_every": O2MKD.study_budget(cfg)[1]} if "iters" in s else {}
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
        iters, runs = O2MKD.study_budget(cfg)[0], []
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
            rows += O2MKD._router_rows(cfg, O2MKD.variant(cfg, n), label, cols, ("o2mkd",))
        d = O2MKD.defaults(cfg)
        runs = [("default", "")] + [(f, v) for f in O2MKD.VARIED for v in abl[f] if v != d[f]]
        names = {"split": "range split", "kd": "KD loss", "model_channels": "student width", "init": "initialisation"}
        for factor, value in runs:
            var = O2MKD.variant(cfg, abl["num_students"], **({factor: value} if value != "" else {}))
            meta = {"factor": factor, "factor_name": names.get(factor, factor), "value": str(value)}
            label = f"O2MKD N={abl['num_students']}" + (f" ({factor} {value})" if value != "" else "")
            if factor == "default":
                meta["description"] = (f"{d['split']} split, {d['kd']} KD, students of {d['model_channels']} channels "
                                       f"from the {'teacher' if d['init'] == 'teacher' else 'scratch'}, "
                                       f"{cfg['o2mkd']['iters']} iterations; FID at DDIM {abl['nfe']}")
            rows += O2MKD._router_rows(cfg, var, label, [("euler", abl["nfe"])], ("ablations_o2mkd",), meta)
        return rows + O2MKD.study_rows(cfg)

    @staticmethod
    def study_rows(cfg: dict) -> list:
        """The study's rows (table ablations_o2mkd_study): each router with DDIM study.nfe."""
        k, rows = cfg["o2mkd"]["study"]["nfe"], []
        for run in O2MKD.study_runs(cfg):
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
