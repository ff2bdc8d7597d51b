"""The teacher: the EDM loss and the update."""
from __future__ import annotations

from typing import TYPE_CHECKING
from ...nets import check_kwargs
from .. import register
from .plan import TeacherPlan

if TYPE_CHECKING:  # torch is imported where training needs it: the workflow plans rows without it
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
class Teacher(TeacherPlan):
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
