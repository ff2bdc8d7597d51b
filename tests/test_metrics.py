"""FID glue: torchvision stand-in, Frechet distance, digits feature net, offline errors."""
import sys

import numpy as np
import pytest
import torch

import diffdistill.compat as compat
from conftest import assert_close_f32
from diffdistill import metrics
from diffdistill.metrics import inception
from diffdistill.data import float_to_uint8, load_dataset
from diffdistill.errors import UserError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained(digits):
    x, y = digits
    return metrics.train_feature_net(x, y, iters=100, batch_size=128, lr=3e-3, seed=0,
                                     augment=False, progress=False)


def test_cleanfid_imports_with_stand_in():
    import cleanfid.features  # noqa: F401
    import cleanfid.fid

    assert callable(cleanfid.fid.frechet_distance)
    tv = sys.modules["torchvision"]
    if not compat.is_stub(tv):
        pytest.skip("a real torchvision is installed")
    assert compat.TORCHVISION_STUBBED
    with pytest.raises(compat.TorchvisionUnavailable, match="torchvision"):
        tv.transforms.ToTensor()
    with pytest.raises(compat.TorchvisionUnavailable):
        cleanfid.features.build_feature_extractor("legacy_pytorch", device=torch.device("cpu"))
    with pytest.raises(ImportError):  # other submodules stay absent, as probes expect
        from torchvision.ops import roi_align  # noqa: F401
    assert not hasattr(tv, "ops")


def test_frechet_distance_zero_for_same_and_positive_for_shifted():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((2000, 16)) @ rng.standard_normal((16, 16))
    assert abs(metrics.fid_between_features(f, f)) < 1e-6
    mu, sigma = metrics.feature_stats(f)
    assert mu.dtype == np.float64 and sigma.shape == (16, 16)
    assert abs(metrics.frechet_distance(mu, sigma, mu, sigma)) < 1e-6
    shifted = metrics.fid_between_features(f, f + 0.5)
    assert shifted == pytest.approx(16 * 0.25, rel=1e-6)
    with pytest.raises(UserError):
        metrics.fid_between_features(f, f[:, :8])


def test_fid_with_fewer_samples_than_dimensions_matches_cleanfids_sqrtm():
    """N <= D: the N x N eigenvalue route equals clean-fid's D x D sqrtm (to its rounding)."""
    rng = np.random.default_rng(1)
    mix = rng.standard_normal((256, 256)) / 16
    f = rng.standard_normal((60, 256)) @ mix + 0.3
    ref = rng.standard_normal((400, 256)) @ mix
    mu, sigma = metrics.feature_stats(ref)
    ours = metrics.fid_features_to_stats(f, mu, sigma)
    theirs = metrics.frechet_distance(*metrics.feature_stats(f), mu, sigma)
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert metrics.fid_features_to_stats(f, *metrics.feature_stats(f)) == pytest.approx(0, abs=1e-6)
    assert metrics.fid_features_to_stats(ref[:300], mu, sigma) > 0
    with pytest.raises(UserError):
        metrics.fid_features_to_stats(f[:, :8], mu, sigma)


def test_feature_net_learns_digits(trained):
    model, info = trained
    assert info["test_accuracy"] > 0.9, info
    assert info["n_test"] == round(1797 * 0.2)
    assert isinstance(model, metrics.DigitsFeatureNet) and not model.training


def test_feature_net_training_is_deterministic(digits):
    x, y = digits
    kw = dict(iters=5, batch_size=32, lr=3e-3, seed=3, progress=False)
    state = torch.get_rng_state()
    (m1, _), (m2, _) = (metrics.train_feature_net(x, y, **kw) for _ in range(2))
    assert torch.equal(state, torch.get_rng_state())  # global RNG untouched
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)


def test_compute_features_shape_and_determinism(digits, trained):
    x, _ = digits
    model, _ = trained
    images = float_to_uint8(x).numpy()
    ext = metrics.make_feature_extractor(model)
    f1 = metrics.compute_features(images, ext, batch_size=500)
    f2 = metrics.compute_features(images, ext, batch_size=256)
    assert f1.shape == (len(images), 64) and f1.dtype == np.float64
    assert_close_f32(f1, f2)  # batching does not matter beyond float32 rounding
    np.testing.assert_array_equal(f1, metrics.compute_features(images, ext, batch_size=500))
    # the extractor takes 0..255 and the net sees the dataset's [-1, 1] range
    with torch.no_grad():
        direct = model.features(torch.from_numpy(images[:10]).float() / 127.5 - 1).double().numpy()
    assert_close_f32(f1[:10], direct)
    assert abs(metrics.fid_between_features(f1, f1)) < 1e-6
    with pytest.raises(UserError, match="uint8"):
        metrics.compute_features(x.numpy(), ext)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No cached files (and nothing here downloads: only diffdistill.fetch touches the network)."""
    monkeypatch.setattr(inception, "inception_cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(inception, "reference_stats_dir", lambda: tmp_path / "stats")
    return tmp_path


def _one_line(e):
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_inception_missing_is_one_line_naming_what_to_fetch(offline):
    with pytest.raises(UserError) as e:
        metrics.inception_extractor()
    msg = _one_line(e)
    assert "inception-2015-12-05.pt" in msg and metrics.INCEPTION_URL in msg
    assert str(offline / "cache" / "inception-2015-12-05.pt") in msg
    assert "eval.inception_weights" in msg
    with pytest.raises(UserError, match="not found"):
        metrics.inception_extractor(weights_path=offline / "nope.pt")


def test_the_metrics_package_never_touches_the_network():
    import ast
    from pathlib import Path as P

    for f in P(metrics.__file__).parent.glob("*.py"):
        names = {n.names[0].name if isinstance(n, ast.Import) else n.module
                 for n in ast.walk(ast.parse(f.read_text())) if isinstance(n, (ast.Import, ast.ImportFrom))}
        assert not names & {"urllib.request", "socket", "requests", "urllib"}, (f, names)


def test_reference_stats_missing_is_one_line(offline):
    with pytest.raises(UserError) as e:
        metrics.inception_reference_stats("cifar10", mode="legacy_tensorflow", split="train", res=32)
    msg = _one_line(e)
    assert "cifar10_legacy_tensorflow_train_32.npz" in msg
    assert "https://www.cs.cmu.edu/~clean-fid/stats/cifar10_legacy_tensorflow_train_32.npz" in msg
    assert str(offline / "stats" / "cifar10_legacy_tensorflow_train_32.npz") in msg


def test_reference_stats_from_explicit_file(tmp_path):
    p = tmp_path / "s.npz"
    np.savez(p, mu=np.zeros(3, np.float32), sigma=np.eye(3, dtype=np.float32))
    mu, sigma = metrics.inception_reference_stats(stats_path=p)
    assert mu.dtype == np.float64 and sigma.shape == (3, 3)


class _FakeLayers(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3)).repeat(1, 683)[:, :2048]


class _FakeInception(torch.nn.Module):
    """Stands in for the TorchScript Inception: same interface, trivial features."""

    def __init__(self):
        super().__init__()
        self.layers = _FakeLayers()

    def forward(self, x, return_features: bool = False):
        return self.layers((x - 128) / 128)  # the real one also resizes to 299 here


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("mode", ["legacy_tensorflow", "clean"])
def test_inception_extractor_from_explicit_file(tmp_path, digits, mode):
    path = tmp_path / "fake-inception.pt"
    torch.jit.save(torch.jit.script(_FakeInception()), str(path))
    ext = metrics.inception_extractor(mode=mode, weights_path=path)
    images = float_to_uint8(digits[0][:6]).numpy()  # grey 8x8 -> 3 channels inside
    feats = metrics.compute_features(images, ext, batch_size=4)
    assert feats.shape == (6, 2048) and feats.dtype == np.float64
    # 0..255 is normalised to [-1, 1] in the network; 'clean' resizes to 299 first
    expect = (images.reshape(6, -1).mean(1) - 128) / 128
    tol = 1e-5 if mode == "legacy_tensorflow" else 2e-2
    np.testing.assert_allclose(feats[:, 0], expect, atol=tol)


def test_unsupported_mode():
    with pytest.raises(UserError, match="legacy_pytorch"):
        metrics.inception_extractor(mode="legacy_pytorch")


def test_save_load_round_trip(trained, digits, tmp_path):
    model, info = trained
    path = tmp_path / "featnet.pt"
    metrics.save_feature_net(path, model, info)
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) == {"format", "kwargs", "state_dict", "info"}
    loaded, info2 = metrics.load_feature_net(path)
    assert info2 == info and loaded.kwargs == model.kwargs
    x = digits[0][:50]
    with torch.no_grad():
        assert torch.equal(loaded.features(x), model.features(x))
    bad = tmp_path / "bad.pt"
    torch.save({"weights": 1}, bad)
    with pytest.raises(UserError, match="not a feature-net checkpoint"):
        metrics.load_feature_net(bad)
