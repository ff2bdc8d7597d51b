"""The method layer: the registry, options that mirror the schema, the runner's resume
check, trajectory caches checked against their key, recipes in checkpoints, and every
training command's device flags."""
import json
import re
import subprocess

import pytest
import torch

from conftest import ROOT, VENV_BIN, build_method, copy_workflow, make_cache, parse, save_tiny_teacher, training_flags
from diffdistill.config import schema_default
from diffdistill.errors import UserError

TRAINING = ["teacher", "sfd", "sfdv", "sfd2", "pd", "o2mkd"]


def _actions(argv):
    """The argparse actions of the subcommand `argv` names."""
    from diffdistill.cli import build_parser
    p = build_parser()
    for word in argv:
        sub = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction")
        p = sub.choices[word]
    return {s: a for a in p._actions for s in a.option_strings}


def test_every_method_is_registered_and_the_model_kinds_live_in_nets():
    from diffdistill import methods
    from diffdistill.nets import KINDS

    assert set(TRAINING) <= set(methods.load_all())
    assert {"router", "stepcond"} <= set(KINDS)


@pytest.mark.parametrize("method", TRAINING)
def test_every_training_command_takes_device_and_amp(method):
    acts = _actions(["train", method])
    assert acts["--device"].choices == ("cpu", "cuda") and acts["--device"].default == "cpu"
    assert "--amp" in acts and "--restart" in acts


def test_profile_and_evaluation_commands_take_device():
    for cmd in ("profile", "sample", "fid", "trajectories", "ref-stats", "train-featnet"):
        assert "--device" in _actions([cmd]), cmd


def test_dead_options_are_gone():
    assert "--method" not in _actions(["train", "sfd"])
    assert not {"--K", "--solver", "--final-step", "--thresholding"} - set(_actions(["train", "sfdv"]))  # now used
    assert "--pd-grid" not in _actions(["sample"]) and "--append-zero" not in _actions(["sample"])


@pytest.mark.parametrize("method", TRAINING)
def test_training_options_pass_through_torchrun(method):
    """Under torchrun (several GPUs) our flags follow the script name; torchrun's argparse
    still matches them against its own options, abbreviations included."""
    from torch.distributed.run import get_args_parser

    theirs = [s for a in get_args_parser()._actions for s in a.option_strings if s.startswith("--")]
    for ours in set(_actions(["train", method])) - {"--help"}:
        assert not any(t.startswith(ours) for t in theirs), (ours, [t for t in theirs if t.startswith(ours)])


def test_enumerated_options_use_choices_and_show_defaults():
    acts = _actions(["train", "sfd"])
    assert acts["--solver"].choices and "heun" in acts["--solver"].choices
    assert acts["--loss"].choices == ("l1", "l2") and acts["--final-step"].choices == ("force", "dpm", "off")
    assert "--solver" in _actions(["sample"]) and "euler" in _actions(["sample"])["--solver"].choices


def test_workflow_flags_have_no_default_that_differs_from_the_schema(tmp_path, cli_env):
    """Every flag the workflow passes (dry run of the tiny config, shell commands printed)
    is required, or mirrors a schema key whose default it takes."""
    copy_workflow(tmp_path)
    r = subprocess.run([str(VENV_BIN / "snakemake"), "-n", "-p", "all", "--configfile", "config/test.yaml"],
                       cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    commands = re.findall(r"diffdistill ((?:train \w+|[\w-]+)) (.*?) 2>", r.stdout)
    assert {c for c, _ in commands} >= {f"train {m}" for m in TRAINING if m != "teacher"} | {"sample", "fid"}
    unkeyed_ok = {"--teacher", "--trajectories", "--curve-out", "--ref", "--featnet", "--model", "--seeds", "--row",
                  "--samples", "--png", "--solver", "--nfe", "--afs", "--grid", "--t-min", "--t-max", "--rho", "--t-last",
                  "--threads", "--quiet", "--out", "--floor-out", "--models", "--teacher-afs", "--default", "--profile", "--floor", "--seed-sets", "--noise-floor", "--rows",
                  "--teacher-samples", "--teacher-features", "--features-out", "--bias-from",
                  "--plateau-tol"}  # convergence.tol of the method's monitored value
    checked = 0
    for cmd, rest in commands:
        if cmd in ("table", "ablation-table", "claims", "claims-plan", "figures"):  # result files only, no settings
            continue
        acts = _actions(cmd.split())
        for flag in re.findall(r"(?:^| )(--[a-z][\w-]*)", rest):
            a = acts[flag]
            key = getattr(a, "config_key", None)
            if key:
                assert a.default == schema_default(key), (cmd, flag, a.default, schema_default(key))
                checked += 1
            else:
                assert a.required or flag in unkeyed_ok, (cmd, flag)
    assert checked > 50


def test_stale_resume_point_with_other_settings_is_refused(tmp_path, cli_env):
    out = tmp_path / "t" / "model.pt"
    base = [str(VENV_BIN / "diffdistill"), "train", "teacher", "--net-kwargs", '{"model_channels": 8, "num_blocks": 1}',
            "--iters", "20", "--ckpt-every", "5", "--batch-size", "8", "--quiet", "--out", str(out)]
    r = subprocess.run(base + ["--max-iters-this-run", "10"], env=cli_env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 3 and (out.parent / "resume.pt").exists(), r.stderr
    r = subprocess.run(base + ["--lr", "0.5", "--seed", "7"], env=cli_env, capture_output=True, text=True, timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "lr: 0.002 -> 0.5" in lines[0] and "seed: 0 -> 7" in lines[0] and "--restart" in lines[0]
    assert not out.exists()
    r = subprocess.run(base + ["--lr", "0.5", "--seed", "7", "--restart"], env=cli_env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "resuming" not in r.stderr, r.stderr
    meta = json.loads(out.with_name("model.pt.meta.json").read_text())
    assert meta["resumed_from"] == 0 and meta["args"]["lr"] == 0.5


def test_mismatched_trajectory_cache_is_refused(tmp_path):
    save_tiny_teacher(tmp_path / "t.pt")
    flags = make_cache(tmp_path / "t.pt", tmp_path / "c3.pt", 3)  # an NFE-3 cache
    args = ["--teacher", tmp_path / "t.pt", "--trajectories", tmp_path / "c3.pt", "--batch-size", 4,
            "--out", tmp_path / "s.pt"]
    with pytest.raises(UserError, match=r"c3.pt was made with other settings: timesteps"):
        build_method("sfd", args + ["--nfe", 2] + flags)  # ... given to an NFE-2 student
    with pytest.raises(UserError, match=r"solver 'dpmpp3m' \(asked for 'euler'\), K 2 \(asked for 5\)"):
        build_method("sfd", args + ["--nfe", 3] + flags + ["--solver", "euler", "--K", 5])
    save_tiny_teacher(tmp_path / "other.pt", seed=1)
    with pytest.raises(UserError, match=r"teacher_sha256"):
        build_method("sfd", ["--teacher", tmp_path / "other.pt", "--trajectories", tmp_path / "c3.pt", "--nfe", 3,
                             "--out", tmp_path / "s.pt"] + flags)
    build_method("sfd", args + ["--nfe", 3] + flags)  # the settings it was made with: accepted


def test_student_records_its_cache_settings_and_recipe(tmp_path):
    from diffdistill.methods import get
    from diffdistill.precond import load_checkpoint
    from diffdistill.runner import run

    save_tiny_teacher(tmp_path / "t.pt")
    flags = make_cache(tmp_path / "t.pt", tmp_path / "c.pt", 2, K=2)
    args = parse(["train", "sfd", "--teacher", tmp_path / "t.pt", "--trajectories", tmp_path / "c.pt", "--nfe", 2,
                  "--iters", 2, "--batch-size", 4, "--quiet", "--out", tmp_path / "s/model.pt"] + flags)
    assert run(get("sfd"), args) == 0
    meta = json.loads((tmp_path / "s/model.pt.meta.json").read_text())
    assert meta["args"]["K"] == 2 and meta["method"] == "sfd" and meta["iterations"] == 2
    assert "method" not in meta["args"] and "func" not in meta["args"]
    _, ckpt = load_checkpoint(tmp_path / "s/model.pt")
    assert ckpt["sampling"]["solver"] == "euler" and ckpt["sampling"]["nfe"] == 2 and ckpt["sampling"]["afs"]
    assert len(ckpt["sampling"]["timesteps"]) == 4


def test_older_checkpoints_are_refused_in_one_line(tmp_path):
    from diffdistill.precond import load_denoiser
    from diffdistill.trajectories import load_cache

    torch.save({"spec": {}, "state_dict": {}}, tmp_path / "old.pt")
    with pytest.raises(UserError, match=r"older diffdistill.*rerun the rule"):
        load_denoiser(tmp_path / "old.pt")
    torch.save({"states": torch.zeros(1), "timesteps": torch.zeros(2)}, tmp_path / "oldtraj.pt")
    with pytest.raises(UserError, match=r"not a trajectory cache of this version"):
        load_cache(tmp_path / "oldtraj.pt")


def test_o2mkd_builds_students_from_an_edm_songunet_teacher(tmp_path):
    from diffdistill.edm_import import import_edm_pickle

    import_edm_pickle(ROOT / "tests/fixtures/edm/network.pkl", tmp_path / "edm.pt")
    m = build_method("o2mkd", ["--teacher", tmp_path / "edm.pt", "--num-students", 2, "--dataset", "npz",
                               "--dataset-path", _npz(tmp_path, 3, 16), "--student-kwargs", '{"model_channels": 8}',
                               "--batch-size", 4, "--init", "scratch", "--out", tmp_path / "o.pt"])
    student = m.model.students[0].model
    assert type(student).__name__ == "SongUNet" and student.enc["16x16_conv"].weight.shape[0] == 8
    losses = []
    m.train_step(0, torch.Generator().manual_seed(0), lambda loss: losses.append(loss.item()))
    assert losses and losses[0] == losses[0]


def _npz(tmp_path, c, res):
    import numpy as np
    path = tmp_path / "data.npz"
    np.savez(path, images=np.random.default_rng(0).integers(0, 255, (8, c, res, res), dtype=np.uint8))
    return path


def test_students_from_the_teacher_need_a_unet(tmp_path):
    from diffdistill.edm_import import import_edm_pickle

    import_edm_pickle(ROOT / "tests/fixtures/edm/network.pkl", tmp_path / "edm.pt")
    with pytest.raises(UserError, match="init scratch"):
        build_method("o2mkd", ["--teacher", tmp_path / "edm.pt", "--num-students", 2, "--dataset", "npz",
                               "--dataset-path", _npz(tmp_path, 3, 16), "--init", "teacher", "--out", tmp_path / "o.pt"])


def test_a_training_rule_gets_its_flags_from_the_config_sections_it_reads():
    """train_args (workflow/rules/common.smk): the flags come from the sections the
    method reads (`config_keys`), every setting of its own section included, declared once."""
    from types import SimpleNamespace

    from diffdistill import methods

    cfg = methods.validate({})
    keys = methods.config_keys(methods.get("pd"))
    assert set(keys) >= {"seed", "device", "dataset", "schedule", "pd"}
    flags = training_flags("pd", cfg, SimpleNamespace(nfe="2"), SimpleNamespace(teacher="t.pt", ref="r.npz"),
                           SimpleNamespace(model="m.pt", curve="c.json"))
    assert "--t-min 0.006" in flags and f"--lr {cfg['pd']['lr']}" in flags
    assert f"--curve-sample-steps {cfg['pd']['curve_sample_steps']}" in flags  # a pd key, from the schema alone



def test_every_method_reads_only_its_typed_settings():
    """A method receives its command's frozen settings (one typed field per option: its own,
    every key of its config section but `plan_only`, the runner's); every `settings.<name>` its
    modules read is one of those fields, and every key of its section reaches it."""
    import dataclasses
    import inspect
    import re
    from pathlib import Path

    from diffdistill import methods
    from diffdistill.config import schema_node
    from diffdistill.options import settings_class

    for name, cls in methods.load_all().items():
        opts = cls.command_options()
        fields = {f.name: f for f in dataclasses.fields(settings_class(name, opts))}
        assert list(fields) == [o.name for o in opts], name
        with pytest.raises(dataclasses.FrozenInstanceError):
            settings_class(name, opts)(**{k: None for k in fields}).seed = 1
        section = schema_node(cls.section)["properties"]
        keyed = {o.key.split(".", 1)[1] for o in opts if o.key and o.key.startswith(f"{cls.section}.")}
        unkeyed = {o.name for o in cls.options if not o.key}
        missing = {k for k, node in section.items() if k not in keyed | unkeyed | set(cls.plan_only)
                   and k != "enabled" and "properties" not in node}
        assert not missing, (name, missing)
        # its modules, and the interface's curve code where it has a validation curve
        files = {Path(inspect.getfile(k)) for k in cls.__mro__ if k.__module__.startswith("diffdistill.methods.")
                 and (cls.curves or k.__module__ != "diffdistill.methods.base")}
        read = {a for f in files for a in re.findall(r"\bsettings\.(\w+)", f.read_text())}
        allowed = set(fields) | {"curve_nfe"}  # the curve's NFE, for a method without one
        if name == "sfd2":  # it hands SFD's own settings to SFD (its stage-1 sampler)
            allowed |= {o.name for o in methods.get("sfd").command_options()}
        assert read <= allowed, (name, read - allowed)


def test_no_training_command_can_get_an_empty_list():
    """A keyed option of a training command takes its config value as flags: an empty list
    (a table's column list set to []) would leave its flag without an argument. Every list
    setting that reaches a command needs at least one item; table-only lists are `plan_only`."""
    from diffdistill import methods
    from diffdistill.config import schema_node

    for cls in methods.load_all().values():
        for o in cls.command_options():
            node = schema_node(o.key) if o.key else {}
            # sfdv.nfe: the NFE its one model serves; with none it has no row, so no job
            if node.get("type") == "array" and o.key != "sfdv.nfe":
                assert node.get("minItems", 0) >= 1, (cls.name, o.key)


def test_a_method_written_as_one_module_has_no_claims(monkeypatch):
    """Method.claims reads CLAIMS of the report module beside the class's own module; a
    method that is one module (methods/<name>.py, as the new-method test writes) has none
    unless it overrides the hook (CD's two claims), and the claims table still gathers
    every other method's."""
    import sys
    import types

    from diffdistill import methods
    from diffdistill.methods.base import Method

    monkeypatch.setitem(sys.modules, "diffdistill.methods.widthkd", types.ModuleType("diffdistill.methods.widthkd"))
    one = type("WidthKD", (Method,), {"name": "widthkd", "__module__": "diffdistill.methods.widthkd"})
    assert one.claims() == []
    assert len(methods.all_claims()) == 14 and methods.get("sfd").claims() and len(methods.get("cd").claims()) == 2
