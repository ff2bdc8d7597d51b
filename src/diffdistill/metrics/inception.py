"""clean-fid's TorchScript Inception and its reference statistics, read from files that
are present: nothing here touches the network (`diffdistill fetch`, the workflow's fetch
rules, download them; offline, the error says what to fetch and where to put it)."""
from __future__ import annotations

import os
import platform
from pathlib import Path
import warnings

import numpy as np
import torch
import torch.nn as nn

from ..errors import UserError
from .distances import load_stats
from .features import cleanfid_module

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
STATS_BASE_URL = "https://www.cs.cmu.edu/~clean-fid/stats/"  # as in clean-fid's features.py
INCEPTION_MODES = ("legacy_tensorflow", "clean")


def inception_cache_dir() -> Path:
    """Where clean-fid itself keeps (and looks for) the Inception TorchScript file."""
    return Path("./" if platform.system() == "Windows" else "/tmp")


def reference_stats_dir() -> Path:
    """Where clean-fid keeps its downloaded reference statistics."""
    return Path(os.path.dirname(cleanfid_module("features").__file__)) / "stats"


def _missing(what: str, url: str, dest: Path, hint: str) -> UserError:
    return UserError(f"{what} not found: fetch {url} and put it at {dest}{hint} (nothing is downloaded here; "
                     "the workflow's fetch rules do it with internet)")


def inception_weights_path(weights_path=None) -> Path:
    """``inception-2015-12-05.pt``: `weights_path`, else clean-fid's cache file."""
    if weights_path:
        p = Path(weights_path).expanduser()
        if not p.is_file():
            raise UserError(f"Inception weights file not found: {p} (eval.inception_weights); "
                            f"fetch {INCEPTION_URL} ({INCEPTION_FILE})")
        return p
    dest = inception_cache_dir() / INCEPTION_FILE
    if dest.is_file():
        return dest
    raise _missing(f"Inception weights {INCEPTION_FILE}", INCEPTION_URL, dest,
                   " (clean-fid's cache) or anywhere and set the config key eval.inception_weights to its path")


def _inception_from_file(path: Path, resize_inside: bool) -> nn.Module:
    """clean-fid's InceptionV3W (its forward, its normalisation), loaded from an explicit
    file: the original constructor only takes a folder and would try to download."""
    base_cls = cleanfid_module("inception_torchscript").InceptionV3W
    net = base_cls.__new__(base_cls)
    nn.Module.__init__(net)
    try:
        with warnings.catch_warnings():  # the file *is* TorchScript: no alternative
            warnings.filterwarnings("ignore", message=".*torch.jit.load.* is deprecated",
                                    category=DeprecationWarning)
            net.base = torch.jit.load(str(path), map_location="cpu").eval()
        net.layers = net.base.layers
    except Exception as e:  # noqa: BLE001
        raise UserError(f"cannot load Inception weights {path}: {type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}") from None
    net.resize_inside = resize_inside
    return net


class _InceptionExtractor(nn.Module):
    """float images [B, C, H, W] in 0..255 -> Inception pool features [B, 2048].

    Grey images are repeated to 3 channels. Mode 'legacy_tensorflow' resizes inside the
    network (TF-style bilinear, as clean-fid does for that mode); mode 'clean' resizes
    each image to 299x299 with clean-fid's PIL bicubic resizer first.
    """

    def __init__(self, net: nn.Module, mode: str):
        super().__init__()
        self.net, self.mode = net, mode
        self._resize = cleanfid_module("resize").build_resizer(mode) if mode == "clean" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        if x.shape[1] != 3:
            raise UserError(f"Inception features need 1 or 3 channels, got {x.shape[1]}")
        if self._resize is not None:
            arr = x.permute(0, 2, 3, 1).cpu().numpy()
            arr = np.stack([self._resize(a) for a in arr]).transpose(0, 3, 1, 2)
            x = torch.from_numpy(np.ascontiguousarray(arr)).to(x.device)
        return self.net(x)


def inception_extractor(mode: str = "legacy_tensorflow", weights_path=None,
                        device: str | torch.device = "cpu") -> nn.Module:
    """clean-fid's TorchScript Inception as a feature extractor (float 0..255 in, 2048 out).

    Weights: `weights_path` if given; else clean-fid's cache file
    ``/tmp/inception-2015-12-05.pt``; else downloaded if the network answers; else a
    one-line UserError saying where to get and put the file.
    """
    if mode not in INCEPTION_MODES:
        raise UserError(f"unsupported FID mode '{mode}' (supported: {', '.join(INCEPTION_MODES)}; "
                        "'legacy_pytorch' needs torchvision)")
    cleanfid_module("inception_torchscript")  # before looking for (or downloading) its weights
    path = inception_weights_path(weights_path)
    net = _inception_from_file(path, resize_inside=(mode == "legacy_tensorflow"))
    return _InceptionExtractor(net, mode).to(device).eval()


def inception_reference_stats(name: str = "cifar10", mode: str = "legacy_tensorflow",
                              split: str = "train", res: int = 32,
                              stats_path=None) -> tuple[np.ndarray, np.ndarray]:
    """clean-fid's precomputed Inception (mu, sigma) for a standard dataset, float64.

    Looks in clean-fid's stats folder and loads through ``cleanfid.features.get_reference_statistics``; `stats_path` loads an
    explicit .npz with 'mu' and 'sigma' instead.
    """
    if stats_path:
        return load_stats(stats_path)
    cleanfid_module("features")  # its loader reads them
    fname = f"{name}_{mode}_{split}_{'na' if split == 'custom' else res}.npz".lower()
    dest = reference_stats_dir() / fname
    if not dest.is_file():
        raise _missing(f"reference statistics {fname}", STATS_BASE_URL + fname, dest,
                       " (clean-fid's stats folder) or anywhere and set the config key eval.reference_stats")
    try:
        mu, sigma = cleanfid_module("features").get_reference_statistics(name, res, mode=mode, split=split)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"cannot load reference statistics {dest}: {type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}") from None
    return np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
