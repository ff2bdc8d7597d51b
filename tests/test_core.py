"""Preconditioning limits, per-seed determinism, SFD's optimisation step, config errors."""
import copy
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT, SCHED, assert_close_f32, tiny_denoiser
from diffdistill.errors import UserError


def _randomise(model):
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    return model


def test_edm_preconditioning_limits():
    D = _randomise(tiny_denoiser())
    x = torch.randn(4, 1, 8, 8)
    # sigma -> 0: c_skip -> 1, c_out -> 0, so D(x) -> x whatever the network says
    assert torch.allclose(D(x, torch.full((4,), 1e-6)), x, atol=1e-5)
    # sigma -> inf: c_skip -> 0 and c_in * x stays O(1), so D stays bounded, not ~x
    big = 1e4
    out = D(x * big, torch.full((4,), big))
    assert out.abs().max() < 10 * D.sigma_data
    # at sigma = sigma_data the skip and the network weigh the same
    sd = D.sigma_data
    assert abs(sd ** 2 / (sd ** 2 + sd ** 2) - 0.5) < 1e-12


def test_vp_preconditioning_limits():
    from diffdistill.nets.unet import UNet
    from diffdistill.precond import VPPrecond

    D = _randomise(VPPrecond(UNet(img_resolution=8, img_channels=1, model_channels=16, num_blocks=1)))
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(D(x, torch.full((2,), 1e-6)), x, atol=1e-4)  # c_skip = 1, c_out = -sigma
    assert abs(float(D.sigma_inv(D.sigma(torch.tensor(0.3)))) - 0.3) < 1e-6


def test_seed_determinism_across_batch_sizes():
    from diffdistill.sampling import generate_images
    from diffdistill.schedules import edm_timesteps
    from diffdistill.seeding import noise_for_seeds

    seeds = list(range(10, 22))
    assert torch.equal(noise_for_seeds(seeds, (1, 8, 8))[5], noise_for_seeds([seeds[5]], (1, 8, 8))[0])
    D = _randomise(tiny_denoiser())
    ts = edm_timesteps(4, **SCHED)
    kw = dict(solver="dpmpp3m", afs=True, img_shape=(1, 8, 8), progress=False)
    a = generate_images(D, seeds, ts, batch_size=12, **kw)
    b = generate_images(D, seeds, ts, batch_size=5, **kw)
    c = generate_images(D, seeds[7:8], ts, batch_size=1, **kw)
    # other batch sizes round float32 differently (GEMM blocking), over several solver steps
    assert_close_f32(a, b, ulps=128)
    assert_close_f32(a[7], c[0], ulps=128)
    assert not torch.allclose(a[0], a[1])


def _sfd_batches(student, traj, ts, batch_size, afs=True, loss="l1"):
    from types import SimpleNamespace

    from diffdistill.methods.sfd.train import SFDBatches
    from diffdistill.trajectories import TrajectoryBatches

    return SFDBatches(SimpleNamespace(train_model=student), TrajectoryBatches(states=traj), ts, batch_size, afs, loss)


def test_sfd_step_lowers_loss_on_fixed_batch():
    from diffdistill.schedules import edm_timesteps
    from diffdistill.trajectories import generate

    teacher = tiny_denoiser()
    ts = edm_timesteps(4, **SCHED)
    traj = generate(teacher, list(range(64)), ts, 2, "dpmpp3m", "force", True, SCHED["rho"], batch_size=64,
                    img_shape=(1, 8, 8), progress=False)
    # a perturbed student must be pulled back towards the teacher's trajectory
    student = copy.deepcopy(teacher).requires_grad_(True)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    sfd = _sfd_batches(student, traj, ts, 64)
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)

    def opt_step(loss):
        opt.zero_grad()
        loss.backward()
        opt.step()

    def loss_now():
        losses = []
        sfd.distill_batch(traj, lambda l: losses.append(l.item()))
        return sum(losses)

    before = loss_now()
    for _ in range(3):
        sfd.distill_batch(traj, opt_step)
    assert loss_now() < before


def test_trajectories_land_on_student_timestamps():
    from diffdistill.schedules import edm_timesteps
    from diffdistill.trajectories import generate

    teacher = tiny_denoiser()
    ts = edm_timesteps(4, **SCHED)
    kw = dict(solver="dpmpp3m", final_step="force", thresholding=True, rho=SCHED["rho"], img_shape=(1, 8, 8),
              progress=False)
    traj = generate(teacher, [1, 2, 3], ts, 4, **kw)
    assert traj.shape == (3, 4, 1, 8, 8)
    again = generate(teacher, [2], ts, 4, **kw)
    assert_close_f32(traj[1], again[0], ulps=128)


def _schema():
    from diffdistill.config import load_schema
    return load_schema()


def test_config_defaults_and_unknown_key():
    from diffdistill.config import validate

    cfg = validate(yaml.safe_load((ROOT / "config/config.yaml").read_text()), _schema())
    assert cfg["sfd"]["loss"] == "l1" and cfg["schedule"]["t_min"] == 0.006
    assert validate({}, _schema())["trajectories"]["K"] == 4  # every key has a default
    with pytest.raises(UserError, match=r"unknown config key 'sfd.lrr'; did you mean 'lr'"):
        validate({"sfd": {"lrr": 1}}, _schema())
    with pytest.raises(UserError, match=r"'trajectories.K'"):
        validate({"trajectories": {"K": "four"}}, _schema())


def test_every_schema_key_has_type_description_default():
    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            for field in ("description", "default"):
                assert field in sub, f"{path}{key} lacks {field}"
            assert "type" in sub or "enum" in sub, f"{path}{key} lacks a type"
            walk(sub, f"{path}{key}.")
    walk(_schema(), "")


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    from diffdistill.cli import main

    rc = main(["sample", "--model", str(tmp_path / "missing.pt"), "--nfe", "2", "--seeds", "0-3",
               "--out", str(tmp_path / "s.npz")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "missing.pt" in err
    assert not (tmp_path / "s.npz").exists()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    rc = main(["sample", "--model", str(bad), "--nfe", "2", "--seeds", "0-3", "--out", str(tmp_path / "s.npz")])
    assert rc == 2 and "bad.pt" in capsys.readouterr().err


def test_a_checkpoint_written_twice_is_the_same_bytes(tmp_path):
    """files.torch_save is atomic (a temporary name, then a rename) and reproducible: the
    archive's inner folder does not carry the random temporary name."""
    from diffdistill.files import torch_save

    obj = {"w": torch.arange(6.0).reshape(2, 3), "spec": {"net": "unet"}}
    torch_save(tmp_path / "a.pt", obj)
    torch_save(tmp_path / "b.pt", obj)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
