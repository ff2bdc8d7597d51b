"""FID through clean-fid, with a small trained feature net for toy data and Inception for
real data.

Design decisions:

* **One FID code path.** Every Frechet distance goes through clean-fid
  (``cleanfid.fid.get_batch_features`` for batching, ``cleanfid.fid.frechet_distance``
  for the distance), whatever network makes the features. Only the feature extractor
  changes: a :class:`DigitsFeatureNet` trained here for 8x8 digits (Inception features
  of 8x8 grey digits upsampled to 299x299 mean little), or clean-fid's TorchScript
  Inception for CIFAR-10-like data.
* **Value range at the extractor: float 0..255.** clean-fid passes images around as
  float tensors [B, C, H, W] in [0, 255] (its ``ResizeDataset`` yields
  ``ToTensor()*255``; its Inception wrapper normalises with ``(x-128)/128``). Our
  extractors take the same, so any of them works as clean-fid's
  ``custom_feat_extractor`` too. :func:`compute_features` takes uint8 arrays (what
  ``data.float_to_uint8`` makes), i.e. generated samples are quantised exactly as they
  would be if saved as PNGs, and feeds them as float 0..255. The feature net itself
  works in the dataset range [-1, 1]; its extractor maps ``x/127.5 - 1``.
* **Features in float64** (clean-fid's ``np.cov`` would upcast anyway); statistics
  are float64 throughout.
* **Nothing downloads silently on an offline machine.** The Inception weights
  (``inception-2015-12-05.pt``, a TorchScript file) and clean-fid's reference statistics
  are looked up first where clean-fid itself caches them (``/tmp`` -- ``./`` on
  Windows -- for the weights; ``<cleanfid>/stats/`` for statistics). Only if absent and
  a 3-second TCP connect to the host succeeds do we download (with a socket timeout,
  to a temporary name renamed into place). Otherwise the caller gets a one-line
  :class:`UserError` naming the file, its URL and where to put it. clean-fid's own
  download helpers have no timeout and leave partial files, so we never let them run:
  we call clean-fid's loaders only once the file is in place.
* **Determinism.** The feature net is initialised under a forked, seeded torch RNG
  (the global RNG is left untouched) and minibatches and the train/test split come from
  a seeded ``torch.Generator``; CPU training is bit-reproducible for a seed.
* **Threads are the caller's business.** Nothing here calls ``torch.set_num_threads``.
  For these tiny nets one thread is about as fast as two, and on a busy 2-core machine
  two OpenMP threads can be 10x slower (spin-waiting), so callers should pin it.
"""
from __future__ import annotations

import math
import os
import sys
import platform
import socket
import threading
import time
import urllib.parse
import urllib.request
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .io import UserError, atomic_path, torch_load, torch_save

CLEANFID_INSTALL = "pip install --no-deps clean-fid==0.1.35"


def cleanfid_module(name: str = "fid"):
    """`cleanfid.<name>`, or one line saying how to install clean-fid (it is not a
    declared dependency: it declares torchvision, which must not replace our torch)."""
    import importlib

    from . import compat  # noqa: F401  (installs the torchvision stand-in if needed)
    try:
        return importlib.import_module(f"cleanfid.{name}")
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] == "cleanfid":
            raise UserError(f"clean-fid is not installed: {CLEANFID_INSTALL}") from None
        raise

# --------------------------------------------------------------------------- feature net


class DigitsFeatureNet(nn.Module):
    """Small CNN classifier for [B, C, H, W] images in [-1, 1].

    conv 3x3 (32) -> stride-2 3x3 convs (64) until the map is at most 4x4 -> conv 3x3
    (64) -> adaptive average pool to 4x4 -> flatten -> linear to `feature_dim` -> SiLU
    (the *features*) -> linear to `num_classes` (the logits). For 8x8 digits that is one
    downsampling step and 122k parameters; it reaches ~98% test accuracy on sklearn's
    digits in a few seconds of CPU training (see :func:`train_feature_net`).
    SiLU rather than ReLU keeps the features free of exact zeros, so their covariance
    is better conditioned for the Frechet distance.
    """

    def __init__(self, img_channels: int = 1, img_resolution: int = 8, num_classes: int = 10,
                 feature_dim: int = 64):
        super().__init__()
        if img_channels < 1 or img_resolution < 1 or num_classes < 2 or feature_dim < 1:
            raise UserError(f"bad DigitsFeatureNet sizes: channels={img_channels}, "
                            f"resolution={img_resolution}, classes={num_classes}, "
                            f"feature_dim={feature_dim}")
        self.kwargs = dict(img_channels=int(img_channels), img_resolution=int(img_resolution),
                           num_classes=int(num_classes), feature_dim=int(feature_dim))
        layers: list[nn.Module] = [nn.Conv2d(img_channels, 32, 3, padding=1), nn.SiLU()]
        ch, res = 32, img_resolution
        while res > 4:
            layers += [nn.Conv2d(ch, 64, 3, stride=2, padding=1), nn.SiLU()]
            ch, res = 64, (res + 1) // 2
        layers += [nn.Conv2d(ch, 64, 3, padding=1), nn.SiLU(),
                   nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                   nn.Linear(ch * 16, feature_dim), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(feature_dim, num_classes)

    def _check(self, x: torch.Tensor) -> None:
        k = self.kwargs
        if x.ndim != 4 or x.shape[1] != k["img_channels"]:
            raise UserError(f"feature net expects images [B, {k['img_channels']}, H, W], "
                            f"got shape {tuple(x.shape)}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [B, feature_dim] for images in [-1, 1]."""
        self._check(x)
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _split(n: int, test_fraction: float, gen: torch.Generator):
    if not 0 < test_fraction < 1:
        raise UserError(f"test_fraction must be in (0, 1), got {test_fraction}")
    perm = torch.randperm(n, generator=gen)
    n_test = max(1, int(round(n * test_fraction)))
    if n - n_test < 1:
        raise UserError(f"too few images ({n}) for a train/test split")
    return perm[n_test:], perm[:n_test]


def _random_shift(x: torch.Tensor, gen: torch.Generator, s: int = 1) -> torch.Tensor:
    """Shift each image by its own random offset in -s..s pixels per axis."""
    b, _, h, w = x.shape
    padded = F.pad(x, (s, s, s, s), mode="replicate")
    d = torch.randint(0, 2 * s + 1, (2, b), generator=gen).to(x.device)
    rows = d[0][:, None] + torch.arange(h, device=x.device)  # [B, H]
    cols = d[1][:, None] + torch.arange(w, device=x.device)  # [B, W]
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += (model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum().item()
    return correct / max(1, len(x))


def _labelled(images, labels) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images, dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels, dtype=torch.long)
    if x.ndim != 4 or len(x) != len(y):
        raise UserError(f"expected images [N, C, H, W] and N labels, got {tuple(x.shape)} and {tuple(y.shape)}")
    if len(y) and int(y.min()) < 0:
        raise UserError("the feature net needs class labels; this dataset has none (label -1)")
    return x, y


def train_feature_net(images, labels, *, iters: int, batch_size: int, lr: float, seed: int,
                      test_fraction: float = 0.2, progress: bool = True, feature_dim: int = 64,
                      augment: bool = True, device: str | torch.device = "cpu",
                      ) -> tuple[DigitsFeatureNet, dict]:
    """Train a :class:`DigitsFeatureNet` classifier on `images` [N, C, H, W] in [-1, 1].

    A seeded random `test_fraction` of the images is held out; Adam with a cosine
    learning-rate decay over `iters` steps of `batch_size` images drawn with replacement;
    with `augment`, each training image is shifted by a random -1..1 pixels per axis
    (replicate padding), which buys ~0.5% test accuracy on digits from ~300 steps on.
    Returns the model (eval mode, on CPU) and `info`: plain numbers only (accuracies,
    sizes, hyper-parameters, wall time) so it can go into a weights-only checkpoint.
    """
    x, y = _labelled(images, labels)
    if iters < 1 or batch_size < 1 or not lr > 0:
        raise UserError(f"bad training settings: iters={iters}, batch_size={batch_size}, lr={lr}")
    num_classes = max(10, int(y.max()) + 1)
    gen = torch.Generator().manual_seed(int(seed))
    train_idx, test_idx = _split(len(x), test_fraction, gen)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = DigitsFeatureNet(img_channels=x.shape[1], img_resolution=x.shape[-1],
                                 num_classes=num_classes, feature_dim=feature_dim)
    model.to(device).train()
    xtr, ytr = x[train_idx].to(device), y[train_idx].to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, iters) / iters)))
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    loss_val = float("nan")
    bar = tqdm(range(iters), desc="feature net", disable=not progress, leave=False)
    for it in bar:
        idx = torch.randint(0, len(xtr), (batch_size,), generator=gen).to(device)
        xb = _random_shift(xtr[idx], gen) if augment else xtr[idx]
        loss = F.cross_entropy(model(xb), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if it % 25 == 0 or it == iters - 1:
            loss_val = loss.item()
            bar.set_postfix(loss=f"{loss_val:.4f}")
    bar.close()
    train_seconds = time.perf_counter() - t0
    model.cpu().eval()
    info = dict(train_accuracy=_accuracy(model, x[train_idx], y[train_idx]),
                test_accuracy=_accuracy(model, x[test_idx], y[test_idx]),
                final_loss=loss_val, n_train=len(train_idx), n_test=len(test_idx),
                iters=int(iters), batch_size=int(batch_size), lr=float(lr), seed=int(seed),
                augment=bool(augment),
                test_fraction=float(test_fraction), train_seconds=train_seconds)
    return model, info


FEATNET_FORMAT = "diffdistill-featnet/2"


def save_feature_net(path, model: DigitsFeatureNet, info: dict) -> None:
    """Plain checkpoint {"kwargs", "state_dict", "info"}, loadable with weights_only=True."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch_save(path, {"format": FEATNET_FORMAT, "kwargs": dict(model.kwargs), "state_dict": state, "info": dict(info)})


def load_feature_net(path) -> tuple[DigitsFeatureNet, dict]:
    """Inverse of :func:`save_feature_net`: (model in eval mode on CPU, info)."""
    ckpt = torch_load(path)
    if not isinstance(ckpt, dict) or not {"kwargs", "state_dict"} <= set(ckpt):
        raise UserError(f"{path} is not a feature-net checkpoint (needs 'kwargs' and 'state_dict')")
    if ckpt.get("format") != FEATNET_FORMAT:
        raise UserError(f"{path} was written by an older diffdistill (format {ckpt.get('format', 1)!r}, this version "
                        f"reads {FEATNET_FORMAT!r}): delete it and rerun the rule that makes it")
    try:
        model = DigitsFeatureNet(**ckpt["kwargs"])
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, RuntimeError) as e:
        raise UserError(f"{path}: feature-net checkpoint does not match the network "
                        f"({str(e).splitlines()[0]})") from None
    return model.eval(), dict(ckpt.get("info", {}))


# --------------------------------------------------------------------------- features / FID


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


def _features(feats) -> np.ndarray:
    """Features [N >= 2, D] as float64, or a one-line error."""
    f = np.asarray(feats, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise UserError(f"feature statistics need features [N >= 2, D], got shape {f.shape}")
    return f


def feature_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], covariance [D, D]) in float64, as clean-fid computes them."""
    f = _features(feats)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _same_size(mu1, sigma1_shape, mu2, sigma2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 mu1, mu2, sigma2, or a one-line error when the two statistics differ in size."""
    mu1, mu2, sigma2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or tuple(sigma1_shape) != sigma2.shape:
        raise UserError(f"feature statistics differ in size: mu {mu1.shape} vs {mu2.shape}, "
                        f"sigma {tuple(sigma1_shape)} vs {sigma2.shape}")
    return mu1, mu2, sigma2


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (clean-fid's code)."""
    sigma1 = np.asarray(sigma1, np.float64)
    mu1, mu2, sigma2 = _same_size(mu1, sigma1.shape, mu2, sigma2)
    with warnings.catch_warnings():  # clean-fid passes sqrtm(disp=False), deprecated by SciPy
        warnings.filterwarnings("ignore", message=".*`disp` argument is deprecated",
                                category=DeprecationWarning)
        return float(cleanfid_module("fid").frechet_distance(mu1, sigma1, mu2, sigma2))


def fid_of_features(feats, mu2, sigma2) -> float:
    """FID between features [N, D] and N(mu2, sigma2): clean-fid's code, except when
    N <= D. Then sigma1 = A^T A / (N - 1) (A: the centred features) has rank below N, and
    the nonzero eigenvalues of sigma1 sigma2 are those of the N x N matrix
    A sigma2 A^T / (N - 1), so tr sqrt(sigma1 sigma2) comes exactly from its `eigvalsh`
    instead of a D x D `sqrtm` (2048-d Inception features of a few hundred images: 0.01 s
    against 19 s; the two agree to sqrtm's rounding, tests/test_metrics.py)."""
    f = _features(feats)
    if len(f) > f.shape[1]:
        return frechet_distance(*feature_stats(f), mu2, sigma2)
    mu1, mu2, sigma2 = _same_size(f.mean(axis=0), (f.shape[1],) * 2, mu2, sigma2)  # no D x D covariance
    a = f - mu1
    n1 = len(f) - 1
    eig = np.linalg.eigvalsh(a @ sigma2 @ a.T / n1)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + (a * a).sum() / n1 + np.trace(sigma2) - 2 * tr_covmean)


def fid_from_features(feats1, feats2) -> float:
    """FID between two feature sets [N1, D] and [N2, D]."""
    return fid_of_features(feats1, *feature_stats(feats2))


def load_stats(path) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) from an .npz with arrays 'mu' and 'sigma', float64; a missing or
    malformed file is a one-line error naming it."""
    return load_reference(path)[:2]


def load_reference(path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(mu, sigma, features or None) of a reference file; `features` are the reference
    features KID and PRDC compare against (clean-fid's published statistics have none)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"reference statistics file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            if not {"mu", "sigma"} <= set(z.files):
                raise UserError(f"{p}: needs arrays 'mu' and 'sigma' (has: {', '.join(z.files) or 'none'})")
            mu, sigma = np.asarray(z["mu"], np.float64), np.asarray(z["sigma"], np.float64)
            feats = np.asarray(z["features"], np.float64) if "features" in z.files else None
    except UserError:
        raise
    except Exception as e:  # truncated zip, object arrays, not an npz
        raise UserError(f"cannot read reference statistics {p}: {type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}") from None
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise UserError(f"{p}: mu must be [D] and sigma [D, D], got {mu.shape} and {sigma.shape}")
    return mu, sigma, feats


def kernel_distance(feats1, feats2, num_subsets: int = 100, max_subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """KID (Binkowski et al. 2018) as clean-fid's `kernel_distance` computes it (cubic
    polynomial kernel, unbiased MMD^2 over `num_subsets` random subsets), with the subsets
    drawn from a seeded RandomState instead of numpy's global RNG; returns (KID, the
    standard deviation of the per-subset estimates). The kernel matrices are computed once
    and each subset's block sums come from indicator-vector products."""
    f1, f2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    rng = np.random.RandomState(seed)
    n = f1.shape[1]
    m = min(min(f1.shape[0], f2.shape[0]), max_subset_size)
    k11, k22, k21 = ((a @ b.T / n + 1) ** 3 for a, b in ((f1, f1), (f2, f2), (f2, f1)))
    sx, sy = np.zeros((num_subsets, f2.shape[0])), np.zeros((num_subsets, f1.shape[0]))
    for i in range(num_subsets):  # the subsets, drawn in clean-fid's order, as indicator rows
        sx[i, rng.choice(f2.shape[0], m, replace=False)] = 1
        sy[i, rng.choice(f1.shape[0], m, replace=False)] = 1

    def block(s1, k, s2):  # the sum of k over each subset's block
        return ((s1 @ k) * s2).sum(1)

    a = block(sx, k22, sx) + block(sy, k11, sy) - sx @ np.diag(k22) - sy @ np.diag(k11)
    per = (a / (m - 1) - block(sx, k21, sy) * 2 / m) / m
    return float(per.mean()), float(np.std(per))


def pairwise_distances(x, y) -> np.ndarray:
    """Euclidean distances in float64, computed as scikit-learn's `euclidean_distances`
    does (so PRDC matches the `prdc` package) without importing scikit-learn."""
    d = -2 * (x @ y.T)
    d += (x * x).sum(1)[:, None]
    d += (y * y).sum(1)[None, :]
    np.maximum(d, 0, out=d)
    if x is y:
        np.fill_diagonal(d, 0)
    return np.sqrt(d, out=d)


def knn_radii(x, k: int) -> np.ndarray:
    """Distance of each point to its k-th nearest neighbour (itself excluded)."""
    return np.partition(pairwise_distances(x, x), k, axis=1)[:, k]


def prdc(real, fake, k: int = 5, real_radii=None) -> dict:
    """Precision, recall, density and coverage (Naeem et al. 2020; SFD's reference code
    reports them with k = 5): k-nearest-neighbour balls around the real and the fake
    features, with the `prdc` package's definitions and distances."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    r_real = knn_radii(real, k) if real_radii is None else real_radii
    r_fake = knn_radii(fake, k)
    d = pairwise_distances(real, fake)
    inside = d < r_real[:, None]
    return {"precision": float(inside.any(axis=0).mean()), "recall": float((d < r_fake[None, :]).any(axis=1).mean()),
            "density": float(inside.sum(axis=0).mean() / k), "coverage": float((d.min(axis=1) < r_real).mean())}


def fid_to_stats(images_uint8, extractor: Callable, ref_mu, ref_sigma, batch_size: int = 500,
                 device="cpu") -> float:
    """FID of uint8 images [N, C, H, W] against reference statistics."""
    return fid_of_features(compute_features(images_uint8, extractor, batch_size, device=device), ref_mu, ref_sigma)


# --------------------------------------------------------------------------- Inception

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
STATS_BASE_URL = "https://www.cs.cmu.edu/~clean-fid/stats/"  # as in clean-fid's features.py
INCEPTION_MODES = ("legacy_tensorflow", "clean")
NETWORK_TIMEOUT_S = 3.0
DOWNLOAD_TIMEOUT_S = 60.0


def inception_cache_dir() -> Path:
    """Where clean-fid itself keeps (and looks for) the Inception TorchScript file."""
    return Path("./" if platform.system() == "Windows" else "/tmp")


def reference_stats_dir() -> Path:
    """Where clean-fid keeps its downloaded reference statistics."""
    return Path(os.path.dirname(cleanfid_module("features").__file__)) / "stats"


def _network_reachable(url: str, timeout: float = NETWORK_TIMEOUT_S) -> bool:
    """Quick TCP connect to the URL's host: never hang on an offline machine.

    The socket timeout does not cover name resolution, so the whole probe runs in a
    daemon thread that we wait on for at most `timeout` seconds.
    """
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    result: list[bool] = []

    def probe():
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, name="diffdistill-net-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _download(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Fetch `url` to `dest` atomically (no partial file on failure)."""
    print(f"downloading {url} -> {dest}", flush=True)
    with atomic_path(dest) as tmp:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as f:
            while chunk := resp.read(1 << 20):
                f.write(chunk)


def _fetch_or_fail(url: str, dest: Path, missing: str, hint: str) -> Path:
    """Download `url` to `dest` if the network is reachable, else one-line UserError."""
    why = "network unreachable"
    if _network_reachable(url):
        try:
            _download(url, dest)
            return dest
        except Exception as e:  # noqa: BLE001 - any failure becomes the same advice
            why = f"download failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    raise UserError(f"{missing} not found and could not be downloaded ({why}); fetch {url} "
                    f"and put it at {dest}{hint}")


def inception_weights_path(weights_path=None) -> Path:
    """Locate (or fetch) ``inception-2015-12-05.pt``; see the module docstring."""
    if weights_path:
        p = Path(weights_path).expanduser()
        if not p.is_file():
            raise UserError(f"Inception weights file not found: {p} (eval.inception_weights); "
                            f"fetch {INCEPTION_URL} ({INCEPTION_FILE})")
        return p
    dest = inception_cache_dir() / INCEPTION_FILE
    if dest.is_file():
        return dest
    return _fetch_or_fail(INCEPTION_URL, dest, f"Inception weights {INCEPTION_FILE}",
                          " (clean-fid's cache) or anywhere and set the config key "
                          "eval.inception_weights to its path")


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

    Looks in clean-fid's stats folder (downloading there if the network answers) and
    loads through ``cleanfid.features.get_reference_statistics``; `stats_path` loads an
    explicit .npz with 'mu' and 'sigma' instead.
    """
    if stats_path:
        return load_stats(stats_path)
    cleanfid_module("features")  # before downloading statistics only it can read
    fname = f"{name}_{mode}_{split}_{'na' if split == 'custom' else res}.npz".lower()
    dest = reference_stats_dir() / fname
    if not dest.is_file():
        _fetch_or_fail(STATS_BASE_URL + fname, dest, f"reference statistics {fname}",
                       " (clean-fid's stats folder) or anywhere and pass its path as stats_path")
    try:
        mu, sigma = cleanfid_module("features").get_reference_statistics(name, res, mode=mode, split=split)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"cannot load reference statistics {dest}: {type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}") from None
    return np.asarray(mu, np.float64), np.asarray(sigma, np.float64)


# --------------------------------------------------------------------------- commands


def feature_extractor(features: str, featnet=None, inception_weights=None, device="cpu") -> nn.Module:
    """The FID feature network: the pipeline's classifier or clean-fid's Inception."""
    if features == "inception":
        return inception_extractor(weights_path=inception_weights, device=device)
    if not featnet:
        raise UserError("classifier features need the feature network checkpoint (--featnet)")
    net, _ = load_feature_net(featnet)
    return make_feature_extractor(net).to(device)


def set_metrics(feats, ref_mu, ref_sigma, ref_feats, *, kid_subsets: int, kid_subset_size: int, prdc_k: int,
                prdc_samples: int, seed: int = 0, ref_radii=None) -> dict:
    """FID against the reference statistics; KID and precision/recall/density/coverage
    against the reference features (when the reference file has them)."""
    out = {"fid": fid_of_features(feats, ref_mu, ref_sigma)}
    if ref_feats is not None:
        out["kid"], out["kid_subset_std"] = kernel_distance(feats, ref_feats, kid_subsets, kid_subset_size, seed)
        out.update(prdc(ref_feats[:prdc_samples], feats[:prdc_samples], prdc_k, ref_radii))
    return out


def _merge_sets(per_set: list[dict]) -> dict:
    """mean, `<metric>_std` (ddof 1; NaN for one set) and `<metric>_sets` of each metric."""
    out = {}
    for key in per_set[0]:
        vals = [m[key] for m in per_set]
        out[key] = float(np.mean(vals))
        out[f"{key}_sets"] = vals
        out[f"{key}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan")
    return out


def evaluate_samples(samples, ref, extractor, out, *, num_samples: int, batch_size: int, row: dict,
                     seed_sets: int = 1, kid_subsets: int = 100, kid_subset_size: int = 1000, prdc_k: int = 5,
                     prdc_samples: int = 10000, noise_floor: bool = False, device="cpu",
                     args: dict | None = None) -> dict:
    """Metrics of a samples file (or a trajectory cache's end points) per seed set (set k:
    images k*n .. (k+1)*n - 1), their mean and spread, written to `out` as JSON with the
    row's fields. With `noise_floor`, also the sampling-noise floor: the same metrics
    between the row's own seed sets (the sampler against itself, n images each)."""
    from .io import check_writable, write_json, write_meta
    from .sampling import load_images

    check_writable(out)
    ref_mu, ref_sigma, ref_feats = load_reference(ref)
    imgs = load_images(samples, num_samples * seed_sets)
    if len(imgs) < num_samples * seed_sets:
        raise UserError(f"{samples} holds {len(imgs)} images, fewer than {seed_sets} seed sets of {num_samples}")
    feats = compute_features(imgs, extractor, batch_size, device=device)
    sets = [feats[k * num_samples:(k + 1) * num_samples] for k in range(seed_sets)]
    kw = dict(kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, prdc_k=prdc_k, prdc_samples=prdc_samples)
    radii = knn_radii(ref_feats[:prdc_samples], prdc_k) if ref_feats is not None else None
    result = {**row, **_merge_sets([set_metrics(f, ref_mu, ref_sigma, ref_feats, ref_radii=radii, **kw) for f in sets]),
              "num_samples": num_samples, "seed_sets": seed_sets, "samples": str(samples)}
    if noise_floor and seed_sets > 1:
        pairs = [(a, b) for a in range(seed_sets) for b in range(a + 1, seed_sets)]
        result["noise_floor"] = _merge_sets([set_metrics(sets[a], *feature_stats(sets[b]), sets[b], **kw)
                                             for a, b in pairs])
    write_json(out, result)
    write_meta(out, args or {}, None)
    print(f"{row.get('name', row.get('label'))}: FID {result['fid']:.3f}", file=sys.stderr)
    return result


def reference_stats_to_file(images, extractor, out, floor_out, *, batch_size: int, floor_splits: int, seed: int,
                            reference_stats=None, ref_features: int = 10000, device="cpu",
                            args: dict | None = None) -> dict:
    """Reference statistics of the dataset, and the floor: real half vs real half.

    With `reference_stats` (clean-fid's precomputed Inception statistics of the CIFAR-10
    training set, the papers' protocol) those become the reference; the dataset's own
    features still give the floor and a check of our Inception path against them."""
    from .data import float_to_uint8
    from .io import check_writable, write_json, write_meta

    for path in (out, floor_out):
        check_writable(path)
    feats = compute_features(float_to_uint8(images).numpy(), extractor, batch_size, device=device)
    mu, sigma = feature_stats(feats)
    check = {}
    if reference_stats:
        mu, sigma = inception_reference_stats(stats_path=reference_stats)
        check = {"reference_stats": str(reference_stats),
                 "fid_dataset_vs_reference": fid_of_features(feats, mu, sigma)}
    keep = torch.randperm(len(feats), generator=torch.Generator().manual_seed(seed))[:ref_features].sort().values
    with atomic_path(out) as tmp:  # the reference features KID and PRDC compare against (a seeded subset)
        with open(tmp, "wb") as f:
            np.savez(f, mu=mu, sigma=sigma, num=len(feats), features=feats[keep.numpy()].astype(np.float32))
    write_meta(out, args or {}, seed, **check)
    floors = []
    for split in range(floor_splits):
        perm = torch.randperm(len(feats), generator=torch.Generator().manual_seed(seed + split)).numpy()
        half = len(feats) // 2
        floors.append(fid_from_features(feats[perm[:half]], feats[perm[half:2 * half]]))
    write_json(floor_out, {"row": "floor", "label": f"floor: real half vs real half ({half} each)",
                           "fid": float(np.mean(floors)), "fid_splits": floors,
                           "fid_std": float(np.std(floors)), "num_samples": half})
    write_meta(floor_out, args or {}, seed)
    return check


def train_feature_net_to_file(images, labels, out, *, iters: int, batch_size: int, lr: float, seed: int,
                              device="cpu", progress: bool = True, args: dict | None = None) -> dict:
    """Train the FID feature classifier and write its checkpoint (+ metadata)."""
    import sys

    from .io import check_writable, write_meta

    check_writable(out)
    if (torch.as_tensor(labels) < 0).all():
        raise UserError("this dataset has no labels: the feature classifier needs them")
    t0 = time.perf_counter()
    model, info = train_feature_net(images, labels, iters=iters, batch_size=batch_size, lr=lr, seed=seed,
                                    progress=progress, device=device)
    save_feature_net(out, model, info)
    write_meta(out, args or {}, seed, wall_time=time.perf_counter() - t0, featnet=info)
    print(f"feature net: test accuracy {info['test_accuracy']:.4f}", file=sys.stderr)
    return info
