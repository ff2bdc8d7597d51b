"""The pipeline's own feature network: a small classifier trained on the dataset, whose
penultimate activations are the FID features of datasets Inception features do not
suit (8x8 digits). Initialised under a forked, seeded RNG; minibatches and the
train/test split come from a seeded generator, so CPU training is bit-reproducible."""
from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from ..files import torch_save
from ..safe_pickle import torch_load

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
        c, r = k["img_channels"], k["img_resolution"]
        if x.ndim != 4 or x.shape[1] != c or x.shape[-2:] != (r, r):
            raise UserError(f"the feature net was trained on {c}x{r}x{r} images (channels x height x width), got "
                            f"{'x'.join(map(str, x.shape[1:]))}: images are not resized; use a feature net of "
                            "this dataset")

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
