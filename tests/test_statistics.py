"""The evaluation's statistics: FID at infinite n, paired comparisons, agreement with the
teacher (the claims' rules: tests/test_claims.py)."""
import math

import numpy as np
import pytest

from diffdistill import stats
from diffdistill.metrics import agreement, fid_infinity, frechet_distance


def _gaussians(d=8):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(d, d))
    cov1 = a @ a.T / d + np.eye(d) * 0.5
    b = rng.normal(size=(d, d))
    cov2 = b @ b.T / d + np.eye(d) * 0.5
    return np.zeros(d), cov1, np.full(d, 0.3), cov2


def test_fid_at_infinite_n_recovers_the_analytic_frechet_distance():
    """Gaussian features of known moments: the analytic distance is known; FID at n is
    biased upwards by far more than its spread, the extrapolation is not. The tolerance
    is three standard errors of the mean over the replicates, from their own spread."""
    mu1, c1, mu2, c2 = _gaussians(32)
    true = frechet_distance(mu1, c1, mu2, c2)
    rng = np.random.default_rng(1)
    at_n, inf = [], []
    for rep in range(12):
        f = rng.multivariate_normal(mu1, c1, 300)
        ref = rng.multivariate_normal(mu2, c2, 500)
        at_n.append(frechet_distance(f.mean(0), np.cov(f, rowvar=False), ref.mean(0), np.cov(ref, rowvar=False)))
        inf.append(fid_infinity(f, ref.mean(0), np.cov(ref, rowvar=False), ref_feats=ref, seed=rep)["fid_inf"])
    se = np.std(inf, ddof=1) / math.sqrt(len(inf))
    assert abs(np.mean(inf) - true) < 3 * se + 1e-3, (np.mean(inf), true, se)
    se_n = np.std(at_n, ddof=1) / math.sqrt(len(at_n))
    assert np.mean(at_n) - true > 5 * se_n + 3 * se  # the bias the extrapolation removes


def test_per_set_fid_at_infinite_n_is_unbiased_with_subsets_near_the_feature_dimension():
    """64-d Gaussian features as the digits run has them (5 seed sets of 300 samples, a
    reference of 1797): each set's FID at n minus the bias of `fid_bias` (the per-set
    values the tables use) averages to the analytic distance within three standard
    errors of the replicates. Fits pooling subsets down to m = 75 (about D) came out
    1.6 too low here: below about 4.5 D the bias falls faster than 1/m."""
    from diffdistill.metrics.distances import feature_stats, fid_bias, fid_features_to_stats

    d, rng = 64, np.random.default_rng(0)
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    c1 = 4 * (a @ a.T / d + 0.5 * np.eye(d))
    c2 = 4 * (0.5 * (a @ a.T + b @ b.T) / d + 0.5 * np.eye(d))
    mu1, mu2 = np.zeros(d), np.full(d, 0.15)
    true = frechet_distance(mu1, c1, mu2, c2)
    l1, l2 = np.linalg.cholesky(c1), np.linalg.cholesky(c2)
    est = []
    for _ in range(10):
        f = mu1 + rng.standard_normal((1500, d)) @ l1.T
        ref = mu2 + rng.standard_normal((1797, d)) @ l2.T
        mu, sigma = feature_stats(ref)
        bias = fid_bias(f, 300, mu, sigma, ref, draws=4)["bias"]
        est.append(np.mean([fid_features_to_stats(f[k * 300:(k + 1) * 300], mu, sigma) - bias for k in range(5)]))
    se = np.std(est, ddof=1) / math.sqrt(len(est))
    assert abs(np.mean(est) - true) < 3 * se, (np.mean(est), true, se)
    assert se < 0.5


def test_the_fits_own_noise_enters_a_paired_comparison():
    """Two rows whose per-set values differ by a constant but whose bias fits scatter: the
    fits' spread (per-draw differences, common random numbers) is in the standard error,
    with Welch-Satterthwaite degrees of freedom; rows without fit draws keep the plain
    paired test."""
    sets_a = [10.0, 11.0, 12.5, 9.0, 10.5]
    sets_b = [x - 1.0 + e for x, e in zip(sets_a, [0.1, -0.1, 0.05, -0.05, 0.0])]
    draws_b = [40.0, 41.0, 39.0, 40.5, 39.5, 40.0]
    draws_a = [x + e for x, e in zip(draws_b, [1.0, -1.0, 0.5, -0.5, 0.0, 0.0])]
    a = {"fid_inf": float(np.mean(sets_a)), "fid_inf_sets": sets_a, "fid_bias_draws": draws_a}
    b = {"fid_inf": float(np.mean(sets_b)), "fid_inf_sets": sets_b, "fid_bias_draws": draws_b}
    plain = stats.paired(sets_a, sets_b)
    with_fit = stats.paired_rows(a, b)
    fit_var = np.var(np.subtract(draws_a, draws_b), ddof=1) / 6
    assert with_fit["diff"] == pytest.approx(plain["diff"])
    assert with_fit["se"] == pytest.approx(math.sqrt(plain["se"] ** 2 + fit_var))
    assert with_fit["fit_se"] == pytest.approx(math.sqrt(fit_var)) and with_fit["df"] > plain["df"]
    bare = stats.paired_rows({k: v for k, v in a.items() if k != "fid_bias_draws"}, b)
    assert bare["se"] == pytest.approx(plain["se"]) and bare["fit_se"] == 0.0


def test_no_ratio_of_a_negative_fid_at_infinite_n():
    """A negative extrapolated FID on either side gives no ratio (NaN), so a rule reading
    it can never call it a pass; positive sides keep theirs."""
    assert all(x != x for x in stats.ratio([-0.5, 0.2, -0.1], [7.0, 7.5, 6.8]))
    assert all(x != x for x in stats.ratio([7.0, 7.5, 6.8], [-0.5, 0.2, -0.1]))
    assert stats.at_most(*[stats.ratio([-1.0, -2.0], [5.0, 5.0])[0]] * 2, 4, 1.5) != "holds"
    assert stats.ratio([2.0, 2.2, 1.8], [1.0, 1.1, 0.9])[0] == pytest.approx(2.0)


def test_paired_test_finds_a_shift_the_unpaired_rule_misses():
    """Correlated rows (shared seed-set noise, sd 1) differing by 0.5: the per-set
    differences find it; the old unpaired rule (|diff| > 2 sqrt(s1^2 + s2^2) / sqrt(K))
    does not."""
    rng = np.random.default_rng(2)
    common = rng.normal(0, 1.0, 5)
    a = 10 + common + rng.normal(0, 0.05, 5)
    b = 10.5 + common + rng.normal(0, 0.05, 5)
    s = stats.paired(b, a)
    assert stats.significant(s) and s["diff"] > 0
    unpaired = 2 * math.sqrt(np.var(a, ddof=1) + np.var(b, ddof=1)) / math.sqrt(5)
    assert abs(b.mean() - a.mean()) < unpaired


def test_paired_test_keeps_its_false_positive_rate():
    """Two draws of one distribution: significant at the stated 5 % rate (binomial bound)."""
    rng = np.random.default_rng(3)
    hits = 0
    trials = 2000
    for _ in range(trials):
        common = rng.normal(0, 1.0, 5)
        hits += stats.significant(stats.paired(common + rng.normal(0, 0.2, 5), common + rng.normal(0, 0.2, 5)))
    rate = hits / trials
    assert abs(rate - 0.05) < 3 * math.sqrt(0.05 * 0.95 / trials), rate


def test_training_seed_spread_widens_the_interval():
    a, b = [10.0, 10.2, 10.1], [9.0, 9.1, 9.2]
    plain, trained = stats.paired(a, b), stats.paired(a, b, train_sd=0.5, train_seeds=3)
    assert trained["se"] > plain["se"] and trained["df"] < 10


def test_equivalence_and_bounds():
    assert stats.equivalent(stats.paired([1.0, 1.1, 0.9, 1.0], [1.0, 1.0, 1.0, 1.05]), 0.5) == "holds"
    assert stats.equivalent(stats.paired([3.0, 3.1, 2.9, 3.0], [1.0, 1.0, 1.0, 1.05]), 0.5) == "does not hold"
    assert stats.at_most(1.29, 0.0, math.inf, 1.5) == "holds" and stats.at_most(2.0, 0.0, math.inf, 1.5) == \
        "does not hold"


def test_the_teacher_against_itself_agrees_exactly():
    rng = np.random.default_rng(4)
    imgs = rng.integers(0, 256, (20, 1, 8, 8), dtype=np.uint8)
    feats = rng.normal(size=(20, 16))
    a = agreement(imgs, imgs, feats, feats)
    assert a["rmse"] == 0 and a["feature_distance"] == 0
    assert a["rmse_unrelated"] > 0.3 and a["feature_distance_unrelated"] > 1


def test_metrics_commands_end_to_end(tmp_path):
    """The feature net, the reference statistics and a row's metrics against the teacher's
    samples, as the workflow chains them (tiny sizes)."""
    import json

    from diffdistill.metrics import (evaluate_samples, feature_extractor, reference_stats_to_file,
                                     train_feature_net_to_file)

    from diffdistill.data import load_dataset
    from diffdistill.errors import UserError

    images, labels = load_dataset("digits")
    train_feature_net_to_file(images, labels, tmp_path / "featnet.pt", iters=5, batch_size=32, lr=1e-3, seed=0,
                              progress=False)
    ext = feature_extractor("classifier", tmp_path / "featnet.pt")
    reference_stats_to_file(images, ext, tmp_path / "ref.npz", tmp_path / "floor.json", batch_size=500,
                            floor_splits=2, seed=0)
    rng = np.random.default_rng(0)
    teacher = rng.integers(0, 256, (60, 1, 8, 8), dtype=np.uint8)
    student = np.clip(teacher.astype(int) + rng.integers(-20, 20, teacher.shape), 0, 255).astype(np.uint8)
    for name, imgs in (("teacher", teacher), ("student", student)):
        np.savez(tmp_path / f"{name}.npz", images=imgs, seeds=np.arange(60))
    kw = dict(num_samples=30, batch_size=30, seed_sets=2, kid_subsets=5, kid_subset_size=20, prdc_samples=200)
    evaluate_samples(tmp_path / "teacher.npz", tmp_path / "ref.npz", ext, tmp_path / "t.json", row={"name": "t"},
                     features_out=tmp_path / "tf.npz", noise_floor=True, **kw)
    r = evaluate_samples(tmp_path / "student.npz", tmp_path / "ref.npz", ext, tmp_path / "s.json",
                         row={"name": "s"}, teacher_samples=tmp_path / "teacher.npz",
                         teacher_features=tmp_path / "tf.npz", **kw)
    assert json.loads((tmp_path / "s.json").read_text())["fid_inf_sets"] == r["fid_inf_sets"]
    assert 0 < r["rmse"] < r["rmse_unrelated"] and len(r["fd_teacher_sets"]) == 2
    assert (tmp_path / "ref.npz.meta.json").exists() and (tmp_path / "featnet.pt.meta.json").exists()
    with np.load(tmp_path / "ref.npz") as z:
        assert bool(z["whole"]) and len(z["features"]) == len(images)
    np.savez(tmp_path / "other.npz", images=student, seeds=np.arange(100, 160))  # sampled with other seeds
    with pytest.raises(UserError, match="holds seeds 100-159, not the 0-59"):
        evaluate_samples(tmp_path / "other.npz", tmp_path / "ref.npz", ext, tmp_path / "o.json", row={"name": "o"},
                         **kw)
    assert not (tmp_path / "o.json").exists()
    # more seed sets continue the first sets' fit (the claims plan's): their values are the first ones, exactly
    more = np.concatenate([student, np.clip(student.astype(int) + 7, 0, 255).astype(np.uint8)])
    np.savez(tmp_path / "more.npz", images=more, seeds=np.arange(120))
    m = evaluate_samples(tmp_path / "more.npz", tmp_path / "ref.npz", ext, tmp_path / "m.json", row={"name": "s"},
                         bias_from=tmp_path / "s.json", **{**kw, "seed_sets": 4})
    assert m["fid_inf_sets"][:2] == r["fid_inf_sets"] and len(m["fid_inf_sets"]) == 4
    assert m["fid_bias_draws"] == r["fid_bias_draws"]
    with pytest.raises(UserError, match="row 's' with 30 images per set, not 't'"):
        evaluate_samples(tmp_path / "more.npz", tmp_path / "ref.npz", ext, tmp_path / "x.json", row={"name": "t"},
                         bias_from=tmp_path / "s.json", **{**kw, "seed_sets": 4})


def test_comparing_over_training_seeds_keeps_its_false_positive_rate():
    """Two methods of equal quality, each trained with 3 seeds (training noise sd 1) and
    evaluated on 5 shared seed sets: paired_over_seeds calls them different at most at its
    5 % rate, where pairing the seed means alone (training noise left out) would not."""
    rng = np.random.default_rng(5)
    hits = naive = 0
    trials = 1000
    for _ in range(trials):
        common = rng.normal(0, 1.0, 5)
        a = [10 + rng.normal() + common + rng.normal(0, 0.2, 5) for _ in range(3)]
        b = [10 + rng.normal() + common + rng.normal(0, 0.2, 5) for _ in range(3)]
        s = stats.paired_over_seeds(a, b)
        hits += stats.significant(s)
        naive += stats.significant(stats.paired(np.mean(a, 0), np.mean(b, 0)))
    assert hits / trials <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / trials) and naive / trials > 0.2
    one = stats.paired_over_seeds([[1.0, 2.0, 3.0]], [[0.5, 1.0, 2.5]])
    assert one["diff"] == stats.paired([1.0, 2.0, 3.0], [0.5, 1.0, 2.5])["diff"] and one["train_seeds"] == 1
