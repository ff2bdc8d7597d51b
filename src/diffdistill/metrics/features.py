"""Features of images: clean-fid's batching, any extractor (the feature net or Inception).

Value range at the extractor: float 0..255, as clean-fid passes images around (its
Inception wrapper normalises with (x - 128) / 128). `compute_features` takes uint8
arrays, i.e. samples quantised exactly as they would be as PNGs; the feature net works
in the dataset range [-1, 1] and its extractor maps x / 127.5 - 1. Features are float64.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from ..errors import UserError
from .featnet import DigitsFeatureNet

CLEANFID_INSTALL = "pip install --no-deps clean-fid==0.1.35"


def cleanfid_module(name: str = "fid"):
    """`cleanfid.<name>`, or one line saying how to install clean-fid (it is not a
    declared dependency: it declares torchvision, which must not replace our torch)."""
    import importlib

    from .. import compat  # noqa: F401  (installs the torchvision stand-in if needed)
    try:
        return importlib.import_module(f"cleanfid.{name}")
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] == "cleanfid":
            raise UserError(f"clean-fid is not installed: {CLEANFID_INSTALL}") from None
        raise


class _FeatNetExtractor(nn.Module):
    """clean-fid custom extractor: float images [B, C, H, W] in [0, 255] -> features."""

    def __init__(self, featnet: DigitsFeatureNet):
        super().__init__()
        self.featnet = featnet.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.featnet.features(x.float() / 127.5 - 1.0)


def make_feature_extractor(featnet: DigitsFeatureNet) -> nn.Module:
    """Wrap `featnet` as a clean-fid feature extractor.

    The returned module takes float (or uint8) images [B, C, H, W] with values 0..255,
    the range clean-fid passes around, maps them to [-1, 1] and returns the
    penultimate features [B, feature_dim]. It works with :func:`compute_features` and
    as ``cleanfid.fid.compute_fid(..., custom_feat_extractor=...)``.
    """
    return _FeatNetExtractor(featnet)


def compute_features(images_uint8, extractor: Callable, batch_size: int = 500,
                     device: str | torch.device = "cpu") -> np.ndarray:
    """Features [N, D] float64 of uint8 images [N, C, H, W] via clean-fid's batching.

    Each batch goes to the extractor as float 0..255 through
    ``cleanfid_module("fid").get_batch_features(batch, extractor, device)``; the extractor must
    already be on `device`.
    """
    arr = images_uint8.numpy() if torch.is_tensor(images_uint8) else np.asarray(images_uint8)
    if arr.dtype != np.uint8 or arr.ndim != 4:
        raise UserError(f"compute_features expects uint8 images [N, C, H, W], got {arr.dtype} "
                        f"{arr.shape} (convert with data.float_to_uint8)")
    if len(arr) == 0:
        raise UserError("compute_features: no images")
    if batch_size < 1:
        raise UserError(f"batch_size must be positive, got {batch_size}")
    feats = []
    for i in range(0, len(arr), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(arr[i:i + batch_size])).float()
        feats.append(np.asarray(cleanfid_module("fid").get_batch_features(batch, extractor, device),
                                dtype=np.float64).reshape(len(batch), -1))
    return np.concatenate(feats)
