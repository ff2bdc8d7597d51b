"""benchmarks/sfd_gap: the decomposition names the step that makes a student's gap.

A synthetic teacher trajectory is built with Euler steps (AFS first) of a known denoiser;
the same denoiser reproduces it exactly from every start, and a denoiser wrong at one
timestamp shows its error from that step on and nowhere before it."""
import sys

import pytest
import torch
from conftest import ROOT

sys.path.insert(0, str(ROOT))
from benchmarks.sfd_gap import contrast, decompose  # noqa: E402
from diffdistill.solvers import sample  # noqa: E402

TS = [80.0, 19.0034, 3.1071, 0.2683, 0.006]  # SFD's NFE-3 timestamps


def exact(x, t):
    return x * 0.25 / (t * t + 0.25)


def trajectory(n=64):
    x = torch.randn(n, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * TS[0]
    states = [x]
    sample(exact, x, TS, afs=True, callback=lambda i, x, t, t_next, d, x_next: states.append(x_next))
    return torch.stack(states, 1)


def test_the_teachers_own_steps_have_no_gap_from_any_start():
    parts = decompose(exact, trajectory(), TS)
    assert [f["step"] for f in parts["forced"]] == [1, 2, 3]  # AFS: step 0 has no network
    assert all(f["rmse"] < 1e-6 for f in parts["forced"])
    assert [h["start"] for h in parts["hybrids"]] == [0, 1, 2, 3]
    assert all(v < 1e-5 for h in parts["hybrids"] for v in h["path"])


@pytest.mark.parametrize("bad", [1, 2, 3])
def test_an_error_at_one_step_shows_from_that_step_on(bad):
    def wrong(x, t):
        return exact(x, t) + (0.1 if abs(float(t) - TS[bad]) < 1e-3 else 0.0)

    parts = decompose(wrong, trajectory(), TS)
    assert [f["rmse"] > 1e-3 for f in parts["forced"]] == [i == bad for i in (1, 2, 3)]
    for h in parts["hybrids"]:
        for i, v in zip(range(h["start"], len(TS) - 1), h["path"]):  # v: RMSE at timestamp i + 1
            assert (v > 1e-3) == (h["start"] <= bad <= i), (h["start"], i, v)


def test_contrast_slope_reads_a_shrunk_image_below_one():
    target = trajectory()[:, -1].clamp(-1, 1)
    c = contrast(target.mean() + 0.9 * (target - target.mean()), target)
    assert c["slope"] == pytest.approx(0.9)
    assert c["sharpness"] == pytest.approx(0.81 * c["target sharpness"])
