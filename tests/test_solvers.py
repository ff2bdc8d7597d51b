"""Solvers against data from a Gaussian, whose denoiser and exact ODE solution are
closed-form: x0 ~ N(mu, s^2) gives D(x; t) = mu + s^2 / (s^2 + t^2) (x - mu) and
x(t) - mu = (x(T) - mu) * sqrt((s^2 + t^2) / (s^2 + T^2))."""
import math

import pytest
import torch

from conftest import SCHED

from diffdistill.schedules import edm_timesteps, num_timestamps, refine
from diffdistill.solvers import CountingDenoiser, sample, step_order, SOLVER_NAMES, SOLVERS

MU, S = 0.3, 0.5


def gauss_denoise(x, t):
    return MU + S ** 2 / (S ** 2 + t ** 2) * (x - MU)


def exact(x_T, T, t):
    return MU + (x_T - MU) * math.sqrt((S ** 2 + t ** 2) / (S ** 2 + T ** 2))


def global_error(solver, n, afs=False, final_step="off", t_max=5.0, t_min=0.05):
    torch.manual_seed(0)
    x_T = torch.randn(16, dtype=torch.float64) * t_max
    ts = edm_timesteps(n, t_min, t_max, rho=1.0).tolist()  # uniform steps: clean orders
    out = sample(gauss_denoise, x_T.clone(), ts, solver=solver, afs=afs, final_step=final_step)
    return (out - exact(x_T, t_max, t_min)).abs().max().item()


def local_error(solver, order, h, t0=1.0):
    """One step at the given order from exact states (exact history on a uniform grid)."""
    step, _ = SOLVERS[solver]
    x_T = torch.linspace(-3, 3, 7, dtype=torch.float64)
    ts = [t0 + (order - 1 - k) * h for k in range(order)]  # oldest .. current
    hist = [(t, exact(x_T, 10.0, t), gauss_denoise(exact(x_T, 10.0, t), t)) for t in ts]
    t_cur, x = ts[-1], hist[-1][1]
    x_next = step(x, t_cur, t_cur - h, hist, order, gauss_denoise)
    return (x_next - exact(x_T, 10.0, t_cur - h)).abs().max().item()


@pytest.mark.parametrize("solver,order,expected", [
    ("euler", 1, 1), ("heun", 1, 2), ("dpmpp2m", 2, 2), ("dpmpp3m_exact", 3, 3),
    ("ipndm", 2, 2), ("ipndm", 3, 3), ("ipndm", 4, 4),
    # the reference DPM-Solver++(3M) update: third-order stencil, second-order accuracy
    ("dpmpp3m", 3, 2)])
def test_local_truncation_order(solver, order, expected):
    hs = [0.04, 0.02, 0.01]
    errs = [local_error(solver, order, h) for h in hs]
    slope = math.log2(errs[-2] / errs[-1])
    # the local error of an order-p step is O(h^(p+1))
    assert abs(slope - (expected + 1)) < 0.3, (errs, slope)


def test_reference_3m_still_beats_2m():
    assert local_error("dpmpp3m", 3, 0.02) < local_error("dpmpp2m", 2, 0.02) / 5


@pytest.mark.parametrize("solver,order", [("euler", 1), ("heun", 2)])
def test_global_order_single_step(solver, order):
    errs = [global_error(solver, n) for n in (21, 41, 81)]
    slope = math.log2(errs[1] / errs[2])
    assert abs(slope - order) < 0.2, (errs, slope)


@pytest.mark.parametrize("solver", ["dpmpp2m", "dpmpp3m", "dpmpp3m_exact", "ipndm"])
def test_multistep_global_order(solver):
    # the first-order warm-up step caps the asymptotic global order at 2; the error must
    # fall quadratically and stay far below Euler's
    e = [global_error(solver, n) for n in (81, 161, 321)]
    assert math.log2(e[1] / e[2]) > 1.8, e
    assert e[2] < global_error("euler", 321) / 5


def test_step_order_rules():
    # forced: the last steps lower their order whatever the step count
    assert [step_order(i, 12, 3, "force") for i in range(12)][-3:] == [3, 2, 1]
    # DPM-Solver convention: no lowering at >= 10 steps, lowering below
    assert [step_order(i, 12, 3, "dpm") for i in range(12)][-3:] == [3, 3, 3]
    assert [step_order(i, 6, 3, "dpm") for i in range(6)] == [1, 2, 3, 3, 2, 1]
    assert [step_order(i, 6, 3, "off") for i in range(6)] == [1, 2, 3, 3, 3, 3]


def test_nfe_counts_and_afs():
    ts = edm_timesteps(num_timestamps(2, afs=True), **SCHED)
    for solver in ("euler", "dpmpp3m", "ipndm"):
        cd = CountingDenoiser(gauss_denoise)
        sample(cd, torch.randn(4, dtype=torch.float64) * 80, ts, solver=solver, afs=True)
        assert cd.nfe == 2
    cd = CountingDenoiser(gauss_denoise)
    sample(cd, torch.randn(4, dtype=torch.float64) * 80, edm_timesteps(3, **SCHED), solver="heun", afs=True)
    assert cd.nfe == 3 and num_timestamps(3, True, "heun") == 3
    assert num_timestamps(2, True, "heun") is None


def test_afs_is_the_exact_first_step_of_a_gaussian_whose_denoiser_it_equals_at_t_max():
    # AFS takes d = x / sqrt(1 + t0^2), i.e. D(x; t0) = (1 - t0 / sqrt(1 + t0^2)) x. Zero-mean
    # Gaussian data of variance s^2 has D(x; t) = s^2 / (s^2 + t^2) x, which equals it at t0
    # for s^2 = a t0^2 / (1 - a), a = 1 - t0 / sqrt(1 + t0^2) (s^2 -> 1/2 as t0 grows).
    # The first step through the driver, with AFS and no network call, must equal the Euler
    # step with that Gaussian's closed-form denoiser to float64 rounding; the later steps
    # call the denoiser as usual.
    t0, t1, t2 = 80.0, 10.9293, 0.6699
    a = 1 - t0 / math.sqrt(1 + t0 ** 2)
    s2 = a * t0 ** 2 / (1 - a)
    assert abs(s2 - 0.5) < 1e-4

    def gauss(x, t):
        return s2 / (s2 + t ** 2) * x

    calls = []

    def net(x, t):
        calls.append(float(t))
        return gauss(x, t)

    torch.manual_seed(0)
    x_T = torch.randn(64, dtype=torch.float64) * t0
    with_afs = sample(net, x_T.clone(), [t0, t1, t2], solver="euler", afs=True)
    assert calls == [t1]  # no call at t0
    exact_first = x_T + (t1 - t0) * (x_T - gauss(x_T, t0)) / t0
    first = sample(gauss, x_T.clone(), [t0, t1], solver="euler")
    assert torch.allclose(first, exact_first, rtol=1e-13, atol=0)
    assert torch.allclose(sample(gauss, x_T.clone(), [t0, t1], solver="euler", afs=True), exact_first,
                          rtol=1e-12, atol=0)
    x1 = exact_first
    assert torch.allclose(with_afs, x1 + (t2 - t1) * (x1 - gauss(x1, t1)) / t1, rtol=1e-12, atol=0)
    # a first step that takes D = 0 instead (data at the origin) is off by about 1e-4 relative
    zero_first = x_T + (t1 - t0) * x_T / t0
    assert not torch.allclose(zero_first, exact_first, rtol=1e-9, atol=0)


def test_schedule_matches_sfd_paper_timestamps():
    ts = edm_timesteps(num_timestamps(2, afs=True), **SCHED)
    assert torch.allclose(ts, torch.tensor([80, 10.9293, 0.6699, 0.006], dtype=torch.float64), atol=1e-4)
    assert torch.all(ts[1:] < ts[:-1])
    fine = refine(ts, 4, SCHED["rho"])
    assert len(fine) == 13 and torch.allclose(fine[::4], ts)
    assert edm_timesteps(5, **SCHED, append_zero=True)[-1] == 0


def test_every_solver_has_one_display_name():
    """The tables' names of the solvers (SOLVER_NAMES) are those of SOLVERS, the one list."""
    assert list(SOLVER_NAMES) == list(SOLVERS)
