"""A small EDM-style UNet for low-resolution images (the digits default).

Reads top-down: primitives -> residual block -> backbone. The backbone maps
(x_in, noise_labels) -> F(x_in); it never sees the noise schedule, which lives in the
preconditioning wrapper (diffdistill.precond).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def positional_embedding(labels: torch.Tensor, dim: int, max_positions: int = 10000) -> torch.Tensor:
    """Sinusoidal embedding of scalar labels, shape [B] -> [B, dim]."""
    half = dim // 2
    freqs = torch.arange(half, dtype=torch.float32, device=labels.device) / half
    freqs = (1 / max_positions) ** freqs
    x = labels.float().ger(freqs)
    return torch.cat([x.cos(), x.sin()], dim=1)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels // 4), channels, eps=1e-6)


class ResBlock(nn.Module):
    """Pre-activation residual block with an adaptive scale/shift from the embedding."""

    def __init__(self, in_ch: int, out_ch: int, emb_ch: int, dropout: float):
        super().__init__()
        self.norm0 = group_norm(in_ch)
        self.conv0 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.affine = nn.Linear(emb_ch, 2 * out_ch)
        self.norm1 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv1 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv1.weight)
        nn.init.zeros_(self.conv1.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv0(F.silu(self.norm0(x)))
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(torch.addcmul(shift, self.norm1(h), scale + 1))
        h = self.conv1(self.dropout(h))
        return (h + self.skip(x)) * math.sqrt(0.5)


class UNet(nn.Module):
    """UNet backbone: F(x_in, noise_labels). Extra conditioning (e.g. SFD-v's step count)
    enters through `extra_emb`, a tensor added to the noise embedding."""

    def __init__(
        self,
        img_resolution: int = 8,        # image height = width
        img_channels: int = 1,          # channels in and out
        model_channels: int = 32,       # base channel count
        channel_mult: tuple = (1, 2),   # channel multiplier per resolution level
        num_blocks: int = 2,            # residual blocks per level
        dropout: float = 0.0,           # dropout inside residual blocks
    ):
        super().__init__()
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.model_channels = model_channels
        emb_ch = 4 * model_channels
        self.emb_channels = emb_ch
        self.map0 = nn.Linear(model_channels, emb_ch)
        self.map1 = nn.Linear(emb_ch, emb_ch)
        self.conv_in = nn.Conv2d(img_channels, model_channels, 3, padding=1)

        self.enc = nn.ModuleList()
        skips, ch = [model_channels], model_channels
        for level, mult in enumerate(channel_mult):
            if level > 0:
                self.enc.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
            for _ in range(num_blocks):
                self.enc.append(ResBlock(ch, model_channels * mult, emb_ch, dropout))
                ch = model_channels * mult
                skips.append(ch)
        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_ch, dropout) for _ in range(2)])
        self.dec = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for _ in range(num_blocks + 1):
                self.dec.append(ResBlock(ch + skips.pop(), model_channels * mult, emb_ch, dropout))
                ch = model_channels * mult
            if level > 0:
                self.dec.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, img_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def embed(self, noise_labels: torch.Tensor) -> torch.Tensor:
        emb = positional_embedding(noise_labels, self.model_channels)
        return F.silu(self.map1(F.silu(self.map0(emb))))

    def forward(self, x, noise_labels, class_labels=None, extra_emb=None):
        emb = self.embed(noise_labels)
        if extra_emb is not None:
            emb = emb + extra_emb
        h = self.conv_in(x)
        hs = [h]
        for layer in self.enc:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.dec:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, hs.pop()], dim=1), emb)
            else:
                h = layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))
