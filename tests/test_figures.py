"""The figure and table commands on a small fixture of result files (FID JSONs carrying
their rows' fields, model metadata, FID curves, samples)."""
import json
import subprocess

import numpy as np

from conftest import VENV_BIN


def _record(tmp_path, name, label, nfe, fid, family, kind, tables=("main",), meta=None, wall=None, figure=True,
            recipe=None, model=None):
    if wall is not None:
        model = tmp_path / f"{(model or name).replace('/', '_')}.pt"
        model.with_name(model.name + ".meta.json").write_text(json.dumps({"method": family, "nfe": nfe,
                                                                           "wall_time": wall}))
    s = tmp_path / f"samples-{name.replace('/', '_')}.npz"
    rng = np.random.default_rng(nfe)
    np.savez(s, images=rng.integers(0, 255, (12, 1, 8, 8), dtype=np.uint8), seeds=np.arange(12))
    f = tmp_path / f"fid-{name.replace('/', '_')}.json"
    q = 0.9 * fid  # FID at infinite n, per seed set: the sets' differences between rows vary
    f.write_text(json.dumps({"name": name, "label": label, "nfe": nfe, "fid": fid, "family": family, "kind": kind,
                             "fid_inf": q, "fid_inf_sets": [q - 0.01 * fid, q + 0.02 * fid - 0.1, q - 0.01 * fid + 0.1],
                             "fid_inf_std": 0.02 * fid, "seed_sets": 3, "num_samples": 4,
                             "tables": list(tables), "column": f"NFE {nfe}", "model": str(model) if model else None,
                             "samples": str(s), "figure": figure, "meta": meta or {},
                             "recipe": recipe or {}}))
    return str(f)


def _fixture(tmp_path):
    fids = [_record(tmp_path, "reference/nfe35", "teacher (reference)", 35, 10.0, "teacher", "reference",
                    recipe={"solver": "heun"}),
            _record(tmp_path, "teacher-euler/nfe2", "teacher Euler (DDIM)", 2, 300.0, "teacher", "baseline",
                    figure=False, recipe={"solver": "euler", "afs": False}),
            _record(tmp_path, "teacher-euler-afs/nfe2", "teacher Euler (DDIM), AFS", 2, 200.0, "teacher",
                    "baseline", figure=False, recipe={"solver": "euler", "afs": True})]
    for nfe, fid in ((2, 16.0), (3, 14.0)):
        fids.append(_record(tmp_path, f"students/sfd/default/nfe{nfe}", "SFD", nfe, fid, "sfd", "distilled",
                            wall=10.0 * nfe))
    for nfe, fid in ((1, 70.0), (2, 60.0)):
        fids.append(_record(tmp_path, f"students/pd/default/nfe{nfe}", "PD", nfe, fid, "pd", "distilled",
                            wall=30.0 / nfe))
    for nfe, fid in ((2, 20.0), (3, 18.0)):  # one model, several NFE: labels stack
        fids.append(_record(tmp_path, f"students/sfdv/default/nfe{nfe}", "SFD-v", nfe, fid, "sfdv", "distilled",
                            wall=50.0, model="sfdv"))
    for factor, value, fid in (("default", "", 16.0), ("t_min", "0.02", 24.0)):
        c = tmp_path / f"curve-{factor}.json"
        c.write_text(json.dumps({"format": "diffdistill-fid-curve/1", "row": factor, "label": factor, "nfe": 2,
                                 "seeds": "0-9", "num_samples": 10,
                                 "points": [{"iteration": i, "fid": 50.0 / (1 + i), "wall_time": i * 0.1}
                                            for i in (0, 100, 200)]}))
        fids.append(_record(tmp_path, f"students/sfd/abl-{factor}/nfe2", "SFD", 2, fid, "sfd", "distilled",
                            tables=("ablations",), figure=False,
                            meta={"factor": factor, "factor_name": factor, "value": value, "curve": str(c)}))
    floor = tmp_path / "floor.json"
    floor.write_text(json.dumps({"row": "floor", "label": "floor", "fid": 5.0, "fid_std": 1.0,
                                 "fid_splits": [4.0, 6.0], "num_samples": 900}))
    return fids, str(floor)


def _keys(d, prefix=""):
    for k, v in d.items():
        yield f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _keys(v, f"{prefix}{k}.")


def test_figures_rule_writes_nonempty_png_and_pdf(tmp_path, cli_env):
    fids, floor = _fixture(tmp_path)
    out = tmp_path / "figures"
    r = subprocess.run([str(VENV_BIN / "diffdistill"), "figures", "--fid", *fids, "--floor", floor,
                        "--out-dir", str(out)], env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for name in ("fid_vs_nfe", "fid_vs_finetune", "fid_curves", "samples"):
        for ext in ("png", "pdf"):
            p = out / f"{name}.{ext}"
            assert p.stat().st_size > 1000, p
    assert (out / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "fid_vs_nfe.pdf").read_bytes()[:5] == b"%PDF-"
    # every student's curve in long form: DVC's plot of the training curves (dvc.yaml)
    import pandas as pd

    curves = pd.read_csv(out / "curves_long.csv")
    assert list(curves.columns) == ["student", "iteration", "fid"]
    assert set(curves["student"]) == {"students/sfd/abl-default/nfe2", "students/sfd/abl-t_min/nfe2"}
    assert len(curves) == 6 and curves["fid"].iloc[0] == 50.0


def test_series_styles_are_distinct_and_say_what_they_are(tmp_path):
    from diffdistill.figures import _series, series_styles
    from diffdistill.records import in_table, load_records

    fids, _ = _fixture(tmp_path)
    series = _series(in_table(load_records(fids), "main"))
    styles = series_styles(series)
    keys = [(s["color"], s["ls"], s["marker"]) for s in styles.values()]
    assert len(set(keys)) == len(keys)
    assert styles["SFD"]["ls"] == "-" and styles["teacher Euler (DDIM)"]["ls"] == "--"
    assert styles["teacher Euler (DDIM), AFS"]["ls"] == "-."
    assert styles["SFD"]["color"] != styles["PD"]["color"] != styles["SFD-v"]["color"]


def test_figures_refuse_rows_with_different_seeds(tmp_path, cli_env):
    fids, floor = _fixture(tmp_path)
    rec = json.loads(open(fids[0]).read())
    np.savez(rec["samples"], images=np.zeros((12, 1, 8, 8), np.uint8), seeds=np.arange(100, 112))
    out = tmp_path / "figures"
    r = subprocess.run([str(VENV_BIN / "diffdistill"), "figures", "--fid", *fids, "--out-dir", str(out)],
                       env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "rows must share seeds" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()  # nothing half-written


def test_tables_and_ablation_table_from_fixture(tmp_path, cli_env):
    import pandas as pd

    fids, floor = _fixture(tmp_path)
    out = tmp_path / "abl"
    r = subprocess.run([str(VENV_BIN / "diffdistill"), "ablation-table", "--fid", *fids, "--out-dir", str(out)],
                       env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(out / "ablations.csv")
    assert list(df["factor"]) == ["default", "t_min"] and list(df["vs default"]) == [1.0, 1.5]
    md = (out / "ablations.md").read_text()
    assert "| t_min | 0.02 | 2 | 24.00 | 21.60 ± 0.48 | 7.20 ± 0.08 |" in md
    assert "| 1.50x | 0.00 | larger than noise; training noise not measured |" in md  # one training seed
    assert "Welch-Satterthwaite" in md and "training seeds" in md and "Benjamini-Hochberg" in md
    assert (out / "ablations.tex").read_text().count("\\toprule") == 1
    abl = json.loads((out / "ablation_metrics.json").read_text())  # DVC's metrics: table, factor, value
    assert abl["ablations"]["t_min"]["0.02"]["fid_inf"] == 21.6 and abl["ablations"]["default"]["default"]["q_bh"] is None
    assert abs(abl["ablations"]["t_min"]["0.02"]["minus_default"] - 7.2) < 1e-9
    out = tmp_path / "tables"
    r = subprocess.run([str(VENV_BIN / "diffdistill"), "table", "--fid", *fids, "--floor", floor, "--out-dir",
                        str(out)], env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    main = pd.read_csv(out / "fid_vs_nfe.csv")
    assert list(main["method"]) == ["teacher (reference)", "teacher Euler (DDIM)", "teacher Euler (DDIM), AFS",
                                    "SFD", "PD", "SFD-v"]
    cost = pd.read_csv(out / "cost.csv")
    assert list(cost["method"]) == ["SFD", "SFD", "PD", "PD", "SFD-v"]  # one row per model
    # DVC's metrics, nested by method, variant and NFE, with the spread and the paired
    # difference to the reference (keys short enough for `dvc exp show`)
    metrics = json.loads((out / "fid_metrics.json").read_text())
    sfd = metrics["sfd"]["default"]["nfe2"]
    assert sfd["fid_inf"] == 0.9 * 16.0 and sfd["fid_inf_std"] == 0.02 * 16.0
    assert abs(sfd["minus_reference"] - 0.9 * 6.0) < 0.2 and sfd["minus_reference_ci95"] > 0
    assert metrics["reference"]["default"]["nfe35"]["fid_inf"] == 9.0 and "minus_reference" not in \
        metrics["reference"]["default"]["nfe35"]
    assert metrics["teacher-euler-afs"]["default"]["nfe2"]["fid_n"] == 200.0 and metrics["floor"] == 5.0
    assert max(len(k) for k in _keys(metrics)) <= 60  # dotted, as `dvc exp show` prints them
    assert cost["FID inf"].isna().tolist() == [False] * 4 + [True]  # SFD-v serves two rows


def test_result_files_with_a_nan_fid_or_measured_against_different_features_are_refused(tmp_path, cli_env):
    """A NaN FID is refused where it is read (not shown as a value never measured), and
    two metrics files whose sidecars name different feature networks or reference
    statistics are never compared: one line naming the file and the setting, exit 2,
    no table written."""
    fids, floor = _fixture(tmp_path)
    bad = json.loads(open(fids[1]).read())
    bad["fid_inf_sets"][1] = float("nan")
    nan_file = tmp_path / "nan.json"
    nan_file.write_text(json.dumps(bad))  # Python's json writes NaN
    out = tmp_path / "t"
    r = subprocess.run([str(VENV_BIN / "diffdistill"), "table", "--fid", fids[0], str(nan_file), "--out-dir", str(out)],
                       env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not a finite number" in r.stderr and str(nan_file) in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()
    for f, featnet in ((fids[0], "a/featnet.pt"), (fids[1], "b/featnet.pt")):
        open(f + ".meta.json", "w").write(json.dumps({"args": {"features": "classifier", "featnet": featnet,
                                                                "ref": "r.npz"}}))
    r = subprocess.run([str(VENV_BIN / "diffdistill"), "table", "--fid", *fids, "--out-dir", str(out)],
                       env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "featnet" in r.stderr and "cannot be compared" in r.stderr, r.stderr
    assert not out.exists()
