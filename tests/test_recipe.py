"""Settings as typed values: a Schedule and a Recipe render to flags once and parse back
to the same value; checkpoints sample at the timestamps they record (a mismatch is one
line); a row samples and its metrics job checks the same seeds."""
import dataclasses
import subprocess

import pytest
import torch

from conftest import SCHED, VENV_BIN, save_tiny_teacher
from diffdistill.errors import UserError
from diffdistill.recipe import Recipe
from diffdistill.schedules import Schedule


def _parse(argv):
    from diffdistill.cli import build_parser
    return build_parser().parse_args(argv)


def test_schedule_flags_parse_back_to_the_same_schedule():
    s = Schedule(t_min=0.02, t_max=40.5, rho=5.0)
    args = _parse(["trajectories", "--teacher", "t.pt", "--nfe", "2", "--seeds", "0-3", "--out", "o.pt",
                   *s.to_flags().split()])
    assert Schedule.from_args(args) == s
    with pytest.raises(UserError, match="0 < t_min < t_max"):
        Schedule(t_min=1.0, t_max=0.5, rho=7.0)


@pytest.mark.parametrize("partial", [
    Recipe(solver="heun", nfe=7, afs=False, grid="edm_zero", schedule=Schedule(**SCHED)),
    Recipe(solver="dpmpp3m", nfe=5),
    Recipe(nfe=3),
])
def test_a_rows_partial_recipe_round_trips_through_the_sample_flags(partial):
    """What a row renders (`to_flags`) is what `diffdistill sample` parses back over the
    checkpoint's recipe (`from_args`), and the dict a profile job reads is the same."""
    base = Recipe(solver="euler", nfe=(2, 3), afs=True, grid="edm", final_step="force",
                  schedule=Schedule(t_min=0.01, t_max=80.0, rho=7.0), step_conditioning=True)
    args = _parse(["sample", "--model", "m.pt", "--seeds", "0-3", "--out", "s.npz", *partial.to_flags().split()])
    assert Recipe.from_args(args, base) == partial.over(base)
    assert Recipe.from_dict(partial.to_dict()) == partial


def test_checkpoint_recipes_round_trip_and_record_their_timesteps():
    r = Recipe(solver="euler", nfe=2, afs=True, grid="edm", final_step="force", schedule=Schedule(**SCHED))
    r = dataclasses.replace(r, timesteps=tuple(r.grid_timesteps().tolist()))
    d = r.to_dict()
    assert list(d) == ["solver", "nfe", "afs", "grid", "final_step", "t_min", "t_max", "rho", "timesteps"]
    assert Recipe.from_dict(d) == r
    assert torch.equal(r.sampling_timesteps(), r.grid_timesteps())
    # an override of what the timestamps follow drops the recorded ones; another setting keeps them
    assert Recipe(nfe=3).over(r).timesteps is None and Recipe(final_step="dpm").over(r).timesteps == r.timesteps


def test_sampling_refuses_a_checkpoint_whose_timesteps_disagree_with_its_recipe(tmp_path):
    from diffdistill.precond import read_checkpoint
    from diffdistill.files import torch_save

    save_tiny_teacher(tmp_path / "t.pt")
    ckpt = read_checkpoint(tmp_path / "t.pt")
    ts = Recipe(solver="euler", nfe=2, afs=False, grid="edm", final_step="force",
                schedule=Schedule(**SCHED)).grid_timesteps().tolist()
    ckpt["sampling"] = {"solver": "euler", "nfe": 2, "afs": False, "grid": "edm", "final_step": "force", **SCHED,
                        "timesteps": [ts[0], ts[1] * 1.01, ts[2]]}
    torch_save(tmp_path / "bad.pt", ckpt)
    r = subprocess.run([str(VENV_BIN / "diffdistill"), "sample", "--model", str(tmp_path / "bad.pt"), "--seeds",
                        "0-3", "--out", str(tmp_path / "s.npz"), "--quiet"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "records 3 timestamps" in r.stderr and "disagree" in r.stderr
    assert not (tmp_path / "s.npz").exists()


def test_a_row_samples_and_its_metrics_job_checks_the_same_seeds(tmp_path, cli_env):
    """In the workflow's plan, every row's sample command and metrics command name one
    seed list (Row.seeds), which the metrics job checks against samples.npz's seeds."""
    from conftest import copy_workflow

    copy_workflow(tmp_path)
    r = subprocess.run([str(VENV_BIN / "snakemake"), "-n", "-p", "--forceall",
                        "results/fid/students/sfd/default/nfe2/fid.json", "--configfile", "config/test.yaml"], cwd=tmp_path, env=cli_env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    cmds = [line.removeprefix("Shell command: ") for line in r.stdout.splitlines()
            if "students/sfd/default/nfe2" in line]
    sample = next(c for c in cmds if c.startswith("diffdistill sample"))
    fid = next(c for c in cmds if c.startswith("diffdistill fid"))
    seeds = sample.split("--seeds ")[1].split()[0]
    assert seeds == "0-399" and f"--seeds {seeds}" in fid  # test.yaml: 2 seed sets of 200


def test_t_last_puts_every_nfes_last_step_at_t_last():
    """With t_last the grid ramps from t_max to t_last (uniform in t^(1/rho)) and steps once
    to t_min: at NFE 2 with the paper's NFE-2 value (0.6699) it is the paper's NFE-2 grid,
    at every NFE the last network evaluation is at t_last; 0 keeps the paper's grids."""
    from diffdistill.methods.sfd.train import student_timesteps

    plain, last = Schedule(**SCHED), Schedule(**SCHED, t_last=0.6699)
    assert student_timesteps(2, True, last).tolist() == pytest.approx([80.0, 10.9293, 0.6699, 0.006], abs=1e-4)
    assert student_timesteps(3, True, plain).tolist() == pytest.approx([80.0, 19.0034, 3.1071, 0.2683, 0.006],
                                                                       abs=1e-4)
    for nfe in (3, 4, 5):
        ts = student_timesteps(nfe, True, last)
        assert len(ts) == nfe + 2 and ts[-2].item() == pytest.approx(0.6699) and ts[-1].item() == 0.006
        u = ts[:-1] ** (1 / 7)
        assert torch.allclose(u[1:] - u[:-1], (u[1] - u[0]).expand(nfe), rtol=1e-9)
    # 5 timestamps from 80 to 0.6699: the paper's NFE-5 grid without its 0.0936
    assert student_timesteps(4, True, last).tolist() == pytest.approx([80.0, 31.7298, 10.9293, 3.1071, 0.6699,
                                                                       0.006], abs=2e-4)
    with pytest.raises(UserError, match="t_min < t_last < t_max"):
        Schedule(**SCHED, t_last=0.001)


def test_t_last_travels_with_the_schedule_and_is_left_out_when_off():
    """t_last round-trips through flags, a checkpoint's recipe and the CLI; off (0) it is
    in none of them, so the plain schedule's names and recipes stay as they were."""
    last = Schedule(t_min=0.02, t_max=40.5, rho=5.0, t_last=0.5)
    args = _parse(["trajectories", "--teacher", "t.pt", "--nfe", "2", "--seeds", "0-3", "--out", "o.pt",
                   *last.to_flags().split()])
    assert Schedule.from_args(args) == last
    r = Recipe(solver="euler", nfe=3, afs=True, grid="edm", final_step="force", schedule=last)
    assert Recipe.from_dict(r.to_dict()) == r and r.to_dict()["t_last"] == 0.5
    plain = dataclasses.replace(last, t_last=0.0)
    assert "t_last" not in plain.to_dict() and "--t-last" not in plain.to_flags()
    base = Recipe(solver="euler", nfe=3, afs=True, grid="edm", final_step="force", schedule=last)
    given = _parse(["sample", "--model", "m.pt", "--seeds", "0-3", "--out", "s.npz", "--nfe", "4"])
    assert Recipe.from_args(given, base).schedule == last  # a checkpoint's t_last is kept when not given
