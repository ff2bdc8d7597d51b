"""Nothing the user owns is destroyed, and bad input is refused before memory is spent.

Every CLI case plants unrelated files and the command's inputs in a fresh folder, runs
the command there, and checks: a non-zero exit, no traceback, at most 2 lines on stderr
naming the problem, no output or temporary left, and every planted file byte for byte
as it was (device nodes and FIFOs still what they were)."""
import json
import os
import stat
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, VENV_BIN, copy_workflow, save_tiny_teacher


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Inputs made once: a tiny digits teacher, a samples file, a metrics file."""
    d = tmp_path_factory.mktemp("shared")
    save_tiny_teacher(d / "teacher.pt")
    rng = np.random.default_rng(0)
    np.savez(d / "samples.npz", images=rng.integers(0, 255, (8, 1, 8, 8), dtype=np.uint8), seeds=np.arange(8))
    np.savez(d / "repeated.npz", images=rng.integers(0, 255, (8, 1, 8, 8), dtype=np.uint8),
             seeds=np.array([0, 1, 2, 3, 0, 1, 2, 3]))
    from diffdistill.metrics import DigitsFeatureNet, save_feature_net
    save_feature_net(d / "featnet.pt", DigitsFeatureNet(), {})
    np.savez(d / "ref.npz", mu=np.zeros(64), sigma=np.eye(64))
    (d / "fid.json").write_text(json.dumps({"name": "r/nfe2", "label": "row", "nfe": 2, "fid": 3.0, "fid_std": 0.1,
                                            "fid_inf": 2.5, "fid_inf_std": 0.1,
                                            "tables": ["main"], "family": "sfd", "seed_sets": 1}))
    return d


def _snapshot(root: Path) -> dict:
    """Every entry under root: file bytes, or the kind and device number of a special file."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode):
            out[p] = p.read_bytes()
        elif stat.S_ISLNK(st.st_mode):
            out[p] = ("link", os.readlink(p))
        elif not stat.S_ISDIR(st.st_mode):
            out[p] = ("special", stat.S_IFMT(st.st_mode), st.st_rdev)
        else:
            out[p] = "dir"
    return out


@pytest.fixture
def work(shared, tmp_path, monkeypatch):
    """A working folder with the inputs copied in and unrelated files planted."""
    for f in shared.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "thesis.tex").write_text("\\chapter{mine}\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "thesis.tex").write_text("\\chapter{also mine}\n")
    (tmp_path / "results" / "samples").mkdir()
    (tmp_path / "results" / "samples" / "keep.npz").write_bytes(b"not ours")
    os.mkfifo(tmp_path / "fifo")
    if os.geteuid() == 0:  # a copy of /dev/null's node, never the real one
        os.mknod(tmp_path / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(argv, names, work, capsys, monkeypatch=None):
    """Run `diffdistill ARGV` in `work`; check the refusal and that nothing changed."""
    from diffdistill.cli import main

    before = _snapshot(work)
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's exit after its one error line
        rc = e.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc not in (0, None), err
    assert "Traceback" not in err and 1 <= len(lines) <= 2, err
    assert names in lines[0], lines
    after = _snapshot(work)
    assert after == before, sorted(set(after) ^ set(before))
    return lines[0]


S = ["sample", "--model", "teacher.pt", "--solver", "euler", "--nfe", "2", "--seeds", "0-3", "--batch-size", "4",
     "--quiet"]


# ---- outputs: what is in their place ---------------------------------------------------

def test_output_that_is_an_input_is_refused(work, capsys):
    refused(["sample", *S[1:], "--out", "teacher.pt"], "also an input", work, capsys)
    refused(["sample", *S[1:], "--out", "./teacher.pt"], "also an input", work, capsys)


def test_two_outputs_on_one_path_are_refused(work, capsys):
    refused([*S, "--out", "s.npz", "--png", "s.npz"], "named twice", work, capsys)
    refused([*S, "--out", "s.npz", "--png", "s.npz.meta.json"], "named twice", work, capsys)


def test_import_edm_onto_its_source_is_refused(work, capsys):
    pkl = work / "net.pkl"
    pkl.write_bytes((ROOT / "tests/fixtures/edm/network.pkl").read_bytes())
    refused(["import-edm", "net.pkl", "net.pkl"], "also an input", work, capsys)


@pytest.mark.parametrize("node,kind", [("fifo", "a FIFO"), ("null", "a device")])
def test_special_files_are_never_replaced(node, kind, work, capsys):
    if not (work / node).exists():
        pytest.skip("making a device node needs root")
    refused([*S, "--out", node], kind, work, capsys)
    assert stat.S_ISFIFO(os.lstat(work / "fifo").st_mode)
    if (work / "null").exists():
        assert stat.S_ISCHR(os.lstat(work / "null").st_mode)


def test_a_symlinked_output_replaces_the_link_not_its_target(work, capsys):
    from diffdistill.cli import main

    target = work / "results" / "thesis.tex"
    before = target.read_bytes()
    (work / "s.npz").symlink_to(target)
    assert main([*S, "--out", "s.npz"]) == 0
    assert target.read_bytes() == before
    assert not (work / "s.npz").is_symlink() and np.load(work / "s.npz")["images"].shape == (4, 1, 8, 8)


def test_an_output_without_extension_gets_its_sidecar_beside_it(work):
    from diffdistill.cli import main

    assert main([*S, "--out", "samples"]) == 0
    assert (work / "samples").is_file() and (work / "samples.meta.json").is_file()


# ---- an output and its metadata land together ---------------------------------------------

def test_output_and_metadata_land_together_or_not_at_all(work, capsys, monkeypatch):
    """A full disk when the sidecar is written: neither the samples nor the sidecar land."""
    import diffdistill.provenance as prov

    real = prov.write_json

    def full_disk(path, obj):
        if str(path).endswith(".meta.json"):
            raise OSError(28, "No space left on device", str(path))
        return real(path, obj)

    monkeypatch.setattr(prov, "write_json", full_disk)
    refused([*S, "--out", "s.npz"], "No space left on device", work, capsys)


# ---- folders ---------------------------------------------------------------------------

def test_output_folder_with_other_files_is_refused(work, capsys):
    line = refused(["table", "--fid", "fid.json", "--out-dir", "results"], "did not write", work, capsys)
    assert "thesis.tex" in line


@pytest.mark.parametrize("where", [".", "/", "~", ".."])
def test_working_home_root_and_parent_folders_are_refused(where, work, capsys):
    refused(["table", "--fid", "fid.json", "--out-dir", os.path.expanduser(where)], "output folder", work, capsys)


def test_an_output_folder_holding_an_input_is_refused(work, capsys):
    from diffdistill.cli import main

    assert main(["table", "--fid", "fid.json", "--out-dir", "tables"]) == 0
    (work / "tables" / "fid.json").write_bytes((work / "fid.json").read_bytes())
    refused(["table", "--fid", "tables/fid.json", "--out-dir", "tables"], "did not write", work, capsys)


def test_a_folder_the_command_wrote_is_replaced(work):
    from diffdistill.cli import main

    assert main(["table", "--fid", "fid.json", "--out-dir", "tables"]) == 0
    manifest = json.loads((work / "tables" / ".diffdistill-outputs").read_text())["files"]
    assert "fid_vs_nfe.csv" in manifest and set(manifest) == {
        p.relative_to(work / "tables").as_posix() for p in (work / "tables").rglob("*")} - {".diffdistill-outputs"}
    assert main(["table", "--fid", "fid.json", "--out-dir", "tables"]) == 0  # ours alone: replaced
    assert not list(work.glob(".tables.*"))


# ---- bounds before allocation ------------------------------------------------------------

@pytest.mark.parametrize("flag,value,names", [
    ("--nfe", "1000000000", "--nfe"), ("--seeds", "0-999999999", "at most 1000000"),
    ("--seeds", str(2 ** 64), "0..2147483647"), ("--seeds", "-5", "bad seed list"),
])
def test_sizes_are_bounded_on_the_command_line(flag, value, names, work, capsys):
    argv = list(S)
    argv[argv.index(flag) + 1] = value
    refused([*argv, "--out", "s.npz"], names, work, capsys)


def test_sampling_beyond_memory_is_refused_with_its_estimate(work, capsys, monkeypatch):
    import diffdistill.memory as mem

    monkeypatch.setattr(mem, "available_memory", lambda: 2 ** 20)
    argv = list(S)
    argv[argv.index("--seeds") + 1] = "0-99999"
    refused([*argv, "--out", "s.npz"], "needs about", work, capsys)


def test_a_trajectory_cache_beyond_memory_is_refused(work, capsys, monkeypatch):
    import diffdistill.memory as mem

    monkeypatch.setattr(mem, "available_memory", lambda: 2 ** 20)
    refused(["trajectories", "--teacher", "teacher.pt", "--nfe", "5", "--seeds", "100000-199999", "--out", "c.pt",
             "--quiet"], "trajectory cache", work, capsys)


def test_a_tensor_declared_beyond_the_file_is_refused_before_allocation(work, capsys):
    """A checkpoint whose pickle declares a 2 GiB storage backed by 40 bytes."""
    torch.save({"x": torch.zeros(10)}, work / "small.pt")
    with zipfile.ZipFile(work / "small.pt") as z:
        entries = {n: z.read(n) for n in z.namelist()}
    pkl = next(n for n in entries if n.endswith("data.pkl"))
    import pickletools
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(entries[pkl])]
    assert ("BININT1", 10) in ops  # the storage's element count, as torch writes it
    entries[pkl] = entries[pkl].replace(b"K\n", b"J\x00\x00\x00\x20", 1)  # BININT1 10 -> BININT 2^29 floats
    with zipfile.ZipFile(work / "big.pt", "w") as z:
        for n, data in entries.items():
            z.writestr(n, data)
    refused([*S[:2], "big.pt", *S[3:], "--out", "s.npz"], "declares 2.0 GiB", work, capsys)


def test_an_edm_network_of_edited_kwargs_is_refused_before_it_is_built():
    from diffdistill.edm_import import _flatten_state, check_fits, spec_from_record
    from diffdistill.safe_pickle import RestrictedUnpickler
    from diffdistill.errors import UserError

    with open(ROOT / "tests/fixtures/edm/network.pkl", "rb") as f:
        record = RestrictedUnpickler(f).load()["ema"]
    spec, tensors = spec_from_record(record), _flatten_state(record, "", {})
    check_fits(spec, tensors)  # the real kwargs fit
    spec["net_kwargs"]["model_channels"] = 4096
    with pytest.raises(UserError, match="in the snapshot"):
        check_fits(spec, tensors)


# ---- duplicates ----------------------------------------------------------------------------

def test_repeated_seeds_are_refused(work, capsys):
    argv = list(S)
    argv[argv.index("--seeds") + 1] = "0-3,0-3"
    refused([*argv, "--out", "s.npz"], "repeats seed 0", work, capsys)
    refused(["fid", "--samples", "repeated.npz", "--ref", "ref.npz", "--featnet", "featnet.pt", "--num-samples", "8",
             "--batch-size", "8", "--out", "f.json"], "repeats seed 0", work, capsys)


def test_duplicate_yaml_keys_are_named():
    from diffdistill.config import check_yaml_text
    from diffdistill.errors import UserError

    check_yaml_text("sfd: {iters: 3}\npd: {iters: 3}\n", "ok.yaml")
    with pytest.raises(UserError, match=r"bad.yaml, line 3: key 'iters' is given twice"):
        check_yaml_text("sfd:\n  iters: 3\n  iters: 5000\n", "bad.yaml")


# ---- the config: nothing dropped from the plan, nothing non-finite --------------------------

@pytest.mark.parametrize("change,names", [
    ({"schedule": {"t_max": float("inf")}}, "schedule.t_max"),
    ({"sfd": {"lr": float("nan")}}, "sfd.lr"),
    ({"baselines": {"solvers": ["heun"], "nfe": [3], "afs": [False]}}, "heun cannot take exactly 3 NFE"),
    ({"baselines": {"reference": {"solver": "heun", "nfe": 34}}}, "baselines.reference.nfe"),
    ({"o2mkd": {"split": "steps", "split_grid": 3, "num_students": [4]}}, "o2mkd.split_grid"),
    ({"o2mkd": {"fast_solver": "heun", "fast_nfe": 3}}, "o2mkd.fast_nfe"),
    ({"sfd": {"nfe": [2, 3, 1000000]}}, "sfd.nfe"),
    ({"seed": 2 ** 64}, "seed"),
    ({"trajectories": {"seed_start": 2 ** 31 - 10, "num": 100}}, "trajectories.seed_start"),
])
def test_config_refuses_what_no_job_could_serve(change, names):
    from diffdistill.errors import UserError
    from diffdistill.methods import validate

    with pytest.raises(UserError, match=names.replace(".", r"\.")):
        validate(change)


def test_the_default_baselines_plan_every_configured_row():
    import yaml

    from diffdistill.methods import rows, validate
    from diffdistill.methods.teacher.train import Teacher

    cfg = validate(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    names = {r.name for r in rows(cfg)}
    grid = Teacher.baseline_grid(cfg)
    assert grid and all(f"teacher-{s}{'-afs' if a else ''}/nfe{n}" in names for s, a, n in grid)


@pytest.mark.parametrize("name,text,last_line", [
    # the README's promise: Snakemake evaluates YTE templates when it loads a config file,
    # before the workflow sees it, so a config file is code; the expression is evaluated
    # (the workflow then refuses its value, -1234), which keeps that statement true
    ("yte.yaml", "__use_yte__: true\nsfd:\n  iters: ?-1000 - 234\n", "'sfd.iters' = -1234"),
    ("dup.yaml", "sfd: {iters: 3, iters: 5000}\n", "dup.yaml, line 1: key 'iters' is given twice"),
])
def test_config_files_as_snakemake_loads_them(name, text, last_line, tmp_path, cli_env):
    assert "A config file is code." in (ROOT / "README.md").read_text()
    copy_workflow(tmp_path)
    (tmp_path / name).write_text(text)
    r = subprocess.run([str(VENV_BIN / "snakemake"), "-n", "--configfile", "config/test.yaml", name],
                       cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=120)
    lines = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    assert r.returncode != 0 and last_line in lines[-1], lines[-3:]


# ---- malformed result files ------------------------------------------------------------------

@pytest.mark.parametrize("command", ["table", "ablation-table", "claims", "figures"])
@pytest.mark.parametrize("content,names", [("[]", "got a JSON list"), ('{"label": "x", "nfe": 2}', "'name or row'"),
                                            ("{oops", "not valid JSON")])
def test_malformed_result_files_are_named(command, content, names, work, capsys):
    (work / "bad.json").write_text(content)
    line = refused([command, "--fid", "bad.json", "--out-dir", "out"], names, work, capsys)
    assert "bad.json" in line


def test_a_metadata_sidecar_of_the_wrong_type_is_named(work, capsys):
    save_tiny_teacher(work / "m.pt")
    (work / "m.pt.meta.json").write_text("[1]")
    rec = json.loads((work / "fid.json").read_text())
    (work / "fid2.json").write_text(json.dumps({**rec, "model": "m.pt", "kind": "distilled"}))
    refused(["table", "--fid", "fid2.json", "--out-dir", "out"], "m.pt.meta.json", work, capsys)


# ---- teachers and students of the wrong kind ---------------------------------------------------

def test_a_teacher_of_another_image_shape_is_refused(work, capsys):
    from diffdistill.precond import build_denoiser, save_denoiser

    spec = {"net": "unet", "precond": "edm", "net_kwargs": {"img_resolution": 16, "img_channels": 3,
                                                            "model_channels": 8, "channel_mult": [1], "num_blocks": 1}}
    save_denoiser(work / "rgb.pt", build_denoiser(spec), spec)
    refused(["train", "pd", "--teacher", "rgb.pt", "--nfe", "2", "--iters", "1", "--quiet", "--out", "m.pt"],
            "3x16x16 images but the dataset holds 1x8x8", work, capsys)


def test_a_router_where_a_network_is_expected_is_refused(work, capsys):
    torch.save({"format": "diffdistill-checkpoint/2", "spec": {"kind": "router", "students": []},
                "state_dict": {}}, work / "router.pt")
    refused(["train", "o2mkd", "--teacher", "router.pt", "--num-students", "2", "--iters", "1", "--quiet",
             "--out", "m.pt"], "router model, not a plain denoiser", work, capsys)


# ---- third-party warnings never come before our line ---------------------------------------------

def test_a_code_carrying_checkpoint_is_one_line_without_torch_warnings(tmp_path, cli_env):
    torch.save({"spec": {}, "state_dict": {}, "x": _Obj()}, tmp_path / "code.pt")
    r = subprocess.run([str(VENV_BIN / "diffdistill"), *S[:2], "code.pt", *S[3:], "--out", "s.npz"], cwd=tmp_path,
                       env={**cli_env, "PYTHONWARNINGS": "default"}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("diffdistill sample: error: refusing code.pt"), r.stderr


class _Obj:
    pass
