"""Metrics: FID through clean-fid, with a small trained feature net for toy data and Inception for
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
* **Nothing downloads here.** The Inception weights (``inception-2015-12-05.pt``, a
  TorchScript file) and clean-fid's reference statistics are read from the path given,
  or where clean-fid itself caches them (``/tmp`` -- ``./`` on Windows -- for the
  weights; ``<cleanfid>/stats/`` for statistics). Absent, the caller gets a one-line
  :class:`UserError` naming the file, its URL and where to put it; `diffdistill.fetch`
  (the workflow's fetch rules) is the one place that touches the network. clean-fid's
  own download helpers are never called.
* **Determinism.** The feature net is initialised under a forked, seeded torch RNG
  (the global RNG is left untouched) and minibatches and the train/test split come from
  a seeded ``torch.Generator``; CPU training is bit-reproducible for a seed.
* **Threads are the caller's business.** Nothing here calls ``torch.set_num_threads``.
  For these tiny nets one thread is about as fast as two, and on a busy 2-core machine
  two OpenMP threads can be 10x slower (spin-waiting), so callers should pin it.

The package: `featnet` (the feature classifier), `features` (extractors and batching),
`distances` (Frechet distance, FID at infinite n, KID, PRDC, same-seed agreement),
`inception` (clean-fid's network and statistics, from files) and `evaluate` (the
commands that write result files).
"""
from .distances import (agreement, feature_stats, fid_between_features, fid_features_to_stats, fid_infinity,
                        frechet_distance, kernel_distance, knn_radii, load_reference, load_stats,
                        pairwise_distances, prdc)
from .evaluate import (evaluate_samples, feature_extractor, fid_images_to_stats, reference_stats_to_file,
                       set_metrics, train_feature_net_to_file)
from .featnet import FEATNET_FORMAT, DigitsFeatureNet, load_feature_net, save_feature_net, train_feature_net
from .features import CLEANFID_INSTALL, cleanfid_module, compute_features, make_feature_extractor
from .inception import (INCEPTION_FILE, INCEPTION_MODES, INCEPTION_URL, STATS_BASE_URL, inception_cache_dir,
                        inception_extractor, inception_reference_stats, inception_weights_path, reference_stats_dir)

__all__ = ["CLEANFID_INSTALL", "DigitsFeatureNet", "FEATNET_FORMAT", "INCEPTION_FILE", "INCEPTION_MODES",
           "INCEPTION_URL", "STATS_BASE_URL", "agreement", "cleanfid_module", "compute_features", "evaluate_samples",
           "feature_extractor", "feature_stats", "fid_between_features", "fid_features_to_stats",
           "fid_images_to_stats", "fid_infinity", "frechet_distance", "inception_cache_dir", "inception_extractor",
           "inception_reference_stats", "inception_weights_path", "kernel_distance", "knn_radii", "load_feature_net",
           "load_reference", "load_stats", "make_feature_extractor", "pairwise_distances", "prdc",
           "reference_stats_dir", "reference_stats_to_file", "save_feature_net", "set_metrics", "train_feature_net",
           "train_feature_net_to_file"]
