"""MACs from the one counter (`diffdistill.profiling.count_macs`: FlopCounterMode FLOPs / 2) against counts made by hand."""
import torch
from torch import nn

from diffdistill.profiling import evaluation_macs
from diffdistill.precond import build_denoiser


class ConvAttention(nn.Module):
    """One 3x3 convolution, then single-head self-attention over the pixels written as EDM's
    SongUNet writes it (einsum, no nn.Linear), as a denoiser D(x; sigma)."""

    def __init__(self, cin=3, c=8):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c, cin, 3, 3))  # functional call, as SongUNet's Conv2d

    def forward(self, x, sigma):
        h = nn.functional.conv2d(x, self.weight, padding=1)
        t = h.flatten(2)                                             # [B, C, N]
        w = torch.einsum("ncq,nck->nqk", t, t / t.shape[1] ** 0.5).softmax(dim=2)
        return torch.einsum("nqk,nck->ncq", w, t).reshape(h.shape)


def test_conv_plus_attention_by_hand():
    cin, c, hw = 3, 8, 16
    n = hw * hw
    conv = c * cin * 3 * 3 * n          # one MAC per weight per output pixel
    attention = n * n * c + n * n * c   # scores q.k over C, then the weighted sum over N pixels
    assert evaluation_macs(ConvAttention(cin, c), (cin, hw, hw)) == conv + attention
    assert evaluation_macs(ConvAttention(cin, c), (cin, hw, hw), batch=4) == conv + attention  # per image


def test_digits_unet_is_unchanged():
    torch.manual_seed(0)
    net = build_denoiser({"net": "unet", "precond": "edm", "net_kwargs": {
        "img_resolution": 8, "img_channels": 1, "model_channels": 32, "channel_mult": [1, 2], "num_blocks": 2,
        "dropout": 0.0}})
    assert evaluation_macs(net, (1, 8, 8)) == 18_907_136  # 18.907 M per network evaluation
