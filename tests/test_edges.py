"""Careless and hostile input at the boundaries: datasets, the config's cross-checks, the
DVC stage guard and output folders. Each case is one clear refusal naming the file or
key (never a traceback, a truncated label or a silently skipped class)."""
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from diffdistill.data import load_dataset
from diffdistill.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def _png(path, w=8, h=8, grey=True):
    from PIL import Image

    Image.fromarray(np.zeros((h, w), np.uint8) if grey else np.zeros((h, w, 3), np.uint8)).save(path)


def test_npz_with_four_channels_is_refused(tmp_path):
    np.savez(tmp_path / "rgba.npz", images=np.zeros((10, 16, 16, 4), np.uint8))
    with pytest.raises(UserError, match="1 \\(grey\\) or 3 \\(RGB\\) channels"):
        load_dataset("npz", str(tmp_path / "rgba.npz"))


@pytest.mark.parametrize("case", ["object", "no-images", "cut", "empty", "huge-label"])
def test_npz_that_cannot_be_read_plainly_is_one_line(tmp_path, case):
    p = tmp_path / f"{case}.npz"
    imgs = np.zeros((10, 8, 8), np.uint8)
    if case == "object":
        np.savez(p, images=np.array([imgs[0], None], dtype=object))
    elif case == "no-images":
        np.savez(p, pictures=imgs)
    elif case == "cut":
        np.savez(p, images=imgs)
        p.write_bytes(p.read_bytes()[:100])
    elif case == "empty":
        np.savez(p, images=np.zeros((0, 8, 8), np.uint8))
    else:
        np.savez(p, images=imgs, labels=np.array([0] * 9 + [10 ** 12]))
    with pytest.raises(UserError) as e:
        load_dataset("npz", str(p))
    assert str(p) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("labels, match", [
    ([["a.png", 1.7], ["b.png", 0]], "integer class indices; a.png has 1.7"),
    ([["a.png", "cat"], ["b.png", "dog"]], "integer class indices; a.png has 'cat'"),
    ('{"labels": [["a.png", 1]', "not valid JSON"),
])
def test_dataset_json_labels_are_integers_or_refused(tmp_path, labels, match):
    for n in ("a.png", "b.png"):
        _png(tmp_path / n)
    text = labels if isinstance(labels, str) else json.dumps({"labels": labels})
    (tmp_path / "dataset.json").write_text(text)
    with pytest.raises(UserError, match=match):
        load_dataset("folder", str(tmp_path))


def test_a_class_folder_of_jpegs_is_refused_not_skipped(tmp_path):
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
    _png(tmp_path / "cat/1.png")
    _png(tmp_path / "cat/2.png")
    (tmp_path / "dog/1.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(UserError, match="dog/1.jpg is not a PNG"):
        load_dataset("folder", str(tmp_path))


def test_a_png_declaring_a_huge_size_is_refused_before_decoding(tmp_path):
    """A PNG header declaring 30000 x 30000 pixels (a decompression bomb): refused from its
    header, one line."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    head = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head)
                                        + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    _png(tmp_path / "ok.png")
    with pytest.raises(UserError, match="bomb.png: (declares 30000x30000|not a readable PNG .*decompression bomb)"):
        load_dataset("folder", str(tmp_path))


@pytest.mark.parametrize("override, key", [
    ({"eval": {"num_samples": 2}}, "eval.num_samples"),
    ({"dataset": {"name": "folder", "path": None}}, "dataset.path"),
])
def test_the_config_check_knows_what_jobs_will_need(override, key):
    import yaml

    from diffdistill import methods

    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    for section, values in override.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    with pytest.raises(UserError, match=key.replace(".", "\\.")):
        methods.validate(cfg)


@pytest.mark.parametrize("args, refused", [
    ("-Cseed=5", True), ("--config seed=5", True), ("-C seed=5", True), ("--configfi config/test.yaml", True),
    ("--confi seed=5", True),
    ("--configfile=config/test.yaml", True), ("--cores 2", False), ("--keep-going --cores 3", False),
])
def test_the_dvc_stage_guard_parses_snakemake_arguments_as_snakemake_does(args, refused):
    sys.path.insert(0, str(ROOT / "workflow/scripts"))
    try:
        import dvc_stage
    finally:
        sys.path.pop(0)
    import shlex

    try:
        got = bool(dvc_stage.config_overrides(shlex.split(args)))
    except dvc_stage.StageError as e:  # an ambiguous abbreviation: refused in one line too
        got = "cannot parse" in str(e)
    assert got == refused


def test_one_commands_folder_is_not_replaced_by_another(tmp_path):
    """`figures` into the folder `table` wrote would delete the tables: refused, and the
    folder keeps them."""
    from diffdistill.atomic import atomic_dir

    out = tmp_path / "report"
    with atomic_dir(out, "table") as d:
        (d / "fid_vs_nfe.md").write_text("tables")
    with pytest.raises(UserError, match="'diffdistill table' wrote; 'figures' would replace"):
        with atomic_dir(out, "figures") as d:
            (d / "fid_vs_nfe.png").write_text("figure")
    assert (out / "fid_vs_nfe.md").read_text() == "tables" and not (out / "fid_vs_nfe.png").exists()
    with atomic_dir(out, "table") as d:  # the same command replaces its own folder
        (d / "fid_vs_nfe.md").write_text("new tables")
    assert (out / "fid_vs_nfe.md").read_text() == "new tables"


def test_a_bad_dataset_through_the_cli_is_one_line(tmp_path, cli_env):
    np.savez(tmp_path / "rgba.npz", images=np.zeros((10, 16, 16, 4), np.uint8))
    from conftest import VENV_BIN

    r = subprocess.run([str(VENV_BIN / "diffdistill"), "train", "teacher", "--dataset", "npz", "--dataset-path",
                        str(tmp_path / "rgba.npz"), "--iters", "1", "--out", str(tmp_path / "t.pt")],
                       env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "channels" in r.stderr, r.stderr
    assert not (tmp_path / "t.pt").exists()
