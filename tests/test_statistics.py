"""The evaluation's statistics: FID at infinite n, paired comparisons, agreement with the
teacher, and the claims' rules on the papers' own numbers."""
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


@pytest.mark.parametrize("claim", [c for c in __import__("diffdistill.claims", fromlist=["CLAIMS"]).CLAIMS
                                   if c.paper is not None], ids=lambda c: c.claim)
def test_every_rule_holds_on_the_papers_own_numbers(claim):
    assert claim.decide(claim.paper) == "holds", claim.claim


def test_claims_without_measurements_say_so():
    from diffdistill.claims import claims

    df = claims([])
    assert set(df["verdict"]) == {"not measured"}


def test_claims_read_the_rows_of_the_extended_tables():
    """PD's chain lives in results/extended: its claim is measured from those rows."""
    from diffdistill.claims import claims

    def row(nfe, kind, shift):
        return {"name": f"pd/{kind}/{nfe}", "label": "PD", "family": "pd", "kind": kind, "nfe": nfe,
                "tables": ["extended"], "fid_inf": 10 + shift, "fid_inf_sets": [10 + shift + d for d in (0, .5, -.5)]}

    records = [row(8, "baseline", 0.0), row(4, "distilled", 1.0), row(2, "distilled", 2.5)]
    got = claims(records).set_index("claim").loc["PD halves the steps down to 4 with little loss"]
    assert "8->4 steps" in got["ours"] and "4->2 steps" in got["ours"] and got["verdict"] != "not measured", got


def test_metrics_commands_end_to_end(tmp_path):
    """The feature net, the reference statistics and a row's metrics against the teacher's
    samples, as the workflow chains them (tiny sizes)."""
    import json

    from diffdistill.metrics import (evaluate_samples, feature_extractor, reference_stats_to_file,
                                     train_feature_net_to_file)

    from diffdistill.data import load_dataset
    from diffdistill.io import UserError

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
