"""O2MKD x SFD: one student per network step owns exactly that step's noise level, and
one optimisation step lowers SFD's loss on a fixed batch."""
import pytest
import torch

from conftest import SCHED, build_method, make_cache, save_tiny_teacher
from diffdistill.methods.o2sfd.train import step_boundaries
from diffdistill.schedules import edm_timesteps, num_timestamps


@pytest.mark.parametrize("nfe,afs", [(2, True), (3, True), (5, True), (3, False)])
def test_one_student_per_step_owns_its_step(nfe, afs):
    from diffdistill.nets.router import Router

    ts = edm_timesteps(num_timestamps(nfe, afs), **SCHED)
    evaluated = ts[1:-1] if afs else ts[:-1]
    bounds = step_boundaries(ts, afs, nfe, SCHED["rho"])
    router = Router([torch.nn.Identity()] * nfe, bounds)
    assert router.owner(evaluated.float()).tolist() == list(range(nfe))
    # fewer students: contiguous groups, as equal as possible, in step order
    if nfe >= 3:
        owners = Router([torch.nn.Identity()] * 2, step_boundaries(ts, afs, 2, SCHED["rho"])).owner(evaluated.float())
        assert owners.tolist() == sorted(owners.tolist()) and set(owners.tolist()) == {0, 1}


def test_one_o2sfd_step_lowers_its_loss(tmp_path):
    save_tiny_teacher(tmp_path / "t.pt")
    flags = make_cache(tmp_path / "t.pt", tmp_path / "c.pt", 3, num=16)
    m = build_method("o2sfd", ["--teacher", tmp_path / "t.pt", "--trajectories", tmp_path / "c.pt", "--nfe", 3,
                               "--student-kwargs", '{"model_channels": 8}', "--batch-size", 16, "--out",
                               tmp_path / "o.pt", *flags])
    assert len(m.model.students) == 3 and m.model.students[0].model.model_channels == 8
    traj = m.sfd.batches.states
    opt = torch.optim.Adam(m.model.parameters(), lr=1e-3)

    def loss_now():
        losses = []
        m.sfd.distill_batch(traj, lambda l: losses.append(l.item()))
        return sum(losses)

    def step(loss):
        opt.zero_grad()
        loss.backward()
        opt.step()

    m.model.train().requires_grad_(True)
    before = loss_now()
    m.sfd.distill_batch(traj, step)
    assert loss_now() < before
