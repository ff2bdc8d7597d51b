"""The tiny config through Snakemake, end to end, and config errors at the CLI."""
import re
import subprocess

import pandas as pd
import pytest

from conftest import VENV_BIN, copy_workflow


def test_mistyped_config_key_is_one_line(tmp_path, cli_env):
    copy_workflow(tmp_path)
    (tmp_path / "bad.yaml").write_text("sfd:\n  itres: 3\n")
    r = subprocess.run([str(VENV_BIN / "snakemake"), "-n", "--configfile", "bad.yaml"], cwd=tmp_path,
                       env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    errors = [l for l in (r.stdout + r.stderr).splitlines() if "error" in l.lower()]
    assert errors == ["config error: unknown config key 'sfd.itres'; did you mean 'iters'?"], r.stderr


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_run")  # one worker builds conftest.tiny_run for both
def test_tiny_config_end_to_end(tiny_run, cli_env):
    tmp_path, cmd = tiny_run  # the run itself: conftest.tiny_run
    df = pd.read_csv(tmp_path / "results/tables/fid_vs_nfe.csv")
    assert {"SFD", "teacher (reference)", "SFD target (teacher trajectories)"} <= set(df["method"])
    assert df.filter(like="NFE").notna().any().all()
    assert (tmp_path / "results/samples/students/sfd/default/nfe2/grid.png").stat().st_size > 0
    assert (tmp_path / "results/students/sfd/default/nfe2/model.pt.meta.json").exists()
    # one PD round and O2MKD with N = 2 (and its one-to-one baseline) reach their tables
    assert "PD (progressive distillation)" in set(df["method"])
    o2 = pd.read_csv(tmp_path / "results/tables/o2mkd.csv")
    assert list(o2["model"]) == ["teacher", "one-to-one KD (N=1)", "O2MKD N=2"] and o2.filter(like="FID").notna().all().all()
    cost = pd.read_csv(tmp_path / "results/tables/cost.csv")
    assert {"SFD", "PD (progressive distillation)", "O2MKD N=2"} <= set(cost["method"])
    assert (cost["student optimizer steps"] > 0).all()
    # SFD-v, the second stage, the ablation table, the curves and the figures
    assert {"SFD-v (one model)", "SFD second stage"} <= set(df["method"])
    assert df.loc[df["method"] == "SFD second stage", "NFE 1"].notna().all()
    abl = pd.read_csv(tmp_path / "results/ablations/ablations.csv")
    assert list(abl["factor"]) == ["default", "t_min", "loss", "default, another training seed"]
    assert abl["FID inf"].notna().all() and abl["significance"].fillna("").isin(["", "larger than noise", "within noise"]).all()
    assert (tmp_path / "results/students/sfd/it4-tmin0.02/nfe2/fid_curve.json").exists()
    for name in ("fid_vs_nfe", "fid_vs_finetune", "fid_curves", "samples"):
        assert (tmp_path / f"results/figures/{name}.pdf").stat().st_size > 0
    assert (tmp_path / "results/config.yaml").exists()
    # the HTML report holds the tables, the figures and the run's config
    r = subprocess.run([str(VENV_BIN / "snakemake"), "--report", "report.html", "--configfile", "config/test.yaml"],
                       cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert all(name in html for name in ("fid_vs_nfe.png", "samples.png", "ablations.csv", "config.yaml"))
    # a second run has nothing to do
    r = subprocess.run([*cmd, "-n"], cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "Nothing to be done" in (r.stdout + r.stderr), r.stdout[-2000:]
    # one more t_min value: only its own jobs (one new cache for its timestamps) and the
    # tables that read the ablations (the claims among them); nothing else reruns
    (tmp_path / "more.yaml").write_text("ablations:\n  t_min: [0.006, 0.02, 0.05]\n")
    r = subprocess.run([*cmd, "more.yaml", "-n"], cwd=tmp_path, env=cli_env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", r.stdout, re.M))
    assert counts == {"teacher_trajectories": "1", "distill_sfd": "1", "sample": "1", "fid": "1",
                      "ablation_table": "1", "figures": "1", "claims": "1", "run_config": "1", "all": "1",
                      "total": "9"}, r.stdout[-3000:]
    outputs = "\n".join(l for l in r.stdout.splitlines() if l.strip().startswith("output:"))
    assert "tmin0.05" in outputs and "tmin0.02-" not in outputs, outputs
