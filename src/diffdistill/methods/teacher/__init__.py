"""The teacher: an EDM-preconditioned network trained with the EDM loss (Karras et al.
2022, section 5), or imported from an EDM snapshot (`diffdistill import-edm`). Its rows
are the training-free baselines: the teacher with each solver, and the high-NFE reference.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import UserError
from ...naming import TEACHER
from ...nets import check_kwargs
from ...options import DATA_OPTIONS, Opt
from ...schedules import num_timestamps
from .. import register
from ..base import Method, solver_row, teacher_row

if TYPE_CHECKING:
    import torch


def edm_loss(net, y: torch.Tensor, gen: torch.Generator, P_mean: float = -1.2, P_std: float = 1.2,
             sigma_data: float = 0.5) -> torch.Tensor:
    """EDM's training loss of the denoiser `net` on images y: sigma ~ logN(P_mean, P_std),
    lambda(sigma) ||D(y + sigma n; sigma) - y||^2 with lambda = (sigma^2 + sigma_data^2) /
    (sigma sigma_data)^2. The noise is drawn for the whole batch on every rank; each rank
    keeps its share."""
    import torch

    from ...distributed import rank_slice

    rnd = torch.randn(y.shape[0], 1, 1, 1, generator=gen).to(y.device)
    sigma = (rnd * P_std + P_mean).exp()
    weight = (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2
    n = torch.randn(y.shape, generator=gen).to(y.device) * sigma
    y, sigma, weight, n = (rank_slice(t) for t in (y, sigma, weight, n))
    D = net(y + n, sigma)
    return (weight * (D - y) ** 2).mean()


@register
class Teacher(Method):
    name = "teacher"
    section = "teacher"
    order = 0
    stage_inputs = ()  # the dataset only
    shared_keys = ("seed", "device", "amp", "dataset")  # training draws sigma from its own distribution

    @classmethod
    def stage_outputs(cls) -> tuple[str, ...]:
        return (TEACHER.rsplit("/", 1)[0],)
    summary = "train an EDM-preconditioned teacher on the dataset (EDM loss, EMA)"
    options = DATA_OPTIONS
    P_mean, P_std = -1.2, 1.2   # EDM's log-normal noise distribution

    def __init__(self, settings, device):
        from ...data import load_dataset
        from ...precond import build_denoiser

        check_kwargs(settings.net, settings.net_kwargs, key="--net-kwargs")
        images, _ = load_dataset(settings.dataset, settings.dataset_path)
        self.images, self.batch_size, self.sigma_data = images.to(device), settings.batch_size, settings.sigma_data
        self.spec = {"net": settings.net, "precond": "edm", "precond_kwargs": {"sigma_data": settings.sigma_data},
                     "net_kwargs": {"img_resolution": images.shape[-1], "img_channels": images.shape[1],
                                    **settings.net_kwargs}}
        self.model = build_denoiser(self.spec).to(device)
        self.counters = {"images_seen": 0}

    def loss(self, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return edm_loss(self.train_model, y, gen, self.P_mean, self.P_std, self.sigma_data)

    def train_step(self, iteration, gen, opt_step) -> dict:
        import torch

        idx = torch.randint(len(self.images), (self.batch_size,), generator=gen)
        loss = self.loss(self.images[idx.to(self.images.device)], gen)
        opt_step(loss)
        self.counters["images_seen"] += self.batch_size
        return {"loss": loss.item()}

    def meta(self, res) -> dict:
        return {"spec": self.spec}

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
        for solver, afs, nfe in Teacher.baseline_grid(cfg):
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
        for solver, afs, nfe in Teacher.baseline_grid(cfg):
            if num_timestamps(nfe, afs, solver) is None:
                raise UserError(f"config keys baselines.solvers/afs/nfe: {solver} cannot take exactly {nfe} NFE "
                                f"with afs {str(afs).lower()}; list Heun's NFE in baselines.heun_nfe instead")
        ref = cfg["baselines"]["reference"]
        if ref["nfe"] % 2 == 0:
            raise UserError(f"config key baselines.reference.nfe = {ref['nfe']}: EDM's Heun sampler spends "
                            "2 N - 1 NFE on N steps; give an odd NFE (35: 18 steps)")
