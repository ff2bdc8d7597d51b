import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def cli_env():
    """Environment for subprocesses: the venv's console scripts first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


FLOAT32_EPS = 2.0 ** -23


def assert_close_f32(actual, expected, ulps: float = 16, msg: str = ""):
    """Parity up to float32 rounding: |actual - expected| <= ulps * eps32 * max|expected|.

    Another CPU's kernels (or another summation order) round float32 differently; each
    output element sums terms as large as the largest output, so the bound scales with
    the reference's magnitude instead of a fixed absolute tolerance."""
    import numpy as np

    a = torch.as_tensor(np.asarray(actual) if not torch.is_tensor(actual) else actual).detach().double()
    e = torch.as_tensor(np.asarray(expected) if not torch.is_tensor(expected) else expected).detach().double()
    assert a.shape == e.shape, f"{msg} shape {tuple(a.shape)} != {tuple(e.shape)}"
    scale = max(float(e.abs().max()) if e.numel() else 0.0, 1.0)
    tol = ulps * FLOAT32_EPS * scale
    err = float((a - e).abs().max()) if e.numel() else 0.0
    assert err <= tol, f"{msg} max abs difference {err:.3g} > {tol:.3g} ({ulps} float32 ulps of {scale:.3g})"


def tiny_denoiser(seed=0):
    from diffdistill.precond import build_denoiser

    torch.manual_seed(seed)
    return build_denoiser({"net": "unet", "precond": "edm",
                           "net_kwargs": {"img_resolution": 8, "img_channels": 1, "model_channels": 16,
                                          "channel_mult": [1, 2], "num_blocks": 1}})
