"""Bad input at the boundary: every case ends with a non-zero exit and one clear line
(CLI: no traceback, at most 2 lines on stderr, no output file left, temporaries
included; Snakemake: its last error line names the key or file). All CLI cases share
one tiny teacher, cache and feature network."""
import os
import pickle
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, VENV_BIN, copy_workflow, make_cache, save_tiny_teacher


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    save_tiny_teacher(d / "teacher.pt")
    make_cache(d / "teacher.pt", d / "cache.pt", 2)
    from diffdistill.metrics import DigitsFeatureNet, save_feature_net
    save_feature_net(d / "featnet.pt", DigitsFeatureNet(), {})
    rng = np.random.default_rng(0)
    np.savez(d / "ref.npz", mu=np.zeros(64), sigma=np.eye(64))
    np.savez(d / "samples.npz", images=rng.integers(0, 255, (8, 1, 8, 8), dtype=np.uint8), seeds=np.arange(8))
    np.savez(d / "noimages.npz", pictures=np.zeros(3))
    np.savez(d / "objects.npz", images=np.array([{"a": 1}, None], dtype=object))
    good = (d / "ref.npz").read_bytes()
    (d / "truncated.npz").write_bytes(good[: len(good) // 2])
    ck = (d / "teacher.pt").read_bytes()
    (d / "truncated.pt").write_bytes(ck[: len(ck) // 2])
    (d / "evil.pkl").write_bytes(pickle.dumps({"ema": _Evil(str(d / "pwned"))}))
    (d / "afile").write_text("x")
    (d / "afolder").mkdir()
    return d


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


S = ["sample", "--model", "{d}/teacher.pt", "--solver", "euler", "--nfe", "2", "--seeds", "0-3", "--batch-size", "4"]
T = ["train", "teacher", "--net-kwargs", '{"model_channels": 8, "num_blocks": 1}', "--iters", "3", "--batch-size", "8",
     "--quiet"]
F = ["fid", "--featnet", "{d}/featnet.pt", "--num-samples", "8", "--batch-size", "8"]
SFD = ["train", "sfd", "--teacher", "{d}/teacher.pt", "--trajectories", "{d}/cache.pt", "--K", "2", "--pool", "8",
       "--iters", "2", "--batch-size", "4", "--quiet"]

# (case, argv, what stderr must name); {d} is the inputs folder, {o} the output folder
CLI_CASES = [
    # silently wrong before
    ("sample --t-min -1", S + ["--t-min", "-1", "--out", "{o}/s.npz"], "--t-min"),
    ("sample --nfe 0", S[:-6] + ["--nfe", "0", "--out", "{o}/s.npz"], "--nfe"),
    ("trajectories --K 0", ["trajectories", "--teacher", "{d}/teacher.pt", "--nfe", "2", "--seeds", "0-3", "--K", "0",
                            "--out", "{o}/t.pt"], "--K"),
    ("train teacher --iters 0", T + ["--iters", "0", "--out", "{o}/m.pt"], "--iters"),
    ("table --tables typo", ["table", "--fid", "{d}/missing.json", "--out-dir", "{o}/tables", "--tables", "extnded"],
     "--tables"),
    ("sfd with an NFE-3 cache at NFE 2", SFD + ["--nfe", "3", "--out", "{o}/m.pt"], "cache.pt"),
    # tracebacks before
    ("net_kwargs typo", ["train", "teacher", "--net-kwargs", '{"model_channel": 32}', "--out", "{o}/m.pt"],
     "model_channel"),
    ("--solver eulr", S + ["--solver", "eulr", "--out", "{o}/s.npz"], "eulr"),
    ("non-finite loss", T + ["--lr", "1e30", "--iters", "20", "--out", "{o}/m.pt"], "lower the learning rate"),
    ("--batch-size 0", T + ["--batch-size", "0", "--out", "{o}/m.pt"], "--batch-size"),
    ("--batch-size -4", T + ["--batch-size", "-4", "--out", "{o}/m.pt"], "--batch-size"),
    ("--ckpt-every 0", T + ["--ckpt-every", "0", "--out", "{o}/m.pt"], "--ckpt-every"),
    ("fid --ref truncated npz", F + ["--samples", "{d}/samples.npz", "--ref", "{d}/truncated.npz", "--out",
                                     "{o}/f.json"], "truncated.npz"),
    ("fid --samples without images", F + ["--samples", "{d}/noimages.npz", "--ref", "{d}/ref.npz", "--out",
                                          "{o}/f.json"], "noimages.npz"),
    ("fid --samples of object arrays", F + ["--samples", "{d}/objects.npz", "--ref", "{d}/ref.npz", "--out",
                                            "{o}/f.json"], "objects.npz"),
    ("--out an existing folder", S + ["--out", "{d}/afolder"], "afolder"),
    ("--out under a file", S + ["--out", "{d}/afile/s.npz"], "afile"),
    ("output folder not writable", S + ["--out", "{o}/locked/s.npz"], "locked"),
    # files
    ("missing checkpoint", S[:2] + ["{d}/missing.pt"] + S[3:] + ["--out", "{o}/s.npz"], "missing.pt"),
    ("truncated checkpoint", S[:2] + ["{d}/truncated.pt"] + S[3:] + ["--out", "{o}/s.npz"], "truncated.pt"),
    ("code-carrying pickle", ["import-edm", "{d}/evil.pkl", "{o}/m.pt"], "refusing to load global"),
    ("bad seed list", S[:-4] + ["--seeds", "x-y", "--out", "{o}/s.npz"], "x-y"),
    # the command line itself
    ("misspelt option", ["sample", "--modle", "{d}/teacher.pt", "--out", "{o}/s.npz"], "did you mean --model"),
    ("missing option", ["sample", "--out", "{o}/s.npz"], "--model"),
    ("malformed JSON", ["train", "teacher", "--net-kwargs", "{oops", "--out", "{o}/m.pt"], "--net-kwargs"),
]


def _lock(folder: Path) -> None:
    folder.mkdir()
    if os.geteuid() == 0:  # root writes anywhere a mode allows: make the folder immutable
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    else:
        folder.chmod(0o555)


def _unlock(folder: Path) -> None:
    if folder.exists():
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=False)
        folder.chmod(0o755)


@pytest.mark.parametrize("case,argv,names", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(case, argv, names, inputs, tmp_path, capsys):
    """`diffdistill.cli.main` in this process (a new process per case would add seconds each)."""
    from diffdistill.cli import main

    out = tmp_path / "out"
    out.mkdir()
    locked = out / "locked"
    if case == "output folder not writable":
        _lock(locked)
    try:
        try:
            rc = main([a.replace("{d}", str(inputs)).replace("{o}", str(out)) for a in argv])
        except SystemExit as e:  # argparse's exit after its one error line
            rc = e.code
    finally:
        _unlock(locked)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc not in (0, None), (case, err[-2000:])
    assert "Traceback" not in err and 1 <= len(lines) <= 2, (case, err[-2000:])
    assert names in lines[0], (case, lines)
    left = [p for p in out.rglob("*") if p.is_file()] + [p for p in inputs.rglob(".*.tmp")]
    assert not left, (case, left)
    assert not (inputs / "pwned").exists()


def test_stale_temporaries_are_swept_by_the_next_write(inputs, tmp_path, cli_env):
    out = tmp_path / "s.npz"
    stale = [tmp_path / ".s.npz.k1ll3d.tmp", tmp_path / ".s.npz.meta.json.x9.tmp"]
    for p in stale:
        p.write_bytes(b"half-written")
    r = subprocess.run([str(VENV_BIN / "diffdistill"), *(a.replace("{d}", str(inputs)) for a in S), "--out", str(out)],
                       env=cli_env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert out.exists() and not any(p.exists() for p in stale)
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("umask", [0o002, 0o027])
def test_outputs_get_the_umask_permissions(umask, inputs, tmp_path):
    from diffdistill.atomic import atomic_dir
    from diffdistill.files import torch_save, write_json

    old = os.umask(umask)
    try:
        write_json(tmp_path / "new/deep/a.json", {"x": 1})
        torch_save(tmp_path / "b.pt", {"x": 1})
        with atomic_dir(tmp_path / "tables") as d:
            (d / "t.csv").write_text("a\n")
            (d / "sub").mkdir()
    finally:
        os.umask(old)
    file_mode, dir_mode = 0o666 & ~umask, 0o777 & ~umask
    for f in (tmp_path / "new/deep/a.json", tmp_path / "b.pt", tmp_path / "tables/t.csv"):
        assert f.stat().st_mode & 0o777 == file_mode, (f, oct(f.stat().st_mode))
    for d in (tmp_path / "new", tmp_path / "new/deep", tmp_path / "tables", tmp_path / "tables/sub"):
        assert d.stat().st_mode & 0o777 == dir_mode, (d, oct(d.stat().st_mode))


SMK_CASES = [
    ("t_min above t_max", "schedule: {t_min: 100, t_max: 80}\n", "schedule.t_min"),
    ("net_kwargs typo", "teacher: {net_kwargs: {model_channel: 32}}\n", "teacher.net_kwargs.model_channel"),
    ("unknown key", "sfd: {itres: 3}\n", "sfd.itres"),
    ("zero batch size", "sfd: {batch_size: 0}\n", "sfd.batch_size"),
    ("NFE 0", "sfd: {nfe: [0, 2]}\n", "sfd.nfe"),
    ("empty seed range", "eval: {num_samples: 1}\n", "eval.num_samples"),
    ("pool overlaps evaluation seeds", "trajectories: {seed_start: 10}\n", "trajectories.seed_start"),
    ("missing --configfile", None, "nope.yaml"),
    ("second stage teacher not trained", "sfd2: {teacher_nfe: 7}\n", "sfd2.teacher_nfe"),
]


@pytest.mark.parametrize("case,text,names", SMK_CASES, ids=[c[0] for c in SMK_CASES])
def test_snakemake_bad_config(case, text, names, tmp_path, cli_env):
    copy_workflow(tmp_path)
    cfg = "nope.yaml"
    if text is not None:
        (tmp_path / "bad.yaml").write_text(text)
        cfg = "bad.yaml"
    r = subprocess.run([str(VENV_BIN / "snakemake"), "-n", "--configfile", "config/test.yaml", cfg], cwd=tmp_path,
                       env=cli_env, capture_output=True, text=True, timeout=120)
    lines = [l for l in (r.stdout + "\n" + r.stderr).splitlines()  # Snakemake's traceback goes to stdout
             if l.strip() and not l.startswith("Using workflow specific profile")]
    assert r.returncode != 0, (case, lines[-5:])
    assert names in lines[-1], (case, lines[-5:])
    assert not (tmp_path / "results").exists()


def test_benchmark_without_its_inputs_is_one_line(tmp_path, cli_env):
    """A benchmark run where its models were never built (another config, or before the
    main job): one line naming the missing file, exit status 2, no report written."""
    r = subprocess.run([str(VENV_BIN / "python"), "-m", "benchmarks.equal_compute", "--out", "out"], cwd=tmp_path, env={**cli_env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and r.stderr.splitlines() == [
        "benchmark equal_compute: error: file not found: results/students/sfd/default/nfe2/model.pt"], r.stderr
    assert not (tmp_path / "out").exists()
