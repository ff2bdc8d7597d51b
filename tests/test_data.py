"""A researcher's own images: the folder loader (class folders, flat, EDM's dataset_tool
folder and .zip), the npz loader with and without labels, refusals in one line, and the
feature classifier at other image sizes."""
import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from diffdistill.data import class_names, load_dataset
from diffdistill.errors import UserError


def _png(path, rgb, value=0, size=4, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if rgb else (size, size)
    Image.fromarray(np.full(shape, value, np.uint8), mode=mode).save(path)


def test_class_folders_are_labels_in_sorted_order(tmp_path):
    for cls, n in (("zebra", 2), ("ant", 3)):
        for i in range(n):
            _png(tmp_path / cls / f"{i}.png", rgb=True, value=10 * i + (100 if cls == "zebra" else 0))
    images, labels = load_dataset("folder", str(tmp_path))
    assert images.shape == (5, 3, 4, 4) and images.dtype == torch.float32
    assert labels.tolist() == [0, 0, 0, 1, 1]  # ant, then zebra
    assert class_names(tmp_path) == ["ant", "zebra"]
    # uint8 v -> v / 127.5 - 1
    assert torch.allclose(images[3, :, 0, 0], torch.full((3,), 100 / 127.5 - 1))


def test_flat_folder_is_unlabelled_grey(tmp_path):
    for i in range(3):
        _png(tmp_path / f"{i}.png", rgb=False, value=i)
    images, labels = load_dataset("folder", str(tmp_path))
    assert images.shape == (3, 1, 4, 4) and labels.tolist() == [-1, -1, -1]


@pytest.mark.parametrize("as_zip", [False, True])
def test_edm_dataset_tool_layout(tmp_path, as_zip):
    """EDM's dataset_tool writes 00000/img00000000.png ... and dataset.json: its labels
    (null: unconditional), not the 00000/ folders, say the classes."""
    root = tmp_path / "ds"
    names = [f"00000/img{i:08d}.png" for i in range(4)]
    for i, n in enumerate(names):
        _png(root / n, rgb=True, value=i)
    for labels, want in ((None, [-1] * 4), ([[n, i % 2] for i, n in enumerate(names)], [0, 1, 0, 1])):
        (root / "dataset.json").write_text(json.dumps({"labels": labels}))
        path = root
        if as_zip:
            path = tmp_path / "ds.zip"
            with zipfile.ZipFile(path, "w") as z:
                for f in sorted(root.rglob("*")):
                    if f.is_file():
                        z.write(f, str(f.relative_to(root)))
        images, got = load_dataset("folder", str(path))
        assert images.shape == (4, 3, 4, 4) and got.tolist() == want


def test_npz_with_and_without_labels(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)  # [N, H, W, C]
    np.savez(tmp_path / "a.npz", images=imgs, labels=np.arange(6) % 3)
    images, labels = load_dataset("npz", str(tmp_path / "a.npz"))
    assert images.shape == (6, 3, 8, 8) and labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert torch.allclose(images[:, 1], torch.as_tensor(imgs[..., 1] / 127.5 - 1, dtype=torch.float32), atol=1e-6)
    np.savez(tmp_path / "b.npz", images=imgs)
    assert load_dataset("npz", str(tmp_path / "b.npz"))[1].tolist() == [-1] * 6


@pytest.mark.parametrize("case, match", [
    ("mixed", "not both or deeper"),
    ("sizes", "images differ in size"),
    ("alpha", "alpha channel"),
    ("one_class", "one class folder"),
    ("not_png", "not a readable PNG"),
    ("empty", r"no \*\.png files"),
    ("npz_labels", "'labels' must be 6 integers"),
    ("npz_float", "expected uint8 images"),
])
def test_bad_datasets_are_one_line(tmp_path, case, match):
    path = tmp_path / "d"
    path.mkdir()
    if case == "mixed":
        _png(path / "a.png", rgb=True)
        _png(path / "c" / "b.png", rgb=True)
    elif case == "sizes":
        _png(path / "a.png", rgb=True, size=4)
        _png(path / "b.png", rgb=True, size=8)
    elif case == "alpha":
        Image.fromarray(np.zeros((4, 4, 4), np.uint8), mode="RGBA").save(path / "a.png")
    elif case == "one_class":
        _png(path / "only" / "a.png", rgb=True)
    elif case == "not_png":
        (path / "a.png").write_bytes(b"not a png")
    elif case.startswith("npz"):
        imgs = np.zeros((6, 4, 4, 3), np.float32 if case == "npz_float" else np.uint8)
        path = tmp_path / "d.npz"
        np.savez(path, images=imgs, labels=np.zeros((6, 2), np.int64))
    with pytest.raises(UserError, match=match) as e:
        load_dataset("npz" if case.startswith("npz") else "folder", str(path))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("channels, res, downsamplings", [(1, 8, 1), (3, 16, 2), (3, 32, 3), (3, 64, 4)])
def test_feature_net_depth_follows_image_size(channels, res, downsamplings):
    from diffdistill.metrics.featnet import DigitsFeatureNet

    net = DigitsFeatureNet(img_channels=channels, img_resolution=res)
    strided = [m for m in net.body if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == downsamplings
    assert net(torch.zeros(2, channels, res, res)).shape == (2, 10)
    with pytest.raises(UserError, match=f"trained on {channels}x{res}x{res} images"):
        net.features(torch.zeros(2, channels, res * 2, res * 2))


def test_samples_of_another_size_than_the_dataset_are_refused(tmp_path):
    from diffdistill.metrics.evaluate import _check_shape

    ref = tmp_path / "ref.npz"
    np.savez(ref, mu=np.zeros(2), sigma=np.eye(2), image_shape=np.array([3, 32, 32]))
    from diffdistill.metrics.evaluate import _reference_facts

    shape = _reference_facts(ref)[1]
    _check_shape("s.npz", np.zeros((2, 3, 32, 32), np.uint8), ref, shape)
    with pytest.raises(UserError, match="s.npz holds 3x64x64 images but the dataset of .* holds 3x32x32"):
        _check_shape("s.npz", np.zeros((2, 3, 64, 64), np.uint8), ref, shape)
