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
        noise_channels: int | None = None,  # width of the noise labels' positional embedding (model_channels)
    ):
        super().__init__()
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.model_channels = model_channels
        self.noise_channels = noise_channels or model_channels
        emb_ch = 4 * model_channels
        self.emb_channels = emb_ch
        self.map0 = nn.Linear(self.noise_channels, emb_ch)
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
        emb = positional_embedding(noise_labels, self.noise_channels)
        return F.silu(self.map1(F.silu(self.map0(emb))))

    def bottleneck(self) -> nn.Module:
        """The block at the lowest resolution whose output summarises the image (feature KD)."""
        return self.mid[-1]

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


# --------------------------------------------------------------------------- channel selection
# A narrower UNet initialised from a wider one (O2MKD's students from the teacher). Every
# layer's input and output channels belong to a *channel space*; residual additions tie a
# block's output to its input, and the decoder's concatenations join two spaces. One
# selection per space, applied to every weight that touches it, keeps the network's
# function: at full width in the original order the copy is the teacher exactly.


class _Plan:
    """Channel spaces of a UNet and, per parameter, the spaces of its output and input dims."""

    def __init__(self, net: "UNet"):
        self.sizes: list[int] = []
        self.params: dict[str, tuple] = {}
        emb = self.space(net.emb_channels)
        self.emb = emb
        self.params.update({"map0.weight": ([emb], None), "map0.bias": ([emb],),
                            "map1.weight": ([emb], [emb]), "map1.bias": ([emb],)})
        h = [self.space(net.model_channels)]
        self.params.update({"conv_in.weight": (h, None), "conv_in.bias": (h,)})
        skips = [h]
        for i, layer in enumerate(net.enc):
            if isinstance(layer, ResBlock):
                h = self.block(f"enc.{i}", layer, h)
            else:  # a strided convolution: a new space
                new = [self.space(layer.out_channels)]
                self.params.update({f"enc.{i}.weight": (new, h), f"enc.{i}.bias": (new,)})
                h = new
            skips.append(h)
        for i, layer in enumerate(net.mid):
            h = self.block(f"mid.{i}", layer, h)
        for i, layer in enumerate(net.dec):
            if isinstance(layer, ResBlock):
                h = self.block(f"dec.{i}", layer, h + skips.pop())
        self.params.update({"norm_out.weight": (h,), "norm_out.bias": (h,), "conv_out.weight": (None, h),
                            "conv_out.bias": (None,)})

    def space(self, size: int) -> int:
        self.sizes.append(size)
        return len(self.sizes) - 1

    def block(self, name: str, b: ResBlock, inp: list) -> list:
        mid = [self.space(b.conv0.out_channels)]
        out = inp if isinstance(b.skip, nn.Identity) else [self.space(b.conv0.out_channels)]
        self.params.update({f"{name}.norm0.weight": (inp,), f"{name}.norm0.bias": (inp,),
                            f"{name}.conv0.weight": (mid, inp), f"{name}.conv0.bias": (mid,),
                            f"{name}.affine.weight": (mid + mid, [self.emb]), f"{name}.affine.bias": (mid + mid,),
                            f"{name}.norm1.weight": (mid,), f"{name}.norm1.bias": (mid,),
                            f"{name}.conv1.weight": (out, mid), f"{name}.conv1.bias": (out,)})
        if not isinstance(b.skip, nn.Identity):
            self.params.update({f"{name}.skip.weight": (out, inp), f"{name}.skip.bias": (out,)})
        return out


def _group_size(space: int, plan: _Plan, channels: int) -> int:
    """Channels per GroupNorm group of a space of `channels` (1 for the embedding)."""
    return 1 if space == plan.emb else channels // group_norm(channels).num_groups


def channel_scores(net: "UNet", plan: _Plan) -> list:
    """Per space, the L2 norm of the weights that produce each of its channels."""
    sq = [torch.zeros(n) for n in plan.sizes]
    state = dict(net.named_parameters())
    for name, dims in plan.params.items():
        if dims[0] is not None and name.endswith("weight") and len(dims) > 1:
            rows = state[name].detach().reshape(state[name].shape[0], -1).pow(2).sum(1)
            for seg, part in zip(dims[0], rows.split([plan.sizes[s] for s in dims[0]])):
                sq[seg] += part
    return [v.sqrt() for v in sq]


def select_channels(teacher: "UNet", student: "UNet", rule: str = "norm", order: str = "original") -> list:
    """Copy `teacher` into the narrower `student` (same depth and embedding input). Per
    space, whole GroupNorm groups (of the student's group size) are kept: the first ones
    (rule 'first') or those whose producing weights have the largest L2 norm ('norm'),
    in their original order (or by norm, `order='norm'`). Returns each space's indices."""
    tp, sp = _Plan(teacher), _Plan(student)
    if len(tp.sizes) != len(sp.sizes):
        raise ValueError("teacher and student differ in depth")
    scores = channel_scores(teacher, tp)
    picks = []
    for s, (big, small) in enumerate(zip(tp.sizes, sp.sizes)):
        g = _group_size(s, sp, small)
        groups = scores[s].reshape(-1, g).sum(1)
        ranked = torch.arange(len(groups)) if rule == "first" else torch.argsort(groups, descending=True, stable=True)
        keep = ranked[:small // g]
        keep = keep if order == "norm" else keep.sort().values
        picks.append((keep[:, None] * g + torch.arange(g)).reshape(-1))
    teacher_params = dict(teacher.named_parameters())
    with torch.no_grad():
        for name, param in student.named_parameters():
            src = teacher_params[name].detach()
            for dim, segs in enumerate(tp.params[name]):
                if segs is not None:  # the concatenated spaces of this dim, each at its offset
                    starts = torch.tensor([0] + [tp.sizes[s] for s in segs]).cumsum(0)
                    src = src.index_select(dim, torch.cat([picks[s] + o for s, o in zip(segs, starts)]))
            param.copy_(src)
    return picks
