"""KID and precision/recall/density/coverage beside FID; disjoint seed sets; the ADM
npz layout of the samples file."""
import numpy as np
import pytest
import yaml

from conftest import ROOT
from diffdistill.metrics import kernel_distance, prdc


def _gauss(n, d=16, shift=0.0, seed=0):
    return np.random.default_rng(seed).normal(shift, 1.0, (n, d))


def test_kid_of_two_draws_of_one_gaussian_is_zero_within_its_spread():
    kid, subset_std = kernel_distance(_gauss(800, seed=1), _gauss(800, seed=2), num_subsets=50, max_subset_size=400)
    # the mean over 50 subsets: its spread is at most the per-subset spread
    assert abs(kid) < 3 * subset_std, (kid, subset_std)


def test_kid_sees_a_shifted_mean():
    kid, subset_std = kernel_distance(_gauss(800, seed=1), _gauss(800, shift=0.5, seed=2), num_subsets=50,
                                      max_subset_size=400)
    assert kid > 10 * subset_std > 0


def test_kid_agrees_with_clean_fid_on_the_same_subsets():
    from diffdistill.metrics import cleanfid_module

    a, b = _gauss(300, seed=3), _gauss(250, shift=0.2, seed=4)
    np.random.seed(7)  # clean-fid draws its subsets from numpy's global RNG
    theirs = cleanfid_module("fid").kernel_distance(a, b, num_subsets=20, max_subset_size=100)
    ours, _ = kernel_distance(a, b, num_subsets=20, max_subset_size=100, seed=7)
    assert ours == pytest.approx(theirs, rel=1e-9)  # the same subsets; block sums of one kernel matrix


def test_prdc_limits_and_agreement_with_the_prdc_package():
    a = _gauss(200, seed=5)
    same = prdc(a, a, k=5)
    assert same["precision"] == same["recall"] == 1.0 and same["coverage"] == 1.0
    far = prdc(a, _gauss(200, shift=100.0, seed=6), k=5)
    assert far["precision"] == far["recall"] == far["density"] == far["coverage"] == 0.0
    from prdc import compute_prdc
    real, fake = _gauss(300, seed=8), _gauss(250, shift=0.3, seed=9)
    theirs = compute_prdc(real, fake, nearest_k=5)
    ours = prdc(real, fake, k=5)
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(float(theirs[key]), abs=1e-12), key


def test_seed_sets_are_disjoint_from_each_other_and_from_the_trajectory_pool():
    from diffdistill.config import validate
    from diffdistill.errors import UserError
    from diffdistill.rows import Row
    from diffdistill.seeding import parse_seeds

    cfg = validate(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    n, sets = cfg["eval"]["num_samples"], cfg["eval"]["seed_sets"]
    evaluated = parse_seeds(Row("r", "r", 2, "f", model="m.pt").seeds(n, sets))
    chunks = [set(evaluated[k * n:(k + 1) * n]) for k in range(sets)]
    assert all(len(c) == n for c in chunks) and len(set().union(*chunks)) == n * sets
    pool = set(range(cfg["trajectories"]["seed_start"], cfg["trajectories"]["seed_start"] + cfg["trajectories"]["num"]))
    assert not pool & set(evaluated)
    with pytest.raises(UserError, match="trajectories.seed_start"):
        validate({**cfg, "trajectories": {**cfg["trajectories"], "seed_start": n * sets - 1}})


def test_samples_npz_also_holds_the_adm_layout(tmp_path):
    from diffdistill.sampling import load_images, save_samples

    imgs = np.random.default_rng(0).integers(0, 255, (5, 3, 4, 4), dtype=np.uint8)
    save_samples(tmp_path / "s.npz", imgs, list(range(5)))
    with np.load(tmp_path / "s.npz") as z:
        assert z["arr_0"].shape == (5, 4, 4, 3) and z["arr_0"].dtype == np.uint8
        assert np.array_equal(z["arr_0"].transpose(0, 3, 1, 2), imgs)
    assert np.array_equal(load_images(tmp_path / "s.npz"), imgs)
