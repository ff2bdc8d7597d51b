"""Inputs of config/cifar10-smoke.yaml: small files in the real formats of the CIFAR-10
setting, so that the whole CIFAR-10 DAG runs on a CPU in minutes with nothing downloaded.

    python tests/make_cifar10_smoke.py downloads/smoke

writes, under the given folder, the four files config/cifar10.yaml fetches:
- cifar-10-python.tar.gz: the python-pickle batches archive (cifar-10-batches-py/
  data_batch_1..5, test_batch, batches.meta) holding --images 32x32 RGB images of ten
  synthetic classes (a colour and an orientation per class, noise per image);
- edm-cifar10-32x32-uncond-vp.pkl: the EDM snapshot in tests/fixtures/edm32 (written by
  EDM's own code: VPPrecond around a narrow DDPM++ SongUNet, 32x32 RGB);
- inception-2015-12-05.pt: a TorchScript network with the interface of clean-fid's
  Inception file (`forward(img, return_features)`, a `layers` module taking normalised
  299x299 images to [B, 2048, 1, 1]) and tiny random weights;
- cifar10_legacy_tensorflow_train_32.npz: clean-fid's statistics format (mu, sigma),
  computed with that network on the archive's images through clean-fid's loader.

The workflow's fetch rules then find every file present and never run. Existing files
are kept (delete the folder to regenerate); the same arguments give the same bytes.
"""
from __future__ import annotations

import argparse
import io
import pickle
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

HERE = Path(__file__).resolve().parent
EDM32 = HERE / "fixtures" / "edm32" / "network.pkl"
FILES = ("cifar-10-python.tar.gz", "edm-cifar10-32x32-uncond-vp.pkl", "inception-2015-12-05.pt",
         "cifar10_legacy_tensorflow_train_32.npz")


def synthetic_images(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """n uint8 images [n, 3, 32, 32]: class c is a colour and a stripe orientation."""
    rng = np.random.default_rng(seed)
    labels = [i % 10 for i in range(n)]
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    out = np.empty((n, 3, 32, 32), np.float64)
    for i, c in enumerate(labels):
        angle = np.pi * c / 10 + rng.normal(0, 0.1)
        stripes = 0.5 + 0.5 * np.sin(8 * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 6.3))
        colour = np.array([(c * 37) % 256, (c * 91) % 256, (c * 53 + 80) % 256]) / 255.0
        out[i] = colour[:, None, None] * stripes + rng.normal(0, 0.05, (3, 32, 32))
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8), labels


def write_archive(path: Path, n: int, seed: int) -> np.ndarray:
    images, labels = synthetic_images(n + 10, seed)
    per = n // 5
    with tarfile.open(path, "w:gz") as tar:
        def add(name, obj):
            data = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
        for b in range(5):
            sl = slice(b * per, (b + 1) * per)
            add(f"data_batch_{b + 1}", {b"batch_label": f"training batch {b + 1} of 5".encode(),
                                        b"labels": labels[sl], b"data": images[sl].reshape(per, -1),
                                        b"filenames": [f"{i}.png".encode() for i in range(sl.start, sl.stop)]})
        add("test_batch", {b"batch_label": b"testing batch 1 of 1", b"labels": labels[n:],
                           b"data": images[n:].reshape(10, -1), b"filenames": [b"t.png"] * 10})
        add("batches.meta", {b"label_names": [f"class{c}".encode() for c in range(10)],
                             b"num_cases_per_batch": per, b"num_vis": 3072})
    return images[: 5 * per]


class TinyInception(nn.Module):
    """clean-fid's Inception interface with a tiny random network inside."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(3, 64, 23, stride=23), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                                    nn.Flatten(), nn.Linear(256, 2048), nn.ReLU(), nn.Unflatten(1, (2048, 1, 1)))
        self.output = nn.Linear(2048, 1008)

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = F.interpolate(img.float(), size=(299, 299), mode="bilinear", align_corners=False)
        features = self.layers((x - 128) / 128).flatten(1)
        return features if return_features else self.output(features)


def write_inception(path: Path, seed: int) -> None:
    torch.manual_seed(seed)
    net = torch.jit.script(TinyInception().eval())
    buf = io.BytesIO()
    torch.jit.save(net, buf)
    path.write_bytes(buf.getvalue())


def write_stats(path: Path, images: np.ndarray, inception: Path) -> None:
    from diffdistill.metrics import compute_features, feature_stats, inception_extractor

    feats = compute_features(images, inception_extractor(weights_path=inception), batch_size=100)
    mu, sigma = feature_stats(feats)
    with open(path, "wb") as f:
        np.savez(f, mu=mu, sigma=sigma)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder for the four files")
    ap.add_argument("--images", type=int, default=500, help="training images (a multiple of 5)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    paths = {name: a.out / name for name in FILES}
    if all(p.is_file() for p in paths.values()):
        print(f"{a.out}: all four files present", file=sys.stderr)
        return 0
    tmp = a.out / ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    images = write_archive(tmp / FILES[0], a.images, a.seed)
    shutil.copyfile(EDM32, tmp / FILES[1])
    write_inception(tmp / FILES[2], a.seed)
    write_stats(tmp / FILES[3], images, tmp / FILES[2])
    for name in FILES:  # complete files only, each renamed into place
        (tmp / name).replace(paths[name])
    tmp.rmdir()
    print(f"{a.out}: {', '.join(FILES)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
