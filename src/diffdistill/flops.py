"""Network cost: multiply-accumulates of one denoiser evaluation, from torch's
`FlopCounterMode` (every matmul and convolution the forward pass runs, whatever module
or functional call issues it). MACs are FlopCounter's FLOPs / 2."""
from __future__ import annotations

import torch
from torch import nn


def macs_per_image(model: nn.Module, img_shape, sigma: float = 1.0, batch: int = 1, **model_kwargs) -> int:
    """MACs of one evaluation of `model` on one image of `img_shape` at noise level `sigma`."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    x = torch.zeros(batch, *img_shape, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, torch.full((batch,), float(sigma), device=device), **model_kwargs)
    return counter.get_total_flops() // 2 // batch
