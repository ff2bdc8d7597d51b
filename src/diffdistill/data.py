"""Dataset registry. Every dataset loads as float32 images [N, C, H, W] in [-1, 1]
plus integer labels (or -1 where there are none). New sources are one more entry."""
from __future__ import annotations

import pickle
import tarfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .io import UserError

_DATASETS: dict[str, Callable] = {}


def register_dataset(name: str):
    def deco(fn):
        _DATASETS[name] = fn
        return fn
    return deco


def load_dataset(name: str, path: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    if name not in _DATASETS:
        raise UserError(f"unknown dataset '{name}' (known: {', '.join(sorted(_DATASETS))})")
    images, labels = _DATASETS[name](path)
    return torch.as_tensor(images, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.long)


def uint8_to_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 127.5 - 1.0


def float_to_uint8(images: torch.Tensor) -> torch.Tensor:
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@register_dataset("digits")
def _digits(path=None):
    """scikit-learn's embedded 8x8 digits: 1,797 grey images, values 0..16."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = d.images.astype(np.float32)[:, None] / 8.0 - 1.0
    return images, d.target


def _require(path, what: str, fetch_hint: str) -> Path:
    if not path:
        raise UserError(f"dataset '{what}' needs dataset.path; {fetch_hint}")
    p = Path(path)
    if not p.exists():
        raise UserError(f"dataset file or folder not found: {p}; {fetch_hint}")
    return p


def _images_from_array(arr: np.ndarray, source) -> np.ndarray:
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4:
        raise UserError(f"{source}: expected images [N, H, W, C] or [N, C, H, W], got shape {arr.shape}")
    if arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)
    if arr.dtype != np.uint8:
        raise UserError(f"{source}: expected uint8 images, got {arr.dtype}")
    return uint8_to_float(arr)


@register_dataset("npz")
def _npz(path):
    p = _require(path, "npz", "give an .npz with an 'images' array (uint8) and optional 'labels'")
    with np.load(p) as z:
        if "images" not in z:
            raise UserError(f"{p}: no 'images' array (has: {', '.join(z.files)})")
        images = _images_from_array(z["images"], p)
        labels = z["labels"] if "labels" in z else -np.ones(len(images), np.int64)
    return images, labels


@register_dataset("folder")
def _folder(path):
    from PIL import Image

    p = _require(path, "folder", "give a folder of PNG images")
    files = sorted(p.glob("*.png"))
    if not files:
        raise UserError(f"{p}: no *.png files")
    arr = np.stack([np.asarray(Image.open(f)) for f in files])
    return _images_from_array(arr, p), -np.ones(len(files), np.int64)


CIFAR10_HINT = ("download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and set "
                "dataset.path to the .tar.gz or to its extracted 'cifar-10-batches-py' folder "
                "(a folder or .npz of PNGs works too)")


@register_dataset("cifar10")
def _cifar10(path):
    """The 50,000 CIFAR-10 training images from the standard python-pickle batches."""
    p = _require(path, "cifar10", CIFAR10_HINT)
    if p.suffix == ".npz":
        return _npz(p)
    if p.is_dir() and not (p / "data_batch_1").exists():
        if (p / "cifar-10-batches-py").is_dir():
            p = p / "cifar-10-batches-py"
        elif list(p.glob("*.png")):
            return _folder(p)
    batches = []
    if p.is_dir():
        for i in range(1, 6):
            f = p / f"data_batch_{i}"
            if not f.exists():
                raise UserError(f"{f} missing; {CIFAR10_HINT}")
            batches.append(_unpickle_batch(f.read_bytes(), f))
    else:
        with tarfile.open(p) as tar:
            for i in range(1, 6):
                member = tar.extractfile(f"cifar-10-batches-py/data_batch_{i}")
                batches.append(_unpickle_batch(member.read(), f"{p}:data_batch_{i}"))
    images = np.concatenate([b[0] for b in batches]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([b[1] for b in batches])
    return uint8_to_float(images), labels


class _ArraysOnly(pickle.Unpickler):
    """CIFAR batches hold numpy arrays and lists: allow nothing else (and `_codecs.encode`, a
    pure function, which Python 3 writes for bytes in protocol-2 pickles of the same batches)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise UserError(f"refusing to unpickle {module}.{name}: not a CIFAR-10 batch")


def _unpickle_batch(raw: bytes, source):
    import io

    d = _ArraysOnly(io.BytesIO(raw), encoding="bytes").load()
    return np.asarray(d[b"data"], dtype=np.uint8), np.asarray(d[b"labels"], dtype=np.int64)
