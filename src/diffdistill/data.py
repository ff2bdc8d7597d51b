"""Dataset registry. Every dataset loads as float32 images [N, C, H, W] in [-1, 1]
plus integer labels (or -1 where there are none). New sources are one more entry."""
from __future__ import annotations

import pickle
import tarfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import UserError

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
    if arr.shape[1] not in (1, 3):
        raise UserError(f"{source}: expected 1 (grey) or 3 (RGB) channels, first or last, got images of shape "
                        f"{arr.shape[1:]} (an alpha channel is not read: drop it)")
    if not len(arr):
        raise UserError(f"{source}: holds no images")
    if arr.dtype != np.uint8:
        raise UserError(f"{source}: expected uint8 images, got {arr.dtype}")
    return uint8_to_float(arr)


def _labels(labels, n: int, source) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{source}: 'labels' must be {n} integers (one per image), got {labels.dtype} {labels.shape}")
    if n and int(labels.min()) < -1:
        raise UserError(f"{source}: labels must be class indices 0..K-1 (or -1: unlabelled), got {int(labels.min())}")
    if n and int(labels.max()) >= n:
        raise UserError(f"{source}: label {int(labels.max())} is not a class index: {n} images hold at most {n} "
                        f"classes (0..{n - 1})")
    return labels.astype(np.int64)


@register_dataset("npz")
def _npz(path):
    import zipfile

    p = _require(path, "npz", "give an .npz with an 'images' array (uint8) and optional 'labels'")
    try:
        with np.load(p, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise UserError(f"{p}: a single .npy array, not an .npz with an 'images' array")
            if "images" not in z:
                raise UserError(f"{p}: no 'images' array (has: {', '.join(z.files) or 'nothing'})")
            images = _images_from_array(z["images"], p)
            labels = _labels(z["labels"], len(images), p) if "labels" in z else -np.ones(len(images), np.int64)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # object arrays (pickles), cut files
        raise UserError(f"{p}: not a readable .npz of plain arrays ({e})") from None
    return images, labels


IMAGE_SUFFIXES = (".png",)
OTHER_IMAGES = (".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")  # refused, never skipped silently
MAX_SIDE = 4096  # a larger declared image size is refused before decoding (a decompression bomb)


def _read_png(f, source) -> np.ndarray:
    """A grey (L) or RGB PNG as uint8 [H, W] or [H, W, 3]; palette and 1-bit images are
    converted, images with transparency or 16 bits are refused (nothing is guessed)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(f) as im:
            if max(im.size) > MAX_SIDE:
                raise UserError(f"{source}: declares {im.size[0]}x{im.size[1]} pixels, above {MAX_SIDE} per side; "
                                "give the images at the size to train on")
            if im.mode in ("LA", "RGBA", "PA") or "transparency" in im.info:
                raise UserError(f"{source}: has an alpha channel; give grey (L) or RGB PNGs")
            if im.mode in ("P", "1"):
                im = im.convert("RGB" if im.mode == "P" else "L")
            if im.mode not in ("L", "RGB"):
                raise UserError(f"{source}: PNG mode {im.mode}; give 8-bit grey (L) or RGB PNGs")
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as e:
        raise UserError(f"{source}: not a readable PNG ({e})") from None


def _stack(arrays: list, names: list, root) -> np.ndarray:
    odd = next((i for i, a in enumerate(arrays) if a.shape != arrays[0].shape), None)
    if odd is not None:
        raise UserError(f"{root}: images differ in size ({names[0]} is {_shape_text(arrays[0])}, {names[odd]} is "
                        f"{_shape_text(arrays[odd])}); give images of one size (nothing is resized)")
    return np.stack(arrays)


def _shape_text(a: np.ndarray) -> str:
    c = 1 if a.ndim == 2 else a.shape[2]
    return f"{c}x{a.shape[0]}x{a.shape[1]}"


def _edm_labels(meta: dict, names: list, source) -> np.ndarray:
    """Labels from EDM's dataset_tool `dataset.json` ({"labels": [[name, label], ...] or null})."""
    if not isinstance(meta, dict):
        raise UserError(f"{source}: dataset.json must hold an object {{\"labels\": [[name, label], ...] or null}}")
    pairs = meta.get("labels")
    if pairs is None:
        return -np.ones(len(names), np.int64)
    if not isinstance(pairs, list) or not all(isinstance(x, list) and len(x) == 2 for x in pairs):
        raise UserError(f"{source}: dataset.json 'labels' must be a list of [file name, integer label] pairs")
    odd = next((x for x in pairs if not isinstance(x[1], int) or isinstance(x[1], bool)), None)
    if odd is not None:
        raise UserError(f"{source}: dataset.json labels must be integer class indices; {odd[0]} has {odd[1]!r}")
    table = dict((str(k), v) for k, v in pairs)
    missing = [n for n in names if n not in table]
    if missing:
        raise UserError(f"{source}: dataset.json gives no label for {missing[0]}")
    return _labels(np.array([table[n] for n in names], np.int64), len(names), source)


def _dataset_json(text, source):
    import json

    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{source}/dataset.json: not valid JSON ({e})") from None


def _folder_entries(p: Path):
    """(relative names, readers, labels) of a folder or a .zip: EDM's dataset_tool layout
    (a dataset.json beside the images), class subfolders (root/<class>/*.png, the
    ImageFolder convention: classes numbered in sorted order) or a flat folder (unlabelled)."""
    import zipfile

    if p.is_file():
        if p.suffix != ".zip":
            raise UserError(f"{p}: dataset 'folder' takes a folder of PNGs or a .zip of them")
        try:
            zf = zipfile.ZipFile(p)
        except zipfile.BadZipFile:
            raise UserError(f"{p}: not a readable .zip") from None
        every = zf.namelist()
        names = sorted(n for n in every if n.lower().endswith(IMAGE_SUFFIXES))
        meta = _dataset_json(zf.read("dataset.json"), p) if "dataset.json" in every else None
        read = lambda n: _read_png(zf.open(n), f"{p}:{n}")  # noqa: E731
    else:
        every = [str(f.relative_to(p)) for f in p.rglob("*") if f.is_file()]
        names = sorted(n for n in every if n.lower().endswith(IMAGE_SUFFIXES))
        meta = _dataset_json((p / "dataset.json").read_bytes(), p) if (p / "dataset.json").is_file() else None
        read = lambda n: _read_png(p / n, p / n)  # noqa: E731
    other = sorted(n for n in every if n.lower().endswith(OTHER_IMAGES))
    if other:
        raise UserError(f"{p}: {other[0]} is not a PNG ({len(other)} such files); only PNGs are read: convert them "
                        "(nothing is skipped, so no class goes missing)")
    if not names:
        raise UserError(f"{p}: no *.png files")
    if meta is not None or p.is_file():
        labels = _edm_labels(meta, names, p) if meta is not None else -np.ones(len(names), np.int64)
        return names, read, labels
    depths = {n.count("/") for n in names}
    if depths == {0}:
        return names, read, -np.ones(len(names), np.int64)
    if depths != {1}:
        raise UserError(f"{p}: images must lie either directly in the folder (unlabelled) or one level down in "
                        f"class folders ({p}/<class>/*.png), not both or deeper")
    classes = sorted({n.split("/")[0] for n in names})
    if len(classes) < 2:
        raise UserError(f"{p}: one class folder ({classes[0]}); put the PNGs directly in {p} for an unlabelled "
                        "dataset, or give two or more classes")
    index = {c: i for i, c in enumerate(classes)}
    return names, read, np.array([index[n.split("/")[0]] for n in names], np.int64)


@register_dataset("folder")
def _folder(path):
    p = _require(path, "folder", "give a folder of PNG images (flat, or one subfolder per class) or a .zip of them")
    names, read, labels = _folder_entries(p)
    arr = _stack([read(n) for n in names], names, p)
    return _images_from_array(arr, p), labels


def class_names(path) -> list[str]:
    """The class folder names of a class-folder dataset, in label order (empty otherwise)."""
    p = Path(path)
    if not p.is_dir() or (p / "dataset.json").exists():
        return []
    return sorted(d.name for d in p.iterdir() if d.is_dir() and any(d.glob("*.png")))


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
