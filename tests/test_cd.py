"""Consistency distillation / ECT (diffdistill.methods.cd): the boundary condition, the
teacher step of its target, one update, and the consistency sampler."""
from __future__ import annotations

import pytest
import torch

from conftest import build_method, save_tiny_teacher, tiny_denoiser
from diffdistill.errors import UserError
from diffdistill.methods.cd import ect_r, karras_pairs, teacher_step
from diffdistill.precond import CMPrecond
from diffdistill.sampling import generate_images
from diffdistill.schedules import Schedule, timesteps
from diffdistill.solvers import euler

S = 0.5  # std of the analytic Gaussian data


def gaussian_denoiser(x, t):
    """The exact denoiser of data ~ N(0, S^2 I) at noise level t."""
    t = torch.as_tensor(t, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    return S ** 2 / (S ** 2 + t ** 2) * x


@pytest.mark.parametrize("base", ["edm", "vp"])
def test_the_consistency_model_is_the_identity_at_t_min_exactly(base):
    net = tiny_denoiser(0).model
    with torch.no_grad():  # away from the zero-initialised output layer
        for p in net.parameters():
            p.normal_(0, 0.05, generator=torch.Generator().manual_seed(3))
    f = CMPrecond(net, sigma_data=0.5, t_min=0.002, base=base)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 3
    assert torch.equal(f(x, torch.full((4,), 0.002)), x)
    assert not torch.allclose(f(x, torch.full((4,), 0.5)), x)  # away from the boundary the network acts
    assert list(f.state_dict()) == list(tiny_denoiser(0).state_dict())  # the backbone's weights, once


def test_on_an_edm_base_it_is_the_papers_parametrisation():
    """c_skip x + c_out F with F the backbone's output on EDM's inputs (c_in, c_noise)."""
    net = tiny_denoiser(0)
    f = CMPrecond(net.model, sigma_data=0.5, t_min=0.002)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2)) * 2
    t = torch.tensor([0.01, 0.7, 20.0]).reshape(-1, 1, 1, 1)
    F = net.model(x / (t ** 2 + 0.25).sqrt(), (t.log() / 4).flatten())
    want = 0.25 / ((t - 0.002) ** 2 + 0.25) * x + 0.5 * (t - 0.002) / (t ** 2 + 0.25).sqrt() * F
    assert torch.allclose(f(x, t.flatten()), want, atol=1e-5, rtol=1e-5)


def test_the_cd_target_is_one_teacher_euler_step_on_the_analytic_gaussian():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 1, 8, 8, generator=g) * 3
    t = torch.tensor([3.0, 1.0, 0.5, 0.2, 10.0, 80.0]).reshape(-1, 1, 1, 1)
    r = t * 0.9
    got = teacher_step(gaussian_denoiser, x, t, r, "euler")
    assert torch.equal(got, euler(x, t, r, gaussian_denoiser(x, t.flatten())))
    # and it follows the exact probability-flow ODE of the Gaussian, x(r) = x sqrt((S^2 + r^2) / (S^2 + t^2)),
    # to second order in the gap: Heun closer than Euler
    exact = x * ((S ** 2 + r ** 2) / (S ** 2 + t ** 2)).sqrt()
    err_euler = (got - exact).abs().max()
    err_heun = (teacher_step(gaussian_denoiser, x, t, r, "heun") - exact).abs().max()
    assert err_heun < err_euler < 0.05 * exact.abs().max()


def test_the_pairs_lie_below_t_and_above_zero():
    t = torch.tensor([0.01, 0.5, 2.0, 80.0])
    r = ect_r(t, q=2.0, stage=0)
    assert ((r < t) & (r >= 0)).all()
    assert (ect_r(t, 2.0, 3) > r).all()  # a later stage narrows the gap
    tt, rr = karras_pairs(torch.arange(17), 0.002, 80.0, 7.0, 18)
    assert torch.allclose(rr[1:], tt[:-1]) and abs(float(rr[0]) - 0.002) < 1e-6 and abs(float(tt[-1]) - 80) < 1e-3


@pytest.mark.parametrize("target", ["ct", "cd"])
def test_one_training_step_lowers_the_loss_on_a_toy_batch(tmp_path, target):
    teacher = tmp_path / "teacher.pt"
    save_tiny_teacher(teacher, std=0.05)
    m = build_method("cd", ["--teacher", str(teacher), "--out", str(tmp_path / "m.pt"), "--target", target,
                            "--batch-size", "16"])
    g = torch.Generator().manual_seed(0)
    y = m.images[:16]
    t, r = (v.reshape(-1, 1, 1, 1) for v in m.pairs(16, 0, g))
    eps = torch.randn(y.shape, generator=g)
    opt = torch.optim.SGD(m.model.parameters(), lr=1e-3)
    before = m.loss(y, t, r, eps)
    opt.zero_grad()
    before.backward()
    opt.step()
    assert float(m.loss(y, t, r, eps).detach()) < float(before.detach())
    # the student started as the teacher's backbone under the consistency parametrisation
    assert m.spec["precond"] == "cm" and m.spec["precond_kwargs"]["t_min"] == 0.002


def test_the_consistency_sampler_renoises_with_each_seeds_own_noise():
    model = CMPrecond(tiny_denoiser(0).model, t_min=0.002).eval()
    sched = Schedule(t_min=0.002, t_max=80.0, rho=7.0, t_last=0.821)
    ts1, ts2 = (timesteps("cm", n, False, "cm", sched) for n in (1, 2))
    assert ts1.tolist() == [80.0, 0.0] and torch.allclose(ts2, torch.tensor([80.0, 0.821, 0.0], dtype=ts2.dtype))
    seeds = list(range(6))
    one = generate_images(model, seeds, ts1, "cm", img_shape=(1, 8, 8), progress=False)
    with torch.no_grad():
        from diffdistill.seeding import noise_for_seeds
        z = noise_for_seeds(seeds, (1, 8, 8)) * 80.0
        assert torch.allclose(one, model(z, torch.tensor(80.0)))  # NFE 1: f(t_max z)
    two = generate_images(model, seeds, ts2, "cm", batch_size=6, img_shape=(1, 8, 8), progress=False)
    split = generate_images(model, seeds, ts2, "cm", batch_size=4, img_shape=(1, 8, 8), progress=False)
    assert torch.equal(two, split)  # an image depends on its seed only, not on the batch
    assert not torch.allclose(two, one)
    with pytest.raises(UserError, match="t_last"):
        timesteps("cm", 2, False, "cm", Schedule(t_min=0.002, t_max=80.0, rho=7.0))


def _row(name, sets):
    return {"name": name, "fid_inf": sum(sets) / len(sets), "fid_inf_sets": sets}


def test_the_equal_time_claims_pair_the_final_models_where_the_run_fits_its_budget():
    """Within the budget the claim reads the final models, paired over the evaluation seed
    sets; a run that took longer is read on its curve at the budget; no timings: not
    measured."""
    from diffdistill.claims import decide, better
    from diffdistill.claims_table import Data
    from diffdistill.methods.cd import CD

    ect_claim, cd_claim = CD.claims()
    d = Data.__new__(Data)
    d.by_name = {"students/sfd/default/nfe2": _row("students/sfd/default/nfe2", [5.0, 6.0, 5.5, 6.5, 5.2]),
                 "students/cd/ct/nfe2": _row("students/cd/ct/nfe2", [3.0, 4.1, 3.4, 4.4, 3.3]),
                 "students/cd/cd/nfe2": _row("students/cd/cd/nfe2", [9.0, 9.8, 9.6, 10.4, 9.1])}
    d.benchmark = {"config_seconds": {"sfd": 100.0, "ct": 150.0, "cd": 90.0}}
    text, v = ect_claim.ours(d)
    assert "final models" in text and v["d"]["diff"] == pytest.approx(2.0) and v["d"]["sets"] == 5
    assert decide(better(v)) == "holds"
    text, v = cd_claim.ours(d)  # CD minus SFD: positive, SFD better at equal time
    assert v["d"]["diff"] == pytest.approx(3.94) and decide(better(v)) == "holds"
    d.benchmark = {"config_seconds": {"sfd": 100.0, "ct": 250.0, "cd": 90.0},
                   "at_budget": {"ct@1.6": {"diff": -1.0, "se": 0.5, "df": 1000.0, "t": -2.0, "p": 0.05}}}
    text, v = ect_claim.ours(d)
    assert "curve" in text and v["d"]["diff"] == -1.0
    d.benchmark = None
    assert ect_claim.ours(d) is None
