"""The metrics commands: per-seed-set metrics of a samples file, reference statistics
and the real-vs-real floor, and the feature net's training, each written with its
metadata sidecar."""
from __future__ import annotations

import sys
import time

import numpy as np
import torch
import torch.nn as nn

from ..atomic import atomic_path, check_writable
from ..errors import UserError
from ..files import write_json
from ..provenance import write_meta
from .distances import feature_stats, fid_between_features, fid_features_to_stats, kernel_distance, knn_radii, \
    load_reference, prdc
from .featnet import load_feature_net, save_feature_net, train_feature_net
from .features import compute_features, make_feature_extractor
from .inception import inception_extractor, inception_reference_stats

def feature_extractor(features: str, featnet=None, inception_weights=None, device="cpu") -> nn.Module:
    """The FID feature network: the pipeline's classifier or clean-fid's Inception."""
    if features == "inception":
        return inception_extractor(weights_path=inception_weights, device=device)
    if not featnet:
        raise UserError("classifier features need the feature network checkpoint (--featnet)")
    net, _ = load_feature_net(featnet)
    return make_feature_extractor(net).to(device)


def fid_images_to_stats(images_uint8, extractor, ref_mu, ref_sigma, batch_size: int = 500, device="cpu") -> float:
    """FID of uint8 images [N, C, H, W] against reference statistics."""
    return fid_features_to_stats(compute_features(images_uint8, extractor, batch_size, device=device), ref_mu,
                                 ref_sigma)


def set_metrics(feats, ref_mu, ref_sigma, ref_feats, *, kid_subsets: int, kid_subset_size: int, prdc_k: int,
                prdc_samples: int, seed: int = 0, ref_radii=None) -> dict:
    """FID against the reference statistics; KID and precision/recall/density/coverage
    against the reference features (when the reference file has them)."""
    out = {"fid": fid_features_to_stats(feats, ref_mu, ref_sigma)}
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


def _sets(feats, n: int, k: int) -> list:
    return [feats[i * n:(i + 1) * n] for i in range(k)]


def _teacher(path, teacher_features, seeds: list):
    """(uint8 images, features) of the reference sampler for `seeds` (this row's)."""
    from ..sampling import load_images

    num = len(seeds)
    imgs = load_images(path, num, seeds_expected=seeds)
    with np.load(teacher_features, allow_pickle=False) as z:
        feats = np.asarray(z["features"][:num], np.float64)
    if len(imgs) < num or len(feats) < num:
        raise UserError(f"{path} holds {len(imgs)} images and {teacher_features} {len(feats)} features, fewer than "
                        f"the {num} seeds compared")
    return imgs, feats


def _row_images(samples, seeds: str | None, num_samples: int, seed_sets: int):
    """(images, seed list) of a row: its samples file must hold exactly the seeds it
    sampled (`seeds`; default 0 .. seed_sets * num_samples - 1), at least that many."""
    from ..sampling import load_images
    from ..seeding import parse_seeds

    total = num_samples * seed_sets
    seed_list = parse_seeds(seeds) if seeds else list(range(total))
    if len(seed_list) != total:
        raise UserError(f"--seeds gives {len(seed_list)} seeds for {seed_sets} seed sets of {num_samples}")
    imgs = load_images(samples, total, seeds_expected=seed_list)
    if len(imgs) < total:
        raise UserError(f"{samples} holds {len(imgs)} images, fewer than {seed_sets} seed sets of {num_samples}")
    return imgs, seed_list


def evaluate_samples(samples, ref, extractor, out, *, num_samples: int, batch_size: int, row: dict,
                     seed_sets: int = 1, kid_subsets: int = 100, kid_subset_size: int = 1000, prdc_k: int = 5,
                     prdc_samples: int = 10000, noise_floor: bool = False, teacher_samples=None,
                     teacher_features=None, features_out=None, seeds: str | None = None, bias_from=None,
                     device="cpu", args: dict | None = None) -> dict:
    """Metrics of a samples file (or a trajectory cache's end points) per seed set (set k:
    seeds k*n .. (k+1)*n - 1), their mean and spread, written to `out` as JSON with the row's
    fields: FID at n and at infinite n, KID, PRDC; with the teacher's samples and features
    (the reference row's, same seeds), the same-seed agreement (pixel RMSE, feature distance)
    and the Frechet distance to the teacher's samples minus the teacher's own at the same n
    (set k against set k + 1). `noise_floor`: the metrics between the row's own seed sets.
    `features_out`: the features (npz). `seeds`: the seeds the row sampled (default 0 ..
    seed_sets * num_samples - 1), exactly the samples file's. `bias_from`: the row's metrics
    on its first seed sets, whose bias fit every set uses (more sets continue those values)."""
    from .distances import agreement, fid_bias

    for path in filter(None, (out, features_out)):
        check_writable(path)
    total = num_samples * seed_sets
    imgs, seed_list = _row_images(samples, seeds, num_samples, seed_sets)
    ref_mu, ref_sigma, ref_feats = load_reference(ref)
    whole, shape = _reference_facts(ref)
    _check_shape(samples, imgs, ref, shape)
    feats = compute_features(imgs, extractor, batch_size, device=device)
    sets = _sets(feats, num_samples, seed_sets)
    kw = dict(kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, prdc_k=prdc_k, prdc_samples=prdc_samples)
    radii = knn_radii(ref_feats[:prdc_samples], prdc_k) if ref_feats is not None else None
    per_set = []
    if teacher_samples:  # the reference sampler's images and features, split as this row's are
        t_imgs, t_feats = _teacher(teacher_samples, teacher_features, seed_list)
        img_sets, t_imgs, t_sets = (_sets(x, num_samples, seed_sets) for x in (imgs, t_imgs, t_feats))
    # each set's FID at infinite n: its FID at n minus the bias fitted on the pooled sets (its noise is the set's)
    fit = _bias_from(bias_from, row, num_samples) if bias_from else fid_bias(feats, num_samples, ref_mu, ref_sigma,
                                                                             ref_feats if whole else None)
    bias = fit["bias"]
    for k, f in enumerate(sets):
        m = set_metrics(f, ref_mu, ref_sigma, ref_feats, ref_radii=radii, **kw)
        m["fid_inf"] = m["fid"] - bias
        if teacher_samples:
            m.update(agreement(img_sets[k], t_imgs[k], f, t_sets[k]))
            if seed_sets > 1:
                j = (k + 1) % seed_sets
                m["fd_teacher"] = fid_between_features(f, t_sets[j]) - fid_between_features(t_sets[k], t_sets[j])
        per_set.append(m)
    result = {**row, **_merge_sets(per_set), "num_samples": num_samples, "seed_sets": seed_sets,
              "samples": str(samples), "reference_extrapolated": bool(whole), "fid_inf_pooled": fit["fid_inf_pooled"],
              "fid_bias_slope_n": fit["slope_n"], "fid_bias_slope_ref": fit["slope_ref"], "fid_bias_at_n": bias,
              "fid_bias_draws": fit["draws"]}
    if noise_floor and seed_sets > 1:
        pairs = [(a, b) for a in range(seed_sets) for b in range(a + 1, seed_sets)]
        result["noise_floor"] = _merge_sets([set_metrics(sets[a], *feature_stats(sets[b]), sets[b], **kw)
                                             for a, b in pairs])
    if features_out:
        _save_features(features_out, feats, total, args)
    write_json(out, result)
    write_meta(out, args or {}, None)
    print(f"{row.get('name', row.get('label'))}: FID {result['fid']:.3f}, at infinite n {result['fid_inf']:.3f}",
          file=sys.stderr)
    return result


def _bias_from(path, row: dict, num_samples: int) -> dict:
    """The bias fit of the same row's metrics file (its name and images per set must match)."""
    from ..files import read_json_object

    m = read_json_object(path, ("fid_bias_at_n", "fid_bias_draws", "num_samples"), "metrics file")
    if m.get("name") != row.get("name") or m["num_samples"] != num_samples:
        raise UserError(f"--bias-from {path}: row {m.get('name')!r} with {m['num_samples']} images per set, not "
                        f"{row.get('name')!r} with {num_samples}")
    return {"bias": m["fid_bias_at_n"], "draws": m["fid_bias_draws"], "fid_inf_pooled": m.get("fid_inf_pooled"),
            "slope_n": m.get("fid_bias_slope_n"), "slope_ref": m.get("fid_bias_slope_ref")}


def _save_features(path, feats, total: int, args) -> None:
    from ..provenance import write_meta

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, features=feats.astype(np.float32), seeds=np.arange(total))
    write_meta(path, args or {}, None)


def _check_shape(samples, imgs, ref, shape) -> None:
    """Samples and dataset (`shape`, from the reference file) must have one image size:
    nothing is resized on either side."""
    if shape and tuple(imgs.shape[1:]) != shape:
        got, want = ("x".join(map(str, s)) for s in (imgs.shape[1:], shape))
        raise UserError(f"{samples} holds {got} images but the dataset of {ref} holds {want} (channels x height x "
                        "width); nothing is resized: give the teacher's resolution to the dataset beforehand "
                        "(e.g. EDM's dataset_tool.py --resolution)")


def _reference_facts(ref) -> tuple[bool, tuple | None]:
    """Whether the reference file's features are the whole reference set its statistics
    come from (then FID at infinite n extrapolates the reference side too), and the
    dataset's image shape (None in files of older versions)."""
    with np.load(ref, allow_pickle=False) as z:
        whole = bool(z["whole"]) if "whole" in z.files else False
        shape = tuple(int(v) for v in z["image_shape"]) if "image_shape" in z.files else None
    return whole, shape


def reference_stats_to_file(images, extractor, out, floor_out, *, batch_size: int, floor_splits: int, seed: int,
                            reference_stats=None, ref_features: int = 10000, device="cpu",
                            args: dict | None = None) -> dict:
    """Reference statistics of the dataset, and the floor: real half vs real half.

    With `reference_stats` (clean-fid's precomputed Inception statistics of the CIFAR-10
    training set, the papers' protocol) those become the reference; the dataset's own
    features still give the floor and a check of our Inception path against them."""
    from ..data import float_to_uint8
    from ..atomic import check_writable
    from ..files import write_json
    from ..provenance import write_meta

    for path in (out, floor_out):
        check_writable(path)
    feats = compute_features(float_to_uint8(images).numpy(), extractor, batch_size, device=device)
    mu, sigma = feature_stats(feats)
    check = {}
    if reference_stats:
        mu, sigma = inception_reference_stats(stats_path=reference_stats)
        check = {"reference_stats": str(reference_stats),
                 "fid_dataset_vs_reference": fid_features_to_stats(feats, mu, sigma)}
    keep = torch.randperm(len(feats), generator=torch.Generator().manual_seed(seed))[:ref_features].sort().values
    whole = len(keep) == len(feats) and not reference_stats  # the statistics are of exactly these features
    with atomic_path(out) as tmp:  # the reference features KID, PRDC and FID at infinite n use (a seeded subset)
        with open(tmp, "wb") as f:
            np.savez(f, mu=mu, sigma=sigma, num=len(feats), features=feats[keep.numpy()].astype(np.float64 if whole
                     else np.float32), whole=np.array(whole), image_shape=np.array(images.shape[1:]))
    write_meta(out, args or {}, seed, **check)
    floors = []
    for split in range(floor_splits):
        perm = torch.randperm(len(feats), generator=torch.Generator().manual_seed(seed + split)).numpy()
        half = len(feats) // 2
        floors.append(fid_between_features(feats[perm[:half]], feats[perm[half:2 * half]]))
    write_json(floor_out, {"row": "floor", "label": f"floor: real half vs real half ({half} each)",
                           "fid": float(np.mean(floors)), "fid_splits": floors,
                           "fid_std": float(np.std(floors)), "num_samples": half})
    write_meta(floor_out, args or {}, seed)
    return check


def train_feature_net_to_file(images, labels, out, *, iters: int, batch_size: int, lr: float, seed: int,
                              device="cpu", progress: bool = True, args: dict | None = None) -> dict:
    """Train the FID feature classifier and write its checkpoint (+ metadata)."""
    import sys

    from ..atomic import check_writable
    from ..provenance import write_meta

    check_writable(out)
    if (torch.as_tensor(labels) < 0).all():
        raise UserError("this dataset has no labels, and the classifier features (eval.features: classifier) are "
                        "trained on labels: give class folders (root/<class>/*.png) or an npz with 'labels', or "
                        "set eval.features: inception (weights at eval.inception_weights)")
    t0 = time.perf_counter()
    model, info = train_feature_net(images, labels, iters=iters, batch_size=batch_size, lr=lr, seed=seed,
                                    progress=progress, device=device)
    save_feature_net(out, model, info)
    write_meta(out, args or {}, seed, wall_time=time.perf_counter() - t0, featnet=info)
    print(f"feature net: test accuracy {info['test_accuracy']:.4f}", file=sys.stderr)
    return info
