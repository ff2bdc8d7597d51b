"""EDM compatibility: SongUNet matches NVlabs/edm bit for bit, and EDM pickles import safely.

Fixtures in tests/fixtures/edm/ were written by EDM's own code (see its README.md).
"""
from __future__ import annotations

import builtins
import json
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch

from conftest import assert_close_f32
from diffdistill.edm_import import import_edm_pickle
from diffdistill.errors import UserError
from diffdistill.provenance import read_meta
from diffdistill.nets.songunet import SongUNet
from diffdistill.precond import VPPrecond, load_denoiser

FIXTURES = Path(__file__).parent / "fixtures" / "edm"


def songunet_kwargs(config: dict) -> dict:
    """EDM's VPPrecond passes img_channels as in/out channels and the rest through."""
    kwargs = {k: v for k, v in config.items() if k not in ("precond", "model_type", "img_channels")}
    kwargs["in_channels"] = kwargs["out_channels"] = config["img_channels"]
    return kwargs


@pytest.fixture(scope="module")
def config():
    return json.loads((FIXTURES / "config.json").read_text())


@pytest.fixture(scope="module")
def io_tensors():
    return torch.load(FIXTURES / "io.pt", weights_only=True)


@pytest.fixture(scope="module")
def edm_net(config):
    net = VPPrecond(SongUNet(**songunet_kwargs(config))).eval()
    state = torch.load(FIXTURES / "state_dict.pt", weights_only=True)
    net.load_state_dict(state, strict=True)  # (a): EDM's names, nothing missing or extra
    return net


def test_state_dict_loads_strict(config):
    net = VPPrecond(SongUNet(**songunet_kwargs(config)))
    state = torch.load(FIXTURES / "state_dict.pt", weights_only=True)
    result = net.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert set(net.state_dict()) == set(state)


@torch.no_grad()
def test_outputs_match_edm(edm_net, io_tensors):
    denoised = edm_net(io_tensors["x"], io_tensors["sigma"])
    assert_close_f32(denoised, io_tensors["denoised"])
    out = edm_net.model(io_tensors["backbone_in"], io_tensors["backbone_noise_labels"])
    assert_close_f32(out, io_tensors["backbone_out"])


@torch.no_grad()
def test_extra_emb(edm_net, io_tensors):
    x, labels = io_tensors["backbone_in"], io_tensors["backbone_noise_labels"]
    base = edm_net.model(x, labels)
    emb_channels = edm_net.model.map_layer1.out_features
    zeros = torch.zeros(x.shape[0], emb_channels)
    torch.testing.assert_close(edm_net.model(x, labels, extra_emb=zeros), base, atol=0, rtol=0)
    moved = edm_net.model(x, labels, extra_emb=torch.randn(x.shape[0], emb_channels))
    assert (moved - base).abs().max() > 1e-4


def test_import_pickle_matches_edm(tmp_path, io_tensors, config):
    out = tmp_path / "edm.pt"
    summary = import_edm_pickle(FIXTURES / "network.pkl", out)
    model, spec = load_denoiser(out)
    assert spec["net"] == "songunet" and spec["precond"] == "vp"
    assert spec["net_kwargs"]["channel_mult"] == config["channel_mult"]
    assert summary["num_tensors"] == len(torch.load(FIXTURES / "state_dict.pt", weights_only=True))
    with torch.no_grad():
        denoised = model(io_tensors["x"], io_tensors["sigma"])
    assert_close_f32(denoised, io_tensors["denoised"])


# --------------------------------------------------------------------------- hostile input


def _edm_shaped_pickle(meta: dict) -> bytes:
    """{'ema': torch_utils.persistence._reconstruct_persistent_obj(meta)} in protocol 2,
    assembled by hand so that no torch_utils module is needed to write it."""
    body = pickle.dumps(meta, protocol=2)[2:-1]  # drop PROTO and STOP
    key = "ema".encode()
    return (b"\x80\x02}" + b"X" + struct.pack("<I", len(key)) + key
            + b"ctorch_utils.persistence\n_reconstruct_persistent_obj\n"
            + body + b"\x85R" + b"s.")


class _SystemCall:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _ExecCall:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("payload", [_SystemCall, _ExecCall])
def test_reduce_payload_refused(tmp_path, payload):
    marker = tmp_path / "pwned"
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps({"ema": payload(marker)}))
    with pytest.raises(UserError, match="refusing to load global"):
        import_edm_pickle(pkl, tmp_path / "out.pt")
    assert not marker.exists()
    assert not (tmp_path / "out.pt").exists()


def test_persistence_record_never_executes_source(tmp_path):
    marker = tmp_path / "pwned"
    pkl = tmp_path / "evil.pkl"
    meta = dict(type="class", version=6, class_name="Payload", state={},
                module_src=f"open({str(marker)!r}, 'w').close()\nclass Payload: pass\n")
    pkl.write_bytes(_edm_shaped_pickle(meta))
    with pytest.raises(UserError, match="unknown EDM class 'Payload'"):
        import_edm_pickle(pkl, tmp_path / "out.pt")
    assert not marker.exists()


def test_real_snapshot_with_hostile_source_imports_without_running_it(tmp_path, monkeypatch):
    """The fixture with its module_src placeholder swapped for code that writes a file:
    the weights still import (module_src is ignored), and the code never runs."""
    data = (FIXTURES / "network.pkl").read_bytes()
    placeholder = b"# module source omitted from this fixture\n"
    assert data.count(placeholder) >= 1
    hostile = b"open('pwned', 'w').close()#"
    hostile = hostile + b"#" * (len(placeholder) - len(hostile) - 1) + b"\n"
    assert len(hostile) == len(placeholder)
    pkl = tmp_path / "hostile.pkl"
    pkl.write_bytes(data.replace(placeholder, hostile))
    monkeypatch.chdir(tmp_path)
    import_edm_pickle(pkl, tmp_path / "out.pt")
    assert not (tmp_path / "pwned").exists()
    load_denoiser(tmp_path / "out.pt")


def test_clear_errors(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        import_edm_pickle(tmp_path / "missing.pkl", tmp_path / "out.pt")
    junk = tmp_path / "junk.pkl"
    junk.write_text("this is not a pickle\n")
    with pytest.raises(UserError, match="not a readable pickle"):
        import_edm_pickle(junk, tmp_path / "out.pt")
    zipped = tmp_path / "ckpt.pt"
    torch.save({"a": torch.zeros(1)}, zipped)
    with pytest.raises(UserError, match="not a pickle"):
        import_edm_pickle(zipped, tmp_path / "out.pt")
    no_ema = tmp_path / "no_ema.pkl"
    no_ema.write_bytes(pickle.dumps({"loss_fn": None}))
    with pytest.raises(UserError, match="no 'ema' entry"):
        import_edm_pickle(no_ema, tmp_path / "out.pt")


# --------------------------------------------------------------------------- CLI


def test_cli_subcommand(tmp_path, io_tensors, capsys):
    from diffdistill.cli import main

    out = tmp_path / "sub" / "edm.pt"
    assert main(["import-edm", str(FIXTURES / "network.pkl"), str(out)]) == 0
    assert out.exists()
    meta = read_meta(out)
    assert meta["args"]["key"] == "ema" and meta["spec"]["net"] == "songunet"
    assert "import-edm" in meta["command"]
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    model, _ = load_denoiser(out)
    with torch.no_grad():
        denoised = model(io_tensors["x"], io_tensors["sigma"])
    assert_close_f32(denoised, io_tensors["denoised"])
    assert "imported" in capsys.readouterr().out


def test_edm_precond_record_maps_to_edm_spec():
    from diffdistill.edm_import import spec_from_record
    from diffdistill.safe_pickle import safe_load_pickle

    record = safe_load_pickle(FIXTURES / "network.pkl")["ema"]
    record.class_name = "EDMPrecond"  # same backbone, EDM's own preconditioning
    record.state = {k: v for k, v in record.state.items() if not k.startswith("beta")}
    record.state.update(sigma_data=0.5, sigma_min=0.0, sigma_max=float("inf"))
    spec = spec_from_record(record)
    assert spec["precond"] == "edm" and spec["net"] == "songunet"
    assert spec["precond_kwargs"] == {"sigma_data": 0.5, "sigma_min": 0.0, "sigma_max": float("inf")}
    record.state["_modules"]["model"].class_name = "DhariwalUNet"
    with pytest.raises(UserError, match="unknown EDM backbone class 'DhariwalUNet'"):
        spec_from_record(record)


# --------------------------------------------------------------------------- the CIFAR-shaped fixture

EDM32 = Path(__file__).parent / "fixtures" / "edm32"


def test_cifar_shaped_snapshot_matches_edm(tmp_path):
    """tests/fixtures/edm32 (32x32 RGB, DDPM++ with attention at 16, written by EDM's code):
    the imported pickle gives EDM's outputs, and its MACs come from FlopCounterMode (SongUNet
    calls F.conv2d and einsum attention, which module hooks would miss)."""
    from diffdistill.profiling import evaluation_macs
    from diffdistill.precond import image_shape

    io = torch.load(EDM32 / "io.pt", weights_only=True)
    out = tmp_path / "edm32.pt"
    import_edm_pickle(EDM32 / "network.pkl", out)
    model, spec = load_denoiser(out)
    assert image_shape(spec) == (3, 32, 32)
    assert sum(p.numel() for p in model.parameters()) == 393_187
    with torch.no_grad():
        assert_close_f32(model(io["x"], io["sigma"]), io["denoised"])
        # a SongUNet with attention in float32: rounding over its depth reaches ~20 ulps of
        # the output's magnitude on some CPUs (measured 6.2e-6 at 2.54); a real mismatch is >1e-3
        assert_close_f32(model.model(io["backbone_in"], io["backbone_noise_labels"]), io["backbone_out"], ulps=64)
    assert evaluation_macs(model, (3, 32, 32)) > 0
