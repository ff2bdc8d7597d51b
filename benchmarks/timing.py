"""Timing helpers shared by the scaling, GPU-check and contention benchmarks: seconds of
SFD iterations, images per second of sampling, a network of the default or the CIFAR-10
size. Timestamps come from a `Schedule` the caller reads from a config
(`common.config_schedule`)."""
from __future__ import annotations

import time

import torch

from diffdistill.precond import build_denoiser
from diffdistill.sampling import generate_images
from diffdistill.schedules import Schedule, timesteps

CIFAR10_NET = {"net": "songunet", "precond": "vp", "net_kwargs": {
    "img_resolution": 32, "in_channels": 3, "out_channels": 3, "model_channels": 128, "channel_mult": [2, 2, 2],
    "num_blocks": 4, "attn_resolutions": [16], "dropout": 0.13, "embedding_type": "positional",
    "encoder_type": "standard", "decoder_type": "standard", "channel_mult_noise": 1, "resample_filter": [1, 1]}}


def digits_net(resolution: int = 8, channels: int = 1):
    """The default teacher's architecture (random weights) at another resolution."""
    torch.manual_seed(0)
    return build_denoiser({"net": "unet", "precond": "edm", "net_kwargs": {
        "img_resolution": resolution, "img_channels": channels, "model_channels": 32, "channel_mult": [1, 2],
        "num_blocks": 2, "dropout": 0.0}})


def sfd_step_seconds(model, shape, batch: int, schedule: Schedule, nfe: int = 2, iters: int = 5, warmup: int = 1,
                     wrap=lambda m: m, device="cpu") -> list[float]:
    """Seconds of SFD iterations (one Euler step per network step, backward, Adam) on random
    trajectories at the student timestamps of `nfe` with AFS, held on `device` (each
    step's loss.item() waits for the device)."""
    from types import SimpleNamespace

    from diffdistill.methods.sfd.train import SFDBatches
    from diffdistill.trajectories import TrajectoryBatches

    ts = timesteps("edm", nfe, True, "euler", schedule)
    states = (torch.randn(max(batch, 64), len(ts), *shape) * ts.float().view(1, -1, *[1] * len(shape))).to(device)
    model.train().requires_grad_(True)
    net = wrap(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)

    def step(loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sfd = SFDBatches(SimpleNamespace(train_model=net), TrajectoryBatches(states=states), ts, batch, True, "l1")
    counters, out = {"trajectories": 0, "teacher_nfe": 0}, []
    for it in range(warmup + iters):
        t0 = time.perf_counter()
        sfd.train_step(torch.Generator().manual_seed(it), step, counters)
        out.append(time.perf_counter() - t0)
    return out[warmup:]


def sampling_images_per_second(model, shape, images: int, batch: int, schedule: Schedule, nfe: int = 2,
                               solver: str = "euler") -> float:
    """Images per second of sampling `images` images (Euler by default, AFS) after one warm-up batch."""
    ts = timesteps("edm", nfe, True, solver, schedule)
    model.eval()
    with torch.inference_mode():
        generate_images(model, list(range(min(batch, images))), ts, solver, True, batch_size=batch, img_shape=shape,
                        progress=False)  # warm-up
        t0 = time.perf_counter()
        generate_images(model, list(range(images)), ts, solver, True, batch_size=batch, img_shape=shape,
                        progress=False)
    return images / (time.perf_counter() - t0)
