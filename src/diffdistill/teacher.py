"""Teacher training with the EDM loss (Karras et al. 2022, section 5)."""
from __future__ import annotations

import torch

from .distributed import rank_slice


class EDMTraining:
    """sigma ~ logN(P_mean, P_std); loss = lambda(sigma) ||D(y + sigma n; sigma) - y||^2."""

    def __init__(self, model, images: torch.Tensor, batch_size: int,
                 P_mean: float = -1.2, P_std: float = 1.2, sigma_data: float = 0.5):
        self.model, self.images, self.batch_size = model, images, batch_size
        self.P_mean, self.P_std, self.sigma_data = P_mean, P_std, sigma_data
        self.counters = {"images_seen": 0}

    def loss(self, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        rnd = torch.randn(y.shape[0], 1, 1, 1, generator=gen)
        sigma = (rnd * self.P_std + self.P_mean).exp()
        weight = (sigma ** 2 + self.sigma_data ** 2) / (sigma * self.sigma_data) ** 2
        n = torch.randn(y.shape, generator=gen) * sigma
        # noise is drawn for the whole batch on every rank; each rank keeps its share
        y, sigma, weight, n = (rank_slice(t) for t in (y, sigma, weight, n))
        D = self.model(y + n, sigma)
        return (weight * (D - y) ** 2).mean()

    def train_step(self, iteration, gen, opt_step) -> dict:
        idx = torch.randint(len(self.images), (self.batch_size,), generator=gen)
        loss = self.loss(self.images[idx], gen)
        opt_step(loss)
        self.counters["images_seen"] += self.batch_size
        return {"loss": loss.item()}
