"""O2MKD: one-to-many knowledge distillation (Zhang & Ma 2024), and its one-to-one
baseline (N = 1).

N small students each own a contiguous range of noise levels; `Router` presents them
as one denoiser D(x; sigma) that sends every sample to the student owning its sigma, so
every solver runs on it unchanged. The paper's body is not public (METHODS.md section
3); the range split, the student size and the KD losses are choices, see
`split_boundaries` and `O2MKD`.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..data import load_dataset
from ..distributed import rank_slice
from ..io import UserError
from ..naming import student_model
from ..options import Opt, positive_int
from ..precond import build_denoiser, load_denoiser, register_kind
from ..rows import Row
from ..schedules import sigma_at
from . import register
from .base import Method
from .teacher import DATA_OPTIONS, SCHEDULE_OPTIONS, SOLVER_NAMES, solver_row

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


class Router(nn.Module):
    """Denoiser D(x; sigma) over N students. Student j owns sigma in [b_j+1, b_j) with
    b_0 = +inf, b_N = -inf: every sigma (0 and beyond t_max included) has exactly one
    owner; a sigma equal to a boundary belongs to the higher-noise student."""

    def __init__(self, students: list[nn.Module], boundaries: list[float]):
        super().__init__()
        if len(boundaries) != len(students) - 1:
            raise ValueError(f"{len(students)} students need {len(students) - 1} boundaries")
        if any(a <= b for a, b in zip(boundaries, boundaries[1:])):
            raise ValueError(f"boundaries must be strictly descending, got {boundaries}")
        self.students = nn.ModuleList(students)
        # float32, the precision in which the solvers hand sigma to the denoiser
        self.register_buffer("boundaries", torch.tensor(boundaries, dtype=torch.float32))

    def params_per_step(self) -> int:
        """Parameters one network evaluation uses: one student's (the largest)."""
        return max(sum(p.numel() for p in s.parameters()) for s in self.students)

    def owner(self, sigma: torch.Tensor) -> torch.Tensor:
        """Index of the owning student for each sigma (flattened), compared in float32."""
        s = torch.as_tensor(sigma).to(torch.float32).reshape(-1).to(self.boundaries.device)
        return (s[:, None] < self.boundaries[None, :]).sum(1)

    def forward(self, x, sigma, **model_kwargs):
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
        sigma = sigma.reshape(-1).expand(x.shape[0]) if sigma.numel() == 1 else sigma.reshape(-1)
        own = self.owner(sigma)
        if len(self.students) == 1 or bool((own == own[0]).all()):
            return self.students[int(own[0])](x, sigma, **model_kwargs)
        out = torch.empty_like(x, dtype=torch.float32)
        for j in own.unique().tolist():
            m = own == j
            out[m] = self.students[j](x[m], sigma[m], **model_kwargs)
        return out


def router_spec(student_spec: dict, n: int, boundaries: list[float]) -> dict:
    return {"kind": "router", "boundaries": list(boundaries), "students": [copy.deepcopy(student_spec)] * n}


def build_router(spec: dict) -> Router:
    return Router([build_denoiser(s) for s in spec["students"]], spec["boundaries"])


register_kind("router", build_router)


def student_spec(teacher_spec: dict, student_kwargs: dict) -> dict:
    """The teacher's spec with the backbone arguments `student_kwargs` changed (width,
    depth): everything else (image shape, attention, embeddings; ours or EDM's names)
    is the teacher's."""
    spec = copy.deepcopy(teacher_spec)
    spec["net_kwargs"] = {**spec["net_kwargs"], **student_kwargs}
    return spec


def _feature_module(denoiser: nn.Module) -> nn.Module:
    """The backbone's bottleneck (last mid block): the feature KD point."""
    net = getattr(denoiser, "model", denoiser)
    if not hasattr(net, "mid"):
        raise UserError(f"feature KD needs a backbone with a 'mid' stage (unet), not {type(net).__name__}; "
                        "use --kd output")
    return net.mid[-1]


def attention_map(f: torch.Tensor) -> torch.Tensor:
    """Parameter-free feature summary comparable across widths (attention transfer):
    channel mean of squares, flattened, L2-normalised per sample."""
    a = f.float().pow(2).mean(1).flatten(1)
    return a / (a.norm(dim=1, keepdim=True) + 1e-8)


class _Capture:
    def __init__(self, module):
        self.out = None
        self.handle = module.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        self.out = output


@register
class O2MKD(Method):
    """KD of a teacher into a Router (N = 1: the one-to-one baseline).

    Each iteration: a batch of training images, sigma uniform in t^(1/rho) over
    [t_min, t_max] (the students' ranges partition it, so with N students each sees
    its own range and, on average, batch / N samples; the total budget is that of the
    one-to-one student), the teacher's denoised value as target, EDM's loss weight
    (sigma^2 + sd^2) / (sigma sd)^2. 'output+feature' adds `feature_weight` times the
    distance between the bottleneck attention maps of student and teacher."""

    name = "o2mkd"
    section = "o2mkd"
    order = 50
    summary = "O2MKD: N small students over contiguous noise ranges (N = 1: one-to-one KD)"
    find_unused = True
    options = (Opt("teacher", required=True, help="teacher checkpoint"),
               Opt("num_students", required=True, help="students N (1: one-to-one KD)", kwargs={"type": positive_int}),
               Opt("split", key="o2mkd.split"), Opt("split_grid", key="o2mkd.split_grid"),
               Opt("student_kwargs", key="o2mkd.student_kwargs"), Opt("kd", key="o2mkd.kd"),
               Opt("feature_weight", key="o2mkd.feature_weight")) + DATA_OPTIONS + SCHEDULE_OPTIONS

    def __init__(self, args, device):
        self.args = args
        self.teacher, tspec = load_denoiser(args.teacher, device=device)
        images, _ = load_dataset(args.dataset, args.dataset_path)
        from ..nets import check_kwargs
        check_kwargs(tspec["net"], args.student_kwargs, key="--student-kwargs")
        self.boundaries = split_boundaries(args.num_students, args.split, args.t_min, args.t_max, args.rho,
                                           args.split_grid)
        self.spec = router_spec(student_spec(tspec, args.student_kwargs), args.num_students, self.boundaries)
        torch.manual_seed(args.seed)
        self.model = build_denoiser(self.spec).to(device)
        self.images, self.batch_size = images.to(device), args.batch_size
        self.sigma_data = float(tspec.get("precond_kwargs", {}).get("sigma_data", 0.5))
        self.counters = {"teacher_nfe": 0, "images_seen": 0}
        if args.kd == "output+feature":
            self._t_feat = _Capture(_feature_module(self.teacher))
            self._s_feat = [_Capture(_feature_module(s)) for s in self.model.students]

    def sample_sigma(self, n: int, gen: torch.Generator) -> torch.Tensor:
        u = torch.rand(n, generator=gen, dtype=torch.float64)
        return sigma_at(u, self.args.t_min, self.args.t_max, self.args.rho).float()

    def loss(self, y: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = y + sigma.view(-1, 1, 1, 1) * noise
        with torch.no_grad():
            target = self.teacher(x, sigma)
        sd = self.sigma_data
        w = ((sigma ** 2 + sd ** 2) / (sigma * sd) ** 2).view(-1, 1, 1, 1)
        d = self.train_model(x, sigma)   # the router: each student sees the samples it owns
        total = (w * (d - target) ** 2).flatten(1).mean(1).sum()
        if self.args.kd == "output+feature":
            own = self.model.owner(sigma)
            for j in own.unique().tolist():   # each student ran once, on its own samples
                a_s = attention_map(self._s_feat[j].out)
                a_t = attention_map(self._t_feat.out[own == j])
                total = total + self.args.feature_weight * (a_s - a_t).pow(2).sum(1).sum() * a_s.shape[1]
        return total / len(y)

    def train_step(self, iteration, gen, opt_step) -> dict:
        idx = torch.randint(len(self.images), (self.batch_size,), generator=gen)
        y = self.images[idx.to(self.images.device)]
        sigma = self.sample_sigma(self.batch_size, gen).to(y.device)
        noise = torch.randn(y.shape, generator=gen).to(y.device)
        loss = self.loss(*(rank_slice(v) for v in (y, sigma, noise)))
        opt_step(loss)
        self.counters["teacher_nfe"] += self.batch_size
        self.counters["images_seen"] += self.batch_size
        return {"loss": loss.item()}

    def recipe(self) -> dict:
        """Any step count: rows name the solver and NFE (DDIM, a fast solver)."""
        a = self.args
        return {"solver": "euler", "afs": False, "grid": "edm", "final_step": "force",
                "t_min": a.t_min, "t_max": a.t_max, "rho": a.rho}

    def meta(self, res) -> dict:
        return {"num_students": self.args.num_students, "boundaries": self.boundaries,
                "params_per_student": sum(p.numel() for p in self.model.students[0].parameters())}

    # ---- the workflow's side ---------------------------------------------------------
    @staticmethod
    def models(cfg: dict) -> list[str]:
        return [student_model("o2mkd", f"n{n}") for n in cfg["o2mkd"]["num_students"]]

    @staticmethod
    def rows(cfg: dict) -> list:
        o = cfg["o2mkd"]
        cols = [("euler", k) for k in o["ddim_nfe"]] + [(o["fast_solver"], o["fast_nfe"])]
        short = {"euler": "DDIM"}
        rows = []
        for solver, k in cols:
            col = f"FID {short.get(solver, SOLVER_NAMES.get(solver, solver))} {k}"
            rows.append(solver_row(cfg, solver, k, False, tables=("o2mkd",), meta={"o2mkd": {"row": "teacher",
                                                                                           "col": col}}))
            for n in o["num_students"]:
                label = "one-to-one KD (N=1)" if n == 1 else f"O2MKD N={n}"
                rows.append(Row(name=f"students/o2mkd/n{n}-{solver}/nfe{k}", label=label, nfe=k, family="o2mkd",
                                model=student_model("o2mkd", f"n{n}"),
                                sample_args=(("--solver", solver), ("--nfe", k)), tables=("o2mkd",),
                                meta={"o2mkd": {"row": label, "col": col}}))
        return rows

    @classmethod
    def rule_values(cls, cfg: dict, wildcards, input, output) -> dict:
        return {"teacher": input.teacher, "num_students": wildcards.n}

    @staticmethod
    def check_config(cfg: dict) -> None:
        from ..nets import check_kwargs
        net = cfg["teacher"]["net"] if cfg["teacher"]["source"] == "train" else "songunet"
        check_kwargs(net, cfg["o2mkd"]["student_kwargs"], key="o2mkd.student_kwargs")
