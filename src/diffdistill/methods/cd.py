"""Consistency distillation (CD: Song et al., ICML 2023) and consistency tuning (ECT: Geng
et al., 2024) from the teacher, in EDM's VE form: one network f(x; t) that maps every
point of a noise trajectory to its start, sampled in 1 step or a few re-noised steps.

The student is the teacher's network under the consistency parametrisation
(`precond.CMPrecond`: c_skip = sigma_d^2 / ((t - t_min)^2 + sigma_d^2), c_out = sigma_d
(t - t_min) / sqrt(t^2 + sigma_d^2), so f(x; t_min) = x), starting from the teacher's
weights. Each iteration draws a pair t > r:
- `pairs: karras`: neighbours of the Karras grid of `num_scales` points (rho 7), as in
  openai/consistency_models_cifar10 (`jcm/losses.py`, `configs/cifar10_ve_cd.py`);
- `pairs: ect`: t log-normal, r = t (1 - q^-(stage+1) (1 + 8 sigmoid(-t))), the gap
  shrinking by q every `double` iterations (locuslab/ect `training/loss.py`).
x_t = y + t eps; the point at r is one teacher step from x_t (`target: cd`, Euler or Heun)
or y + r eps with the same eps (`target: ct`, consistency training: no teacher call, ECT).
The loss is lambda(t, r) d(f(x_t; t), stopgrad f(x_r; r)) with the same network as the
target (mu = 0, as iCT and ECT): ECT's pseudo-Huber d = sqrt(|.|^2 + c^2) - c with lambda =
1 / (t - r) (c = 0: ECT's default, the L2 norm), or the squared error with lambda = 1. It
stands in for the papers' LPIPS, whose ImageNet network is not available offline.

Sampling (`solvers.cm_step`, grid `cm`): f(t_max z) at NFE 1; at NFE 2 the output is
re-noised to t_mid with seeded noise and denoised again. Curve points read NFE 2 at the
best `t_mid` candidate on the curve seeds (optimistic by that choice); the final model's
best goes into the checkpoint's recipe, never chosen on the evaluation seeds.
"""
from __future__ import annotations

from dataclasses import replace

from ..errors import UserError
from ..naming import TEACHER, student_model
from ..options import DATA_OPTIONS, Opt
from ..recipe import Recipe
from ..rows import Row
from ..schedules import Schedule
from . import register
from .base import Method, curve_inputs, curve_values

TARGETS = ("ct", "cd")
LABELS = {"ct": "ECT (consistency tuning)", "cd": "CD (consistency distillation)"}


def ect_r(t, q: float, stage: int):
    """ECT's shrinking gap: r = t (1 - q^-(stage+1) (1 + 8 sigmoid(-t))), at least 0."""
    import torch

    return t * (1 - q ** -(stage + 1) * (1 + 8 * torch.sigmoid(-t))).clamp(min=0)


def karras_pairs(i, t_min: float, t_max: float, rho: float, n: int):
    """(t, r) = (t_{i+1}, t_i) on the ascending Karras grid of `n` points, i in 0..n-2."""
    u = i.double() / (n - 1)
    grid = lambda v: (t_min ** (1 / rho) + v * (t_max ** (1 / rho) - t_min ** (1 / rho))) ** rho  # noqa: E731
    return grid(u + 1 / (n - 1)).float(), grid(u).float()


def teacher_step(denoise, x, t, r, solver: str = "euler"):
    """One teacher ODE step from x at t to r (per-sample columns): Euler or Heun."""
    d = (x - denoise(x, t.flatten())) / t
    x_e = x + (r - t) * d
    if solver == "euler":
        return x_e
    return x + (r - t) * 0.5 * (d + (x_e - denoise(x_e, r.flatten())) / r)


def distance(a, b, kind: str, c: float):
    """Per-sample distance: pseudo-Huber sqrt(|a - b|^2 + c^2) - c, or the mean squared error."""
    diff = (a - b).flatten(1)
    if kind == "l2":
        return diff.pow(2).mean(1)
    return (diff.pow(2).sum(1) + c ** 2).sqrt() - c


def _equal_time(d, target: str, budget: float, sfd_first: bool = True):
    """A claims-table measurement: FID at infinite n of SFD at NFE 2 minus the `target`
    model's at NFE 2 (`sfd_first`; else the reverse) when that model's run took at most
    `budget` x SFD's fine-tuning seconds (the benchmark's clean timings at the config's
    learning rate): the final models paired over the evaluation seed sets. A run that
    took longer is read on its curve at the budget (the benchmark's `at_budget`, with the
    curves' own noise)."""
    from .. import stats

    b, name = d.benchmark or {}, LABELS[target].split(" ")[0]
    seconds = (b.get("config_seconds") or {})
    sfd, other = d.by_name.get("students/sfd/default/nfe2"), d.by_name.get(f"students/cd/{target}/nfe2")
    if not (sfd and other and seconds.get("sfd") and seconds.get(target)):
        return None
    ratio = seconds[target] / seconds["sfd"]
    if ratio <= budget:
        s = stats.paired_rows(sfd, other) if sfd_first else stats.paired_rows(other, sfd)
        how = f"final models ({name} ran x{ratio:.2f} SFD's {seconds['sfd']:.0f} s), paired"
    else:
        s = (b.get("at_budget") or {}).get(f"{target}@{budget:g}")
        if s is None:
            return None
        s = s if sfd_first else {**s, "diff": -s["diff"], "t": -s["t"]}
        how = f"{name}'s curve at x{budget:g} SFD's {seconds['sfd']:.0f} s (its run took x{ratio:.2f}), curve seeds"
    sign = "SFD minus " + name if sfd_first else name + " minus SFD"
    return f"{sign}, NFE 2, FID inf: {stats.fmt(s)}; {how}", {"d": s}


@register
class CD(Method):
    name = "cd"
    label = "CD"
    colour = "tab:brown"
    section = "cd"
    order = 45
    curves = True
    monitor = "fid"  # no trajectory to agree with: the curve's FID at the largest NFE
    summary = "consistency distillation (or ECT's consistency tuning) from the teacher: one network, 1 or 2 steps"
    plan_only = ("targets", "main_table")
    options = (Opt("teacher", required=True, help="the teacher the student starts from (and distills, target cd)"),
               Opt("target", required=True, help="the point at r: one teacher step from x_t (cd, consistency "
                   "distillation) or y + r eps with the same eps (ct, ECT's consistency tuning)",
                   kwargs={"choices": TARGETS}),
               Opt("t_max", key="schedule.t_max"), Opt("rho", key="schedule.rho")) + DATA_OPTIONS

    # ---- the workflow's side ---------------------------------------------------------
    @classmethod
    def rule_inputs(cls, cfg: dict, wildcards=None) -> dict:
        return {"teacher": TEACHER, **curve_inputs(cfg)}

    @classmethod
    def rule_values(cls, cfg: dict, wildcards, input, output) -> dict:
        return {"teacher": input.teacher, "target": wildcards.target, **curve_values(cfg, input, output)}

    @staticmethod
    def rows(cfg: dict) -> list:
        """Each target's model at every NFE of cd.nfe: the first target's in the main table
        (with cd.main_table), the others' in results/extended."""
        cd = cfg["cd"]
        main = lambda i: ("main",) if cd["main_table"] and i == 0 else ("extended",)  # noqa: E731
        return [Row(name=f"students/cd/{target}/nfe{n}", label=LABELS[target], nfe=n, family="cd",
                    model=student_model("cd", target), recipe=Recipe(nfe=n), all_seed_sets=True, figure=i == 0,
                    tables=main(i)) for i, target in enumerate(cd["targets"]) if cd["enabled"] for n in cd["nfe"]]

    @staticmethod
    def check_config(cfg: dict) -> None:
        cd, t_max = cfg["cd"], cfg["schedule"]["t_max"]
        if len(set(cd["targets"])) < len(cd["targets"]):
            raise UserError(f"config key cd.targets: {cd['targets']} names a target twice")
        for t in cd["t_mid"]:
            if not cd["t_min"] < t < t_max:
                raise UserError(f"config key cd.t_mid: {t} is not between cd.t_min {cd['t_min']} and "
                                f"schedule.t_max {t_max}")

    @classmethod
    def claims(cls) -> list:
        """Two claims of ours, derived from the papers' numbers; both read the equal-compute
        benchmark's clean timings (benchmarks.equal_compute) and the rows' paired FIDs."""
        from ..claims import Claim, better, exact

        return [
            Claim("Ours, from the ECT and SFD papers: consistency tuning (ECT) at NFE 2 beats SFD at NFE 2 given "
                  "about 1.6x SFD's fine-tuning time", "ECT NFE 2: 2.73 in about 1 A100 hour (Geng et al.) vs SFD "
                  "NFE 2: 4.53 in 0.64 (Zhou et al.): 1.6x the time",
                  "FID inf(SFD, NFE 2) - FID inf(ECT, NFE 2) > 0 with ECT at most 1.6x SFD's fine-tuning seconds: "
                  "the final models paired where ECT's run fits, else ECT's curve at 1.6x", better,
                  {"d": exact(4.53 - 2.73)}, lambda d: _equal_time(d, "ct", 1.6), order=22),
            Claim("SFD at NFE 2 beats consistency distillation at NFE 2 at equal fine-tuning time",
                  "SFD's table: CD 2.93 at NFE 2 for about 1156 A100 hours against SFD's 4.53 in 0.64 (no CD number "
                  "at SFD's budget)", "FID inf(CD, NFE 2) - FID inf(SFD, NFE 2) > 0 with CD at most SFD's "
                  "fine-tuning seconds: the final models paired where CD's run fits, else CD's curve at 1x", better,
                  None, lambda d: _equal_time(d, "cd", 1.0, sfd_first=False), order=24),
        ]

    # ---- training --------------------------------------------------------------------
    def __init__(self, settings, device):
        from ..data import load_dataset
        from ..precond import build_denoiser, load_teacher

        if not settings.nfe:
            raise UserError("--nfe: give at least one NFE to sample the consistency model with")
        if any(not settings.t_min < t < settings.t_max for t in settings.t_mid):
            raise UserError(f"--t-mid {settings.t_mid}: every value must lie between --t-min {settings.t_min} "
                            f"and --t-max {settings.t_max}")
        self.settings = settings
        images, _ = load_dataset(settings.dataset, settings.dataset_path)
        self.images = images.to(device)
        self.teacher, teacher_spec = load_teacher(settings.teacher, device=device, images=images)
        base = teacher_spec.get("precond_kwargs", {})  # the teacher's preconditioning stays under f
        self.spec = {**teacher_spec, "precond": "cm",
                     "precond_kwargs": {"sigma_data": base.get("sigma_data", 0.5), "t_min": settings.t_min,
                                        "base": teacher_spec["precond"], "base_kwargs": base}}
        self.model = build_denoiser(self.spec).to(device)
        self.model.model.load_state_dict(self.teacher.model.state_dict())  # the teacher's backbone, as is
        self.t_mid = settings.t_mid[0]
        self.counters = {"teacher_nfe": 0, "images_seen": 0}

    def pairs(self, n: int, iteration: int, gen):
        """(t, r) columns of n draws."""
        import torch

        s = self.settings
        if s.pairs == "karras":
            return karras_pairs(torch.randint(s.num_scales - 1, (n,), generator=gen), s.t_min, s.t_max, s.rho,
                                s.num_scales)
        # log-normal t, truncated to [t_min, t_max] by redrawing the quantile (FastGen's CM)
        lo, hi = ((torch.tensor(v).log() - s.P_mean) / s.P_std for v in (s.t_min * 1.001, s.t_max))
        normal = torch.distributions.Normal(0.0, 1.0)
        u = normal.cdf(lo) + torch.rand(n, generator=gen) * (normal.cdf(hi) - normal.cdf(lo))
        t = (normal.icdf(u.clamp(1e-7, 1 - 1e-7)) * s.P_std + s.P_mean).exp()
        stage = iteration // s.double if s.double else 0
        # r at least t_min, where f(x; t_min) = x is the target (ECT clamps at 0 and takes the clean image)
        return t, ect_r(t, s.q, stage).clamp(min=s.t_min)

    def loss(self, y, t, r, eps, model=None):
        """The consistency loss of images y at the pairs (t, r) with noise eps (per-sample
        columns): lambda(t, r) d(f(x_t; t), stopgrad f(x_r; r)), batch mean."""
        import torch

        s, f = self.settings, model or self.train_model
        x_t = y + t * eps
        with torch.no_grad():
            if s.target == "cd":
                x_r = teacher_step(self.teacher, x_t, t, r, s.teacher_solver)
            else:
                x_r = y + r * eps
            rng = torch.get_rng_state(), torch.cuda.get_rng_state(y.device) if y.is_cuda else None
            target = f(x_r, r.flatten())
        torch.set_rng_state(rng[0])  # the same dropout masks for both calls (ECT)
        None if rng[1] is None else torch.cuda.set_rng_state(rng[1], y.device)
        d = distance(f(x_t, t.flatten()), target, s.distance, s.huber_c)
        weight = 1 / (t - r).flatten().clamp(min=1e-6) if s.distance == "huber" else 1.0
        return (weight * d).mean()

    def train_step(self, iteration, gen, opt_step) -> dict:
        import torch

        from ..distributed import rank_slice

        s = self.settings
        idx = torch.randint(len(self.images), (s.batch_size,), generator=gen)
        y = self.images[idx.to(self.images.device)]
        t, r = (v.reshape(-1, 1, 1, 1).to(y.device) for v in self.pairs(s.batch_size, iteration, gen))
        eps = torch.randn(y.shape, generator=gen).to(y.device)
        loss = self.loss(*(rank_slice(v) for v in (y, t, r, eps)))
        opt_step(loss)
        if s.target == "cd":
            self.counters["teacher_nfe"] += s.batch_size * (2 if s.teacher_solver == "heun" else 1)
        self.counters["images_seen"] += s.batch_size
        return {"loss": loss.item()}

    # ---- sampling, curves and the result ------------------------------------------------
    def sampler(self, t_mid: float | None = None) -> Recipe:
        s, nfe = self.settings, tuple(self.settings.nfe) if len(self.settings.nfe) > 1 else self.settings.nfe[0]
        return Recipe(solver="cm", nfe=nfe, afs=False, grid="cm", final_step="force",
                      schedule=Schedule(t_min=s.t_min, t_max=s.t_max, rho=s.rho, t_last=t_mid or self.t_mid))

    def probe(self, nfe: int, t_mid: float | None = None) -> dict:
        return {"timesteps": replace(self.sampler(t_mid), nfe=nfe).grid_timesteps(), "solver": "cm", "afs": False}

    def curve_evaluator(self, device):
        """The curve's FID on the curve seeds at every NFE of --nfe, from NFE 2 at the best of
        the --t-mid candidates (`t_mid_nfe<k>` says which); `fid` (the monitor) is the
        largest NFE's."""
        from ..curves import curve_evaluator, curve_seeds
        from ..metrics import feature_extractor
        from ..precond import image_shape

        s = self.settings
        if not s.ref:
            raise UserError("--curve-every: CD's curve is the FID of its samples; give --ref (and --featnet)")
        seeds = curve_seeds(s.curve_seed_start, s.curve_samples)
        extractor = feature_extractor(s.features, s.featnet, s.inception_weights, device)
        evals = {(n, t): curve_evaluator([(self.probe(n, t), None)], seeds, image_shape(self.spec), extractor, s.ref,
                                         device=device) for n in sorted(s.nfe) for t in (s.t_mid if n > 1 else [None])}

        def evaluate(model) -> dict:
            out = {}
            for n in sorted(s.nfe):
                fids = {t: e(model)["fid"] for (k, t), e in evals.items() if k == n}
                best = min(fids, key=fids.get)
                out |= {f"fid_nfe{n}": fids[best], **({f"t_mid_nfe{n}": best} if best is not None else {})}
            return {**out, "fid": out[f"fid_nfe{max(s.nfe)}"]}
        self.evaluate = evaluate
        return evaluate

    def save(self, out, res) -> None:
        """The checkpoint, its recipe's t_mid the one of the best NFE-2 FID on the curve seeds
        (the first of --t-mid without a curve)."""
        top = max(self.settings.nfe)
        if top > 1 and getattr(self, "evaluate", None):  # the saved weights' own curve point, else measure them
            at = res.best_iteration if res.best_iteration is not None else res.iterations
            point = next((p for p in res.curve if p["iteration"] == at), None)
            self.t_mid = (point or self.evaluate(res.model))[f"t_mid_nfe{top}"]
        super().save(out, res)

    def recipe(self) -> Recipe:  # the checkpoint's: at the chosen t_mid
        return self.sampler()

    def curve_nfe(self) -> int:  # the monitored NFE names the curve
        return max(self.settings.nfe)

    def meta(self, res) -> dict:
        return {"t_mid": self.t_mid}
