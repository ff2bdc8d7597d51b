"""A researcher's own images through the README's three steps ("Your own data"): a
generated 16x16 RGB class-folder dataset at data/custom, config/custom.yaml as shipped,
and the main command with the test sizes in place of config/config.yaml. Every row of
the main table gets a number (the numbers measure nothing at these sizes)."""
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import ROOT, VENV_BIN, copy_workflow

README_COMMAND = ".venv/bin/snakemake --cores all results/tables --configfile config/config.yaml config/custom.yaml"


def make_class_folders(root, per_class: int = 100, size: int = 16, seed: int = 0) -> None:
    """Three classes of coloured 16x16 RGB images: horizontal stripes, vertical stripes,
    a square, each at a random phase or place, colour and brightness."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for c, name in enumerate(("hstripes", "square", "vstripes")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            colour = rng.uniform(0.3, 1.0, 3)
            if name == "hstripes":
                mask = ((yy + rng.integers(4)) // 2) % 2 == 0
            elif name == "vstripes":
                mask = ((xx + rng.integers(4)) // 2) % 2 == 0
            else:
                y0, x0 = rng.integers(0, size // 2, 2)
                mask = (yy >= y0) & (yy < y0 + size // 2) & (xx >= x0) & (xx < x0 + size // 2)
            img = np.where(mask[..., None], colour, 0.1) + rng.normal(0, 0.03, (size, size, 3))
            Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(root / name / f"{i:04d}.png")


@pytest.mark.slow
def test_custom_class_folder_dataset_main_table(tmp_path, cli_env):
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Your own data\n(.*?)(?=^## )", readme, re.S | re.M).group(1)
    assert README_COMMAND in section
    copy_workflow(tmp_path)
    make_class_folders(tmp_path / "data/custom")  # step 1
    custom = yaml.safe_load((tmp_path / "config/custom.yaml").read_text())
    assert custom["dataset"] == {"name": "folder", "path": "data/custom"} and custom["eval"]["features"] == "classifier"
    sizes = yaml.safe_load((ROOT / "config/test.yaml").read_text())  # step 2 holds as shipped; test sizes
    del sizes["dataset"]
    sizes["teacher"]["net_kwargs"] = {"model_channels": 16, "channel_mult": [1, 2], "num_blocks": 1, "dropout": 0.0}
    (tmp_path / "sizes.yaml").write_text(yaml.safe_dump(sizes, sort_keys=False))
    argv = README_COMMAND.replace("config/config.yaml", "sizes.yaml").replace("--cores all", "--cores 2").split()
    argv[0] = str(VENV_BIN / "snakemake")
    r = subprocess.run(argv, cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=1500)  # step 3
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    main = pd.read_csv(tmp_path / "results/tables/fid_vs_nfe.csv")
    print(main.to_string())
    assert {"SFD", "teacher (reference)", "SFD target (teacher trajectories)"} <= set(main["method"])
    nfe_cols = [c for c in main.columns if c.startswith("NFE")]
    assert main[nfe_cols].notna().any(axis=1).all(), main  # every row has a number
    assert np.isfinite(main[nfe_cols].to_numpy(dtype=float)[main[nfe_cols].notna().to_numpy()]).all()
    # the pipeline used the images as they are: 3x16x16, labels from the class folders
    with np.load(tmp_path / "results/samples/students/sfd/default/nfe2/samples.npz") as z:
        assert z["images"].shape[1:] == (3, 16, 16)
    meta = yaml.safe_load((tmp_path / "results/featnet/model.pt.meta.json").read_text())
    assert meta["featnet"]["n_train"] + meta["featnet"]["n_test"] == 300 and meta["featnet"]["test_accuracy"] > 0.5
