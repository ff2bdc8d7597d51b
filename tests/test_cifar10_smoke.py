"""config/cifar10-smoke.yaml: the CIFAR-10 config with only sizes, paths, shortened lists
and the device changed (checked leaf by leaf), run end to end on small inputs in the real
formats (slow tier)."""
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from conftest import ROOT, VENV_BIN, copy_workflow
from diffdistill.config import validate

SMOKE, FULL = ROOT / "config/cifar10-smoke.yaml", ROOT / "config/cifar10.yaml"
# Keys whose values may differ (by their last name): sizes, paths, the device, the threads.
SIZES = {"num_samples", "seed_sets", "batch_size", "iters", "num", "ckpt_every", "curve_every", "samples",
         "kid_subsets", "kid_subset_size", "prdc_samples", "ref_features", "num_images", "repeats",
         "grid_count", "floor_splits", "train_seeds", "threads_per_job"}
PATHS = {"path", "edm_pickle", "inception_weights", "reference_stats"}
PINS = {"sha256", "edm_pickle_sha256"}  # the smoke inputs are other (synthetic) files: not the pinned downloads
DEVICE = {"device"}


def _leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _is_shortened(short, full) -> bool:
    """`short` keeps some of `full`'s items, in order."""
    if not (isinstance(short, list) and isinstance(full, list)):
        return False
    it = iter(full)
    return len(short) < len(full) and all(x in it for x in short)


def config_differences(smoke: dict, full: dict) -> list[str]:
    """Every leaf where the validated configs differ outside the allow-list."""
    a, b = dict(_leaves(validate(smoke))), dict(_leaves(validate(full)))
    bad = [f"{k}: only in one config" for k in sorted(set(a) ^ set(b))]
    for key in sorted(set(a) & set(b)):
        name = key.rsplit(".", 1)[-1]
        if a[key] == b[key] or name in SIZES | DEVICE | PINS or _is_shortened(a[key], b[key]):
            continue
        if name in PATHS and isinstance(a[key], str) and a[key].rsplit("/", 1)[-1] == str(b[key]).rsplit("/", 1)[-1]:
            continue  # same file name, another folder
        bad.append(f"{key}: {b[key]!r} -> {a[key]!r}")
    return bad


def test_smoke_config_differs_only_in_sizes_paths_lists_and_device():
    smoke, full = yaml.safe_load(SMOKE.read_text()), yaml.safe_load(FULL.read_text())
    assert config_differences(smoke, full) == []


def test_the_leaf_check_catches_other_changes():
    full = yaml.safe_load(FULL.read_text())
    for key, value in [("sfd.lr", 0.001), ("trajectories.solver", "euler"), ("sfd.nfe", [2, 6]),
                       ("dataset.path", "downloads/other.tar.gz"), ("schedule.t_min", 0.002)]:
        smoke = yaml.safe_load(SMOKE.read_text())
        node, *_ = [smoke]
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
        assert any(d.startswith(key) for d in config_differences(smoke, full)), key
    assert config_differences(full, full) == []


def test_config_names_no_machine_path():
    for path in (FULL, SMOKE):
        text = path.read_text()
        assert not re.search(r"(^|[\s'\"])(/work|/home|/tmp|/root|/Users|~)/", text), path


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path, cli_env):
    """Every rule of the CIFAR-10 DAG on the smoke inputs: import, reference features,
    trajectories, every method, sampling, metrics, profiles, tables, ablations, claims."""
    copy_workflow(tmp_path)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "tests/make_cifar10_smoke.py"), "downloads/smoke"], cwd=tmp_path,
                   env=cli_env, check=True, capture_output=True, timeout=300)
    r = subprocess.run([str(VENV_BIN / "snakemake"), "--cores", "2", "all", "--configfile",
                        "config/cifar10-smoke.yaml"], cwd=tmp_path, env=cli_env, capture_output=True, text=True,
                       timeout=1500)
    wall = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr[-4000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", r.stderr.split("Job stats:")[1], re.M))
    for rule in ("import_teacher", "reference_stats", "sample", "fid", "distill_sfd", "distill_sfdv", "distill_sfd2",
                 "distill_pd", "distill_o2mkd", "distill_o2sfd", "profile", "tables", "extended_tables", "claims"):
        assert int(stats.get(rule, 0)) >= 1, (rule, stats)
    assert not any(r.startswith("fetch_") for r in stats), stats  # the files are present: nothing fetched
    tables = tmp_path / "results/tables"
    main = (tables / "fid_vs_nfe.md").read_text()
    assert "SFD" in main and "nan" not in main.lower()
    o2 = (tmp_path / "results/extended/o2mkd.csv").read_text().splitlines()  # with PD, SFD-v and the profiles
    header = o2[0].split(",")
    macs = [float(line.split(",")[header.index(next(h for h in header if "MACs" in h))]) for line in o2[1:]]
    assert macs and all(m > 0 for m in macs), o2
    grids = sorted((tmp_path / "results/samples").rglob("samples.npz"))
    assert grids, "no samples written"
    with np.load(grids[0]) as z:
        assert z["images"].shape[1:] == (3, 32, 32) and z["arr_0"].shape[1:] == (32, 32, 3)
    print(f"smoke run: {wall:.0f} s")
