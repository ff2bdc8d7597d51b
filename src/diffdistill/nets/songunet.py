"""EDM-compatible "DDPM++ / NCSN++" backbone (Song et al. 2021 as re-implemented in EDM).

Written from a description of NVlabs/edm `training/networks.py` so that parameter and
buffer names are identical to EDM's: a state dict saved by EDM loads with strict=True
into `VPPrecond(SongUNet(...))` / `EDMPrecond(SongUNet(...))`, and the forward pass
computes the same function (same op order, float32 attention softmax).

Reads top-down: primitives (weight init, Linear, Conv2d with resampling, GroupNorm,
noise embeddings) -> UNetBlock -> SongUNet.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# --------------------------------------------------------------------------- primitives


def weight_init(shape, mode: str, fan_in: int, fan_out: int) -> torch.Tensor:
    """EDM's initialisation schemes (uniform variants draw from [-1, 1] then scale)."""
    if mode == "xavier_uniform":
        return math.sqrt(6 / (fan_in + fan_out)) * (torch.rand(*shape) * 2 - 1)
    if mode == "xavier_normal":
        return math.sqrt(2 / (fan_in + fan_out)) * torch.randn(*shape)
    if mode == "kaiming_uniform":
        return math.sqrt(3 / fan_in) * (torch.rand(*shape) * 2 - 1)
    if mode == "kaiming_normal":
        return math.sqrt(1 / fan_in) * torch.randn(*shape)
    raise ValueError(f"unknown init mode '{mode}'")


class Linear(nn.Module):
    """Fully connected layer; parameters `weight` [out, in] and optional `bias` [out]."""

    def __init__(self,
                 in_features: int,                 # input width
                 out_features: int,                # output width
                 bias: bool = True,                # learn an additive bias
                 init_mode: str = "kaiming_normal",  # see weight_init
                 init_weight: float = 1,           # multiplier on the initial weight
                 init_bias: float = 0):            # multiplier on the initial bias
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        fans = dict(mode=init_mode, fan_in=in_features, fan_out=out_features)
        self.weight = nn.Parameter(weight_init([out_features, in_features], **fans) * init_weight)
        if bias:
            self.bias = nn.Parameter(weight_init([out_features], **fans) * init_bias)
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        y = x @ self.weight.to(x.dtype).t()
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y


class Conv2d(nn.Module):
    """Square convolution with optional 2x up/downsampling by a separable FIR filter.

    kernel=0 gives a pure resampling layer without weights. The (normalised, outer
    product) filter is stored as the buffer `resample_filter` only when resampling.
    """

    def __init__(self,
                 in_channels: int,                 # input feature maps
                 out_channels: int,                # output feature maps
                 kernel: int,                      # kernel size; 0 = no convolution
                 bias: bool = True,                # learn a per-channel bias
                 up: bool = False,                 # upsample 2x before the convolution
                 down: bool = False,               # downsample 2x before the convolution
                 resample_filter=(1, 1),           # 1-D taps of the resampling filter
                 fused_resample: bool = False,     # fuse resampling with the convolution
                 init_mode: str = "kaiming_normal",  # see weight_init
                 init_weight: float = 1,           # multiplier on the initial weight
                 init_bias: float = 0):            # multiplier on the initial bias
        if up and down:
            raise ValueError("Conv2d cannot both upsample and downsample")
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.up = up
        self.down = down
        self.fused_resample = fused_resample
        fans = dict(mode=init_mode, fan_in=in_channels * kernel * kernel,
                    fan_out=out_channels * kernel * kernel)
        if kernel:
            self.weight = nn.Parameter(
                weight_init([out_channels, in_channels, kernel, kernel], **fans) * init_weight)
        else:
            self.register_parameter("weight", None)
        if kernel and bias:
            self.bias = nn.Parameter(weight_init([out_channels], **fans) * init_bias)
        else:
            self.register_parameter("bias", None)
        taps = torch.as_tensor(list(resample_filter), dtype=torch.float32)
        filt = torch.outer(taps, taps)[None, None] / taps.sum().square()
        self.register_buffer("resample_filter", filt if (up or down) else None)

    def forward(self, x):
        w = None if self.weight is None else self.weight.to(x.dtype)
        b = None if self.bias is None else self.bias.to(x.dtype)
        f = None if self.resample_filter is None else self.resample_filter.to(x.dtype)
        w_pad = 0 if w is None else w.shape[-1] // 2
        f_pad = 0 if f is None else (f.shape[-1] - 1) // 2

        if self.fused_resample and self.up and w is not None:
            depthwise = (f * 4).tile([self.in_channels, 1, 1, 1])
            x = F.conv_transpose2d(x, depthwise, groups=self.in_channels, stride=2,
                                   padding=w_pad + f_pad)
            x = F.conv2d(x, w)
        elif self.fused_resample and self.down and w is not None:
            x = F.conv2d(x, w, padding=w_pad + f_pad)
            x = F.conv2d(x, f.tile([self.out_channels, 1, 1, 1]), groups=self.out_channels,
                         stride=2)
        else:
            if self.up:
                depthwise = (f * 4).tile([self.in_channels, 1, 1, 1])
                x = F.conv_transpose2d(x, depthwise, groups=self.in_channels, stride=2,
                                       padding=f_pad)
            if self.down:
                x = F.conv2d(x, f.tile([self.in_channels, 1, 1, 1]), groups=self.in_channels,
                             stride=2, padding=f_pad)
            if w is not None:
                x = F.conv2d(x, w, padding=w_pad)
        if b is not None:
            x = x + b.reshape(1, -1, 1, 1)
        return x


class GroupNorm(nn.Module):
    """Group normalisation with at most 32 groups and at least 4 channels per group."""

    def __init__(self,
                 num_channels: int,                # channels normalised
                 num_groups: int = 32,             # upper bound on the number of groups
                 min_channels_per_group: int = 4,  # lower bound on group size
                 eps: float = 1e-5):               # variance floor
        super().__init__()
        self.num_groups = min(num_groups, num_channels // min_channels_per_group)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x):
        return F.group_norm(x, num_groups=self.num_groups, weight=self.weight.to(x.dtype),
                            bias=self.bias.to(x.dtype), eps=self.eps)


class PositionalEmbedding(nn.Module):
    """Sinusoidal embedding of scalar noise labels (DDPM++); no parameters."""

    def __init__(self,
                 num_channels: int,                # output width (cos half + sin half)
                 max_positions: int = 10000,       # longest wavelength
                 endpoint: bool = False):          # include the lowest frequency exactly
        super().__init__()
        self.num_channels = num_channels
        self.max_positions = max_positions
        self.endpoint = endpoint

    def forward(self, x):
        half = self.num_channels // 2
        freqs = torch.arange(half, dtype=torch.float32, device=x.device)
        freqs = freqs / (half - (1 if self.endpoint else 0))
        freqs = (1 / self.max_positions) ** freqs
        x = torch.outer(x, freqs.to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


class FourierEmbedding(nn.Module):
    """Random Fourier features of scalar noise labels (NCSN++); buffer `freqs`."""

    def __init__(self,
                 num_channels: int,                # output width (cos half + sin half)
                 scale: float = 16):               # std of the random frequencies
        super().__init__()
        self.register_buffer("freqs", torch.randn(num_channels // 2) * scale)

    def forward(self, x):
        x = torch.outer(x, (2 * math.pi * self.freqs).to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


def attention_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """softmax over keys of q^T k / sqrt(C), computed in float32. q, k: [N, C, L]."""
    k = k / math.sqrt(k.shape[1])
    logits = torch.einsum("ncq,nck->nqk", q.to(torch.float32), k.to(torch.float32))
    return logits.softmax(dim=2).to(q.dtype)


# --------------------------------------------------------------------------- block


class UNetBlock(nn.Module):
    """Pre-activation residual block with optional 2x resampling and self-attention.

    The embedding enters through `affine`, either as an additive shift
    (adaptive_scale=False, DDPM++) or as scale and shift (adaptive_scale=True).
    """

    def __init__(self,
                 in_channels: int,                 # input feature maps
                 out_channels: int,                # output feature maps
                 emb_channels: int,                # width of the conditioning embedding
                 up: bool = False,                 # upsample 2x
                 down: bool = False,               # downsample 2x
                 attention: bool = False,          # append a self-attention layer
                 num_heads: int | None = None,     # attention heads; None = by channels_per_head
                 channels_per_head: int = 64,      # used when num_heads is None
                 dropout: float = 0,               # dropout before the second convolution
                 skip_scale: float = 1,            # multiplier after each residual sum
                 eps: float = 1e-5,                # GroupNorm epsilon
                 resample_filter=(1, 1),           # 1-D taps for up/downsampling
                 resample_proj: bool = False,      # 1x1 projection on a resampled skip
                 adaptive_scale: bool = True,      # embedding gives scale+shift, not shift
                 init: dict | None = None,         # init kwargs for most layers
                 init_zero: dict | None = None,    # init kwargs for the last layer of a branch
                 init_attn: dict | None = None):   # init kwargs for qkv (None = init)
        super().__init__()
        init = dict(init or {})
        init_zero = dict(init_weight=0) if init_zero is None else dict(init_zero)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.emb_channels = emb_channels
        if not attention:
            self.num_heads = 0
        else:
            self.num_heads = num_heads if num_heads is not None else out_channels // channels_per_head
        self.dropout = dropout
        self.skip_scale = skip_scale
        self.adaptive_scale = adaptive_scale

        self.norm0 = GroupNorm(num_channels=in_channels, eps=eps)
        self.conv0 = Conv2d(in_channels, out_channels, kernel=3, up=up, down=down,
                            resample_filter=resample_filter, **init)
        self.affine = Linear(emb_channels, out_channels * (2 if adaptive_scale else 1), **init)
        self.norm1 = GroupNorm(num_channels=out_channels, eps=eps)
        self.conv1 = Conv2d(out_channels, out_channels, kernel=3, **init_zero)

        self.skip = None
        if out_channels != in_channels or up or down:
            skip_kernel = 1 if (resample_proj or out_channels != in_channels) else 0
            self.skip = Conv2d(in_channels, out_channels, kernel=skip_kernel, up=up, down=down,
                               resample_filter=resample_filter, **init)

        if self.num_heads:
            self.norm2 = GroupNorm(num_channels=out_channels, eps=eps)
            self.qkv = Conv2d(out_channels, out_channels * 3, kernel=1,
                              **(init_attn if init_attn is not None else init))
            self.proj = Conv2d(out_channels, out_channels, kernel=1, **init_zero)

    def forward(self, x, emb):
        residual = x
        x = self.conv0(F.silu(self.norm0(x)))

        params = self.affine(emb)[:, :, None, None].to(x.dtype)
        if self.adaptive_scale:
            scale, shift = params.chunk(2, dim=1)
            x = F.silu(torch.addcmul(shift, self.norm1(x), scale + 1))
        else:
            x = F.silu(self.norm1(x + params))

        x = self.conv1(F.dropout(x, p=self.dropout, training=self.training))
        x = x + (self.skip(residual) if self.skip is not None else residual)
        x = x * self.skip_scale

        if self.num_heads:
            b, c = x.shape[:2]
            qkv = self.qkv(self.norm2(x)).reshape(b * self.num_heads, c // self.num_heads, 3, -1)
            q, k, v = qkv.unbind(2)
            w = attention_weights(q, k)
            attended = torch.einsum("nqk,nck->ncq", w, v)
            x = self.proj(attended.reshape(*x.shape)) + x
            x = x * self.skip_scale
        return x


# --------------------------------------------------------------------------- backbone


class SongUNet(nn.Module):
    """DDPM++ (positional embedding, standard encoder) / NCSN++ (Fourier, residual) U-Net.

    Maps (x_in, noise_labels[, class_labels, augment_labels]) -> F(x_in). Submodules live
    in `enc` / `dec` ModuleDicts keyed '<res>x<res>_<role>' exactly as in EDM.
    """

    def __init__(self,
                 img_resolution: int,              # input/output resolution
                 in_channels: int,                 # input colour channels
                 out_channels: int,                # output colour channels
                 label_dim: int = 0,               # class labels; 0 = unconditional
                 augment_dim: int = 0,             # augmentation labels; 0 = none
                 model_channels: int = 128,        # base channel count
                 channel_mult=(1, 2, 2, 2),        # per-resolution channel multipliers
                 channel_mult_emb: int = 4,        # embedding width / model_channels
                 num_blocks: int = 4,              # residual blocks per resolution
                 attn_resolutions=(16,),           # resolutions with self-attention
                 dropout: float = 0.10,            # dropout probability in blocks
                 label_dropout: float = 0,         # class-label dropout (classifier-free)
                 embedding_type: str = "positional",  # 'positional' (DDPM++) or 'fourier'
                 channel_mult_noise: int = 1,      # noise embedding width / model_channels
                 encoder_type: str = "standard",   # 'standard', 'skip' or 'residual'
                 decoder_type: str = "standard",   # 'standard' or 'skip'
                 resample_filter=(1, 1)):          # [1,1] for DDPM++, [1,3,3,1] for NCSN++
        if embedding_type not in ("fourier", "positional"):
            raise ValueError(f"embedding_type must be 'fourier' or 'positional', not {embedding_type!r}")
        if encoder_type not in ("standard", "skip", "residual"):
            raise ValueError(f"encoder_type must be standard/skip/residual, not {encoder_type!r}")
        if decoder_type not in ("standard", "skip"):
            raise ValueError(f"decoder_type must be standard/skip, not {decoder_type!r}")
        super().__init__()
        self.label_dropout = label_dropout
        emb_channels = model_channels * channel_mult_emb
        self.emb_channels = emb_channels
        noise_channels = model_channels * channel_mult_noise
        init = dict(init_mode="xavier_uniform")
        init_zero = dict(init_mode="xavier_uniform", init_weight=1e-5)
        init_attn = dict(init_mode="xavier_uniform", init_weight=math.sqrt(0.2))
        block = dict(emb_channels=emb_channels, num_heads=1, dropout=dropout,
                     skip_scale=math.sqrt(0.5), eps=1e-6, resample_filter=resample_filter,
                     resample_proj=True, adaptive_scale=False,
                     init=init, init_zero=init_zero, init_attn=init_attn)

        # Mapping: noise label (+ class, augmentation) -> embedding.
        if embedding_type == "positional":
            self.map_noise = PositionalEmbedding(noise_channels, endpoint=True)
        else:
            self.map_noise = FourierEmbedding(noise_channels)
        self.map_label = Linear(label_dim, noise_channels, **init) if label_dim else None
        self.map_augment = (Linear(augment_dim, noise_channels, bias=False, **init)
                            if augment_dim else None)
        self.map_layer0 = Linear(noise_channels, emb_channels, **init)
        self.map_layer1 = Linear(emb_channels, emb_channels, **init)

        # Encoder: every non-aux entry pushes one skip connection.
        self.enc = nn.ModuleDict()
        cout = in_channels
        caux = in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                cin, cout = cout, model_channels
                self.enc[f"{res}x{res}_conv"] = Conv2d(cin, cout, kernel=3, **init)
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(cout, cout, down=True, **block)
                if encoder_type == "skip":
                    self.enc[f"{res}x{res}_aux_down"] = Conv2d(
                        caux, caux, kernel=0, down=True, resample_filter=resample_filter)
                    self.enc[f"{res}x{res}_aux_skip"] = Conv2d(caux, cout, kernel=1, **init)
                if encoder_type == "residual":
                    self.enc[f"{res}x{res}_aux_residual"] = Conv2d(
                        caux, cout, kernel=3, down=True, resample_filter=resample_filter,
                        fused_resample=True, **init)
                    caux = cout
            for idx in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_block{idx}"] = UNetBlock(
                    cin, cout, attention=(res in attn_resolutions), **block)
        skips = [m.out_channels for name, m in self.enc.items() if "aux" not in name]

        # Decoder: consumes the skips in reverse; the image comes out of the aux layers.
        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:
                self.dec[f"{res}x{res}_in0"] = UNetBlock(cout, cout, attention=True, **block)
                self.dec[f"{res}x{res}_in1"] = UNetBlock(cout, cout, **block)
            else:
                self.dec[f"{res}x{res}_up"] = UNetBlock(cout, cout, up=True, **block)
            for idx in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                attn = idx == num_blocks and res in attn_resolutions
                self.dec[f"{res}x{res}_block{idx}"] = UNetBlock(cin, cout, attention=attn, **block)
            if decoder_type == "skip" or level == 0:
                if decoder_type == "skip" and level < len(channel_mult) - 1:
                    self.dec[f"{res}x{res}_aux_up"] = Conv2d(
                        out_channels, out_channels, kernel=0, up=True,
                        resample_filter=resample_filter)
                self.dec[f"{res}x{res}_aux_norm"] = GroupNorm(cout, eps=1e-6)
                self.dec[f"{res}x{res}_aux_conv"] = Conv2d(cout, out_channels, kernel=3, **init_zero)

    def bottleneck(self) -> nn.Module:
        """The block at the lowest resolution whose output summarises the image (feature KD):
        the decoder's first block after the lowest-resolution attention ('<res>x<res>_in1')."""
        return self.dec[next(k for k in self.dec if k.endswith("_in1"))]

    def forward(self, x, noise_labels, class_labels=None, augment_labels=None, extra_emb=None):
        """x: [B, C, H, W]; noise_labels: [B]; class_labels: [B, label_dim] or None (zeros);
        extra_emb: optional [B, emb_channels] added to the embedding after the mapping MLP."""
        # Mapping.
        emb = self.map_noise(noise_labels)
        emb = emb.reshape(emb.shape[0], 2, -1).flip(1).reshape(*emb.shape)  # sin first, then cos
        if self.map_label is not None:
            labels = class_labels
            if labels is None:  # unconditional use of a conditional net (EDM's precond does this)
                labels = torch.zeros([x.shape[0], self.map_label.in_features], device=x.device,
                                     dtype=emb.dtype)
            if self.training and self.label_dropout:
                keep = torch.rand([x.shape[0], 1], device=x.device) >= self.label_dropout
                labels = labels * keep.to(labels.dtype)
            emb = emb + self.map_label(labels * math.sqrt(self.map_label.in_features))
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels)
        emb = F.silu(self.map_layer0(emb))
        emb = F.silu(self.map_layer1(emb))
        if extra_emb is not None:
            emb = emb + extra_emb.to(emb.dtype)

        # Encoder.
        skips = []
        aux = x
        for name, block in self.enc.items():
            if "aux_down" in name:
                aux = block(aux)
            elif "aux_skip" in name:
                x = skips[-1] = x + block(aux)
            elif "aux_residual" in name:
                x = skips[-1] = aux = (x + block(aux)) / math.sqrt(2)
            else:
                x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
                skips.append(x)

        # Decoder.
        aux = None
        tmp = None
        for name, block in self.dec.items():
            if "aux_up" in name:
                aux = block(aux)
            elif "aux_norm" in name:
                tmp = block(x)
            elif "aux_conv" in name:
                tmp = block(F.silu(tmp))
                aux = tmp if aux is None else tmp + aux
            else:
                if x.shape[1] != block.in_channels:
                    x = torch.cat([x, skips.pop()], dim=1)
                x = block(x, emb)
        return aux
