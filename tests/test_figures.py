"""The figure and table rules' commands on a small fixture of result files."""
import json
import subprocess

import numpy as np
import pytest

from conftest import VENV_BIN


def _fixture(tmp_path):
    """FID JSONs (with model metadata), a floor, two FID curves and three sample files."""
    fids, samples, curves = [], [], []
    rng = np.random.default_rng(0)
    rows = {"teacher (reference)": {35: 10.0}, "SFD": {2: 16.0, 3: 14.0}, "PD": {1: 70.0, 2: 60.0}}
    for label, by_nfe in rows.items():
        for nfe, fid in by_nfe.items():
            meta = None
            if label != "teacher (reference)":
                meta = tmp_path / f"{label}-{nfe}.meta.json"
                meta.write_text(json.dumps({"method": label.lower(), "nfe": nfe, "wall_time": 10.0 * nfe}))
            f = tmp_path / f"fid-{label[:3]}-{nfe}.json"
            f.write_text(json.dumps({"row": f"{label}/nfe{nfe}", "label": label, "nfe": nfe, "fid": fid,
                                     "model": str(meta) if meta else None}))
            fids.append(str(f))
            s = tmp_path / f"samples-{label[:3]}-{nfe}.npz"
            np.savez(s, images=rng.integers(0, 255, (12, 1, 8, 8), dtype=np.uint8), seeds=np.arange(12))
            samples.append(f"{label} NFE {nfe}={s}")
    floor = tmp_path / "floor.json"
    floor.write_text(json.dumps({"row": "floor", "label": "floor", "fid": 5.0, "fid_std": 1.0,
                                 "fid_splits": [4.0, 6.0], "num_samples": 900}))
    for factor, value in (("default", ""), ("t_min", "0.02")):
        c = tmp_path / f"curve-{factor}.json"
        c.write_text(json.dumps({"format": "diffdistill-fid-curve/1", "row": factor, "label": factor, "nfe": 2,
                                 "seeds": "0-9", "num_samples": 10,
                                 "points": [{"iteration": i, "fid": 50.0 / (1 + i), "wall_time": i * 0.1}
                                            for i in (0, 100, 200)]}))
        curves.append(f"{factor}={value}={c}")
    return fids, str(floor), curves, samples


def test_figures_rule_writes_nonempty_png_and_pdf(tmp_path, cli_env):
    fids, floor, curves, samples = _fixture(tmp_path)
    out = tmp_path / "figures"
    r = subprocess.run([str(VENV_BIN / "diffdistill"), "figures", "--fid", *fids, "--floor", floor,
                        "--reference-label", "teacher (reference)", "--curve", *curves, "--samples", *samples,
                        "--out-dir", str(out)], env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for name in ("fid_vs_nfe", "fid_vs_finetune", "fid_curves", "samples"):
        for ext in ("png", "pdf"):
            p = out / f"{name}.{ext}"
            assert p.stat().st_size > 1000, p
    assert (out / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "fid_vs_nfe.pdf").read_bytes()[:5] == b"%PDF-"


def test_figures_refuse_rows_with_different_seeds(tmp_path, cli_env):
    fids, floor, curves, samples = _fixture(tmp_path)
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((12, 1, 8, 8), np.uint8), seeds=np.arange(100, 112))
    out = tmp_path / "figures"
    r = subprocess.run([str(VENV_BIN / "diffdistill"), "figures", "--fid", *fids, "--samples", samples[0],
                        f"odd={bad}", "--out-dir", str(out)], env=cli_env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "rows must share seeds" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()  # nothing half-written


def test_ablation_table_from_fixture(tmp_path, cli_env):
    import pandas as pd

    default, other = tmp_path / "a0.json", tmp_path / "a1.json"
    default.write_text(json.dumps({"row": "x", "label": "x", "nfe": 2, "fid": 20.0}))
    other.write_text(json.dumps({"row": "y", "label": "y", "nfe": 2, "fid": 30.0}))
    out = tmp_path / "tables"
    r = subprocess.run([str(VENV_BIN / "diffdistill"), "ablation-table",
                        "--ablation", f"default=={default}", f"t_min=0.02={other}", "--out-dir", str(out)],
                       env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(out / "ablations.csv")
    assert list(df["factor"]) == ["default", "t_min"] and list(df["vs default"]) == [1.0, 1.5]
    assert "| t_min | 0.02 | 2 | 30.00 | 1.50x |" in (out / "ablations.md").read_text()
