"""The CIFAR-10 cluster setting: the README's offline dry run, offline failures as one
line, and an imported EDM teacher through the sampling CLI (device and AMP flags)."""
import re
import subprocess

import numpy as np
import pytest
import yaml

from conftest import ROOT, VENV_BIN, copy_workflow

README_DRY_RUN = ".venv/bin/snakemake -n results/tables --configfile config/cifar10.yaml"


CLUSTER_PAGE = "docs/cluster.md"  # the README's page "Reproduce the paper on a cluster"


def _readme_cluster_commands():
    readme, text = (ROOT / "README.md").read_text(), (ROOT / CLUSTER_PAGE).read_text()
    assert f"]({CLUSTER_PAGE})" in readme, f"the README does not link {CLUSTER_PAGE}"
    assert text.startswith("# Reproduce the paper on a cluster\n"), text[:80]
    return [l.strip() for l in text.splitlines() if l.strip().startswith(".venv/bin/")]


def test_readme_cluster_dry_run_offline(tmp_path, cli_env):
    assert README_DRY_RUN in _readme_cluster_commands()
    copy_workflow(tmp_path)
    argv = README_DRY_RUN.split()
    argv[0] = str(VENV_BIN / "snakemake")
    r = subprocess.run(argv, cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:")[1], re.M))
    for rule in ("fetch_edm_teacher", "fetch_dataset", "fetch_inception_weights",
                 "fetch_reference_stats", "import_teacher", "reference_stats", "distill_sfd"):
        assert rule in stats, (rule, stats)
    assert "train_teacher" not in stats and "train_featnet" not in stats
    assert stats["distill_sfd"] == "4" and stats["fetch_edm_teacher"] == "1"
    assert "edm-cifar10-32x32-uncond-vp.pkl" in out and "cifar-10-python.tar.gz" in out
    assert "--num-samples 50000" in out and "--device cuda" in out and "gpu=1" in out
    assert "--lr 5e-05" in out and "--iters 1563" in out
    # ECT's one-hour run (config/cifar10.yaml's cd section; CD, its second target, is in results/extended)
    assert stats["distill_cd"] == "1" and "--q 256" in out and "--iters 8000" in out and "--ema 0.9993" in out
    assert not (tmp_path / "downloads").exists()  # a dry run fetches nothing


def test_missing_cifar10_is_one_line(tmp_path, cli_env):
    r = subprocess.run([str(VENV_BIN / "diffdistill"), "train-featnet", "--dataset", "cifar10",
                        "--dataset-path", str(tmp_path / "nope.tar.gz"), "--out", str(tmp_path / "m.pt")],
                       env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cifar-10-python.tar.gz" in lines[0] and "nope.tar.gz" in lines[0], r.stderr


def test_fetch_offline_is_one_line_and_writes_nothing(tmp_path, cli_env):
    url = "http://127.0.0.1:9/edm-cifar10-32x32-uncond-vp.pkl"  # nothing listens on port 9
    out = tmp_path / "downloads" / "teacher.pkl"
    r = subprocess.run([str(VENV_BIN / "diffdistill"), "fetch", "--url", url, "--out", str(out),
                        "--what", "EDM teacher snapshot"], env=cli_env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and url in lines[0] and str(out) in lines[0], r.stderr
    assert not out.parent.exists() or not any(out.parent.iterdir())


@pytest.fixture
def served(tmp_path):
    """A local HTTP server holding one file (payload.bin); yields (its URL, its bytes)."""
    import functools
    import http.server
    import threading

    root = tmp_path / "served"
    root.mkdir()
    data = bytes(range(256)) * 64
    (root / "payload.bin").write_bytes(data)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/payload.bin", data
    server.shutdown()
    server.server_close()


def test_fetch_checksum_mismatch_is_one_line_with_both_hashes_and_writes_nothing(tmp_path, cli_env, served):
    import hashlib

    url, data = served
    out = tmp_path / "downloads" / "teacher.pkl"
    pinned = "0" * 64
    r = subprocess.run([str(VENV_BIN / "diffdistill"), "fetch", "--url", url, "--out", str(out), "--what",
                        "EDM teacher snapshot", "--sha256", pinned, "--sha256-key", "teacher.edm_pickle_sha256"],
                       env=cli_env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    got = hashlib.sha256(data).hexdigest()
    assert len(lines) == 1 and got in lines[0] and pinned in lines[0] and str(out) in lines[0], r.stderr
    assert "teacher.edm_pickle_sha256" in lines[0]
    assert not out.exists() and not [f for f in out.parent.iterdir()]  # no partial or temporary file


def test_fetch_with_the_pinned_hash_writes_the_file_and_its_hash(tmp_path, served, capsys):
    import hashlib

    from diffdistill.fetch import fetch_to_file
    from diffdistill.errors import UserError
    from diffdistill.provenance import read_meta

    url, data = served
    out = tmp_path / "downloads" / "stats.npz"
    digest = hashlib.sha256(data).hexdigest()
    fetch_to_file(url, out, what="reference statistics", sha256=digest, key="eval.reference_stats_sha256")
    assert out.read_bytes() == data and read_meta(out)["sha256"] == digest
    unpinned = tmp_path / "other.npz"
    fetch_to_file(url, unpinned, what="reference statistics", key="eval.reference_stats_sha256")
    assert digest in capsys.readouterr().err  # not pinned: the hash to pin is printed
    with pytest.raises(UserError, match="not a SHA-256"):
        fetch_to_file(url, tmp_path / "x.npz", sha256="ABC", key="eval.reference_stats_sha256")


def test_cifar10_config_pins_its_downloads():
    """The published files whose SHA-256 is known are pinned in config/cifar10.yaml (the
    EDM snapshot, the CIFAR-10 archive), and the fetch rules pass the pins on."""
    from diffdistill.config import validate
    from diffdistill.fetch import downloads

    cfg = validate(yaml.safe_load((ROOT / "config/cifar10.yaml").read_text()))
    pins = {i.name: (i.sha256, i.sha256_key) for i in downloads(cfg)}
    assert pins["edm_teacher"] == ("4d5dcc1f1d0d41c8934ad21626eeddbdc0460182becf9fc059a0631b1eedb4da",
                                   "teacher.edm_pickle_sha256")
    assert pins["dataset"][0] == "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
    rules = (ROOT / "workflow/rules/fetch.smk").read_text()
    assert "--sha256" in rules and "_input.sha256" in rules


@pytest.mark.parametrize("amp", ["false", "true"])
def test_imported_edm_teacher_samples(tmp_path, cli_env, amp):
    dd = str(VENV_BIN / "diffdistill")
    model = tmp_path / "teacher" / "model.pt"
    r = subprocess.run([dd, "import-edm", str(ROOT / "tests/fixtures/edm/network.pkl"), str(model)],
                       env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = tmp_path / f"samples-{amp}.npz"
    r = subprocess.run([dd, "sample", "--model", str(model), "--solver", "euler", "--nfe", "2", "--afs", "false",
                        "--seeds", "0-3", "--batch-size", "2", "--device", "cpu", "--amp", amp,
                        "--out", str(out), "--quiet"], env=cli_env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:
        assert z["images"].shape == (4, 3, 16, 16) and z["images"].dtype == np.uint8


def test_cuda_without_gpu_is_one_line(tmp_path, cli_env):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    dd = str(VENV_BIN / "diffdistill")
    model = tmp_path / "model.pt"
    subprocess.run([dd, "import-edm", str(ROOT / "tests/fixtures/edm/network.pkl"), str(model)],
                   env=cli_env, capture_output=True, text=True, timeout=120, check=True)
    r = subprocess.run([dd, "sample", "--model", str(model), "--solver", "euler", "--nfe", "2", "--afs", "false",
                        "--seeds", "0-1", "--device", "cuda", "--out", str(tmp_path / "s.npz")], env=cli_env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "device: cpu" in r.stderr


def test_sfd_step_under_bf16_autocast_lowers_loss(tmp_path):
    import torch

    from conftest import build_method, make_cache, save_tiny_teacher
    from diffdistill.runtime import autocast

    save_tiny_teacher(tmp_path / "t.pt")
    flags = make_cache(tmp_path / "t.pt", tmp_path / "c.pt", 2)
    method = build_method("sfd", ["--teacher", tmp_path / "t.pt", "--trajectories", tmp_path / "c.pt", "--nfe", 2,
                                  "--batch-size", 8, "--amp", "true", "--out", tmp_path / "s.pt", *flags])
    student = method.model.requires_grad_(True)
    traj = method.sfd.batches.states
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)

    def step(loss):
        opt.zero_grad()
        loss.backward()
        opt.step()

    with autocast("cpu", True):
        first = method.sfd.distill_batch(traj, step)["loss"]
        for _ in range(5):
            last = method.sfd.distill_batch(traj, step)["loss"]
    assert last < first


def test_cifar10_plan_gives_every_network_rule_a_gpu(tmp_path, cli_env):
    """On the cluster config every job that runs a network asks for a GPU and gets --device cuda."""
    copy_workflow(tmp_path)
    r = subprocess.run([str(VENV_BIN / "snakemake"), "-n", "-p", "all", "--configfile", "config/cifar10.yaml"],
                       cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\n|\Z)", r.stdout, re.M | re.S)
    network = {"reference_stats", "teacher_trajectories", "sample", "fid", "profile", "distill_sfd", "distill_sfdv",
               "distill_sfd2", "distill_pd", "distill_o2mkd"}
    seen = set()
    for rule, body in jobs:
        if rule in network:
            seen.add(rule)
            assert "gpu=1" in body and "--device cuda" in body, (rule, body[-500:])
    assert seen == network, network - seen
    # --configfile replaces config/config.yaml: keys cifar10.yaml leaves out take the
    # schema's defaults (sfdv.iters 600, pd.iters 200), not the digits values (400, 100)
    bodies = {rule: body for rule, body in jobs}
    assert "--iters 600 " in bodies["distill_sfdv"] and "--iters 200 " in bodies["distill_pd"], (
        bodies["distill_sfdv"][-800:], bodies["distill_pd"][-800:])


EDM64 = {"ffhq64": ("edm-ffhq-64x64-uncond-vp.pkl", "ffhq-64x64"), "afhqv2-64": ("edm-afhqv2-64x64-uncond-vp.pkl", "afhqv2-64x64")}


def _dry_run(tmp_path, cli_env, configfile):
    r = subprocess.run([str(VENV_BIN / "snakemake"), "-n", "results/tables", "results/extended", "--configfile", configfile],
                       cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("name", sorted(EDM64))
def test_edm_64x64_configs_plan_every_rule_on_the_gpu(tmp_path, cli_env, name):
    """The README's dry run of each 64x64 config, with the dataset the user makes (EDM's
    dataset_tool .zip, here a stand-in: a dry run reads nothing): every job that runs a
    network declares gpu=1, the snapshot, statistics and Inception weights are fetched,
    EDM's sampler at 79 NFE is the reference."""
    pkl, stem = EDM64[name]
    assert f".venv/bin/snakemake -n results/tables --configfile config/{name}.yaml" in _readme_cluster_commands()
    copy_workflow(tmp_path)
    (tmp_path / "downloads").mkdir()
    (tmp_path / f"downloads/{stem}.zip").write_bytes(b"")
    rc, out = _dry_run(tmp_path, cli_env, f"config/{name}.yaml")
    assert rc == 0, out[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:")[1], re.M))
    for rule in ("fetch_edm_teacher", "fetch_inception_weights", "fetch_reference_stats", "import_teacher",
                 "reference_stats", "distill_sfd", "distill_pd", "distill_o2mkd", "sample", "fid"):
        assert rule in stats, (rule, stats)
    assert "fetch_dataset" not in stats and "train_teacher" not in stats and "train_featnet" not in stats
    assert f"https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/{pkl}" in out
    assert f"https://nvlabs-fi-cdn.nvidia.com/edm/fid-refs/{stem}.npz" in out
    assert "--nfe 79" in out and "--num-samples 50000" in out
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\[|^Job stats|\Z)", out, re.S | re.M)
    network = {"import_teacher", "reference_stats", "teacher_trajectories", "sample", "fid", "profile"} | {
        r for r in stats if r.startswith("distill_")}
    planned = {rule for rule, _ in jobs} & network
    assert planned >= {"distill_sfd", "sample", "fid", "reference_stats"}, planned
    for rule, body in jobs:
        if rule in network and rule != "import_teacher":
            assert "gpu=1" in body and "--device cuda" in body, (rule, body)


def test_edm_64x64_config_without_its_dataset_is_one_line(tmp_path, cli_env):
    copy_workflow(tmp_path)
    rc, out = _dry_run(tmp_path, cli_env, "config/ffhq64.yaml")
    assert rc != 0
    errors = [l for l in out.splitlines() if "error" in l.lower()]
    assert errors == ["config error: dataset 'folder' not found at downloads/ffhq-64x64.zip (dataset.path) and no URL "
                      "to fetch it from: put it there or set dataset.path"], out[-2000:]
