"""Distances between feature sets: the Frechet distance (clean-fid's code), FID at
infinite n, KID, precision/recall/density/coverage, and same-seed agreement."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import UserError
from .features import cleanfid_module


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


def fid_features_to_stats(feats, mu2, sigma2) -> float:
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


def fid_between_features(feats1, feats2) -> float:
    """FID between two feature sets [N1, D] and [N2, D]."""
    return fid_features_to_stats(feats1, *feature_stats(feats2))


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


FRACTIONS = (0.25, 0.4, 0.55, 0.7, 0.85, 1.0)  # subset sizes of FID at infinite n, as fractions of n
LAW_FROM = 4.5   # FID's bias follows b / m from m of about 4.5 x the feature dimension up (below it, faster)
FIT_DRAWS = 24   # independent draws of the bias fit: their spread is the fit's own noise


def fid_infinity(feats, ref_mu, ref_sigma, ref_feats=None, fractions=FRACTIONS, repeats: int = 2,
                 seed: int = 0, ref_fractions=None, floor: int = 0) -> dict:
    """FID extrapolated to infinite n (Chong & Forsyth 2020): FID on random subsets of
    several sizes m, a least-squares fit FID = a + b / m, and the intercept a.

    With `ref_feats` (the *whole* reference set, not a subset of it) the reference side
    is extrapolated too: subsets of r reference features, fit a + b / m + c / r, so the
    intercept carries neither side's finite-sample bias. Without it (clean-fid's
    published statistics: mean and covariance only) the reference side stays at its
    own n (50k on CIFAR-10). `ref_fractions`: the reference side's own fractions (default
    `fractions`); sizes below `floor` are left out where two sizes remain (`_sizes`).
    Returns {fid_inf, slope_n, slope_ref, points}."""
    f = _features(feats)
    rng = np.random.default_rng(seed)
    sizes = _sizes(len(f), fractions, floor)
    ref_sizes = (_sizes(len(ref_feats), ref_fractions or fractions, floor) if ref_feats is not None else [None])
    points = []
    for r in ref_sizes:
        for m in sizes:
            for _ in range(1 if m == len(f) and (r is None or r == len(ref_feats)) else repeats):
                sub = f[rng.choice(len(f), m, replace=False)] if m < len(f) else f
                if r is None:
                    fd = fid_features_to_stats(sub, ref_mu, ref_sigma)
                else:
                    ref = ref_feats[rng.choice(len(ref_feats), r, replace=False)] if r < len(ref_feats) else ref_feats
                    fd = fid_features_to_stats(sub, *feature_stats(ref))
                points.append((m, r, fd))
    X = np.array([[1.0, 1.0 / m] + ([1.0 / r] if r is not None else []) for m, r, _ in points])
    y = np.array([p[2] for p in points])
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    return {"fid_inf": float(coef[0]), "slope_n": float(coef[1]),
            "slope_ref": float(coef[2]) if len(coef) > 2 else None, "points": len(points)}


def fid_bias(feats, n: int, ref_mu, ref_sigma, ref_feats=None, draws: int = FIT_DRAWS) -> dict:
    """The finite-sample bias of FID at n (against the whole reference) that a row's
    per-set FIDs carry, from `fid_infinity` fits on its pooled features (all seed sets):
    subset sizes from LAW_FROM x the feature dimension (where the 1/m law holds) up to the
    pool, reference subsets from a third of the reference up. `draws` independent fits
    (draw i seeded i, so two rows with pools of one size draw the same subsets: common
    random numbers); `bias` is their mean, `draws` each one's value, whose spread between
    two rows is the fit's own noise in their difference (stats.fit_noise).
    Returns {bias, draws, fid_inf_pooled, slope_n, slope_ref}."""
    f = _features(feats)
    floor = int(np.ceil(LAW_FROM * f.shape[1]))
    fits = [fid_infinity(f, ref_mu, ref_sigma, ref_feats, (0.2, 0.4, 0.6, 0.8, 1.0), repeats=1, seed=i,
                         ref_fractions=(1 / 3, 0.5, 0.75, 1.0), floor=floor) for i in range(draws)]
    r = len(ref_feats) if ref_feats is not None else None
    at_n = [x["slope_n"] / n + ((x["slope_ref"] or 0.0) / r if r else 0.0) for x in fits]
    return {"bias": float(np.mean(at_n)), "draws": [float(b) for b in at_n],
            "fid_inf_pooled": float(np.mean([x["fid_inf"] for x in fits])),
            "slope_n": float(np.mean([x["slope_n"] for x in fits])),
            "slope_ref": float(np.mean([x["slope_ref"] for x in fits])) if r else None}


def _sizes(total: int, fractions, floor: int) -> list[int]:
    """Subset sizes: the fractions of `total` at or above `floor`; where fewer than two
    are (a pool smaller than the 1/m law needs, as in the test configs), all of them."""
    sizes = sorted({max(2, round(x * total)) for x in fractions})
    law = [m for m in sizes if m >= floor]
    return law if len(law) >= 2 else sizes


def agreement(images, teacher_images, feats, teacher_feats) -> dict:
    """Same-seed agreement with the teacher: the mean per-image pixel RMSE in [-1, 1]
    units (uint8 images [N, C, H, W] of the same seeds, in the same order) and the mean
    Euclidean distance of their features; `*_unrelated`: the same between each image and
    the teacher's image of the next seed (what unrelated pairs give)."""
    a = np.asarray(images, np.float64) / 127.5 - 1
    b = np.asarray(teacher_images, np.float64) / 127.5 - 1
    if a.shape != b.shape or len(feats) != len(teacher_feats):
        raise UserError(f"agreement needs images of the same seeds: {a.shape} vs {b.shape}")
    rmse = lambda x, y: float(np.sqrt(((x - y) ** 2).reshape(len(x), -1).mean(1)).mean())  # noqa: E731
    dist = lambda x, y: float(np.linalg.norm(np.asarray(x) - np.asarray(y), axis=1).mean())  # noqa: E731
    return {"rmse": rmse(a, b), "feature_distance": dist(feats, teacher_feats),
            "rmse_unrelated": rmse(a, np.roll(b, 1, axis=0)),
            "feature_distance_unrelated": dist(feats, np.roll(teacher_feats, 1, axis=0))}
