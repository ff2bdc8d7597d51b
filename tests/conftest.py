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


def tiny_denoiser(seed=0):
    from diffdistill.precond import build_denoiser

    torch.manual_seed(seed)
    return build_denoiser({"net": "unet", "precond": "edm",
                           "net_kwargs": {"img_resolution": 8, "img_channels": 1, "model_channels": 16,
                                          "channel_mult": [1, 2], "num_blocks": 1}})
