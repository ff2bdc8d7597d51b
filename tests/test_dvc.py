"""DVC on top of Snakemake (dvc.yaml), on the tiny config in a temporary git repository:
an interrupted `dvc repro` resumes the training it stopped; a full `dvc repro`; one changed config value reruns only the stages that read it; the
value changed back, those stages come back from DVC's run-cache without running a job;
after such restores a stage never reruns another stage's jobs; the same change as a
`dvc exp run -S`, listed by `dvc exp show`; push to a local directory remote, delete
cache and outputs, pull them back unchanged."""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, VENV_BIN, WORKFLOW_FILES, copy_workflow, ran_rules

STAGES = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])


def test_dvc_yaml_has_one_stage_per_registered_method():
    """dvc.yaml's method stages are the registry's (diffdistill.methods.dvc_stages), and
    the stages that read every method's results list each method's folder: what
    `python -m diffdistill.generate` writes."""
    from diffdistill import generate, methods

    now, generated = generate.generated(ROOT)[generate.DVC]
    assert now == generated, f"{generate.DVC} is out of date: run {generate.COMMAND}"
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, want in methods.dvc_stages().items():
        assert stages.get(name) == want, f"dvc.yaml stage {name}: {stages.get(name)} != {want}"
    folders = [o for s in methods.dvc_stages().values() for o in s["outs"]]
    for name in ("evaluate", "report"):
        assert set(folders) <= set(stages[name]["deps"]), (name, set(folders) - set(stages[name]["deps"]))


def _repo(dst: Path) -> None:
    copy_workflow(dst, WORKFLOW_FILES + ("src", "dvc.yaml", ".dvcignore", ".gitignore", ".dvc/config",
                                         ".dvc/.gitignore", ".dvc/plots"))
    # The tiny config is the one DVC tracks here (README, "DVC"), without SFD-v, the
    # second stage, O2MKD x SFD, PD's DDIM sweep of first teachers, the ablation sweep and
    # every O2MKD router but the ablation's default: tests/test_workflow.py runs those; here
    # they would only add jobs to every step. (Their declared folders stay empty.) DVC's
    # mechanics do not depend on how many rows a stage holds.
    (dst / "config/config.yaml").unlink()  # copied as a file: the link of a checkout again
    (dst / "config/config.yaml").symlink_to("../params.yaml")
    cfg = yaml.safe_load((dst / "config/test.yaml").read_text())
    cfg["sfdv"]["enabled"] = cfg["sfd2"]["enabled"] = cfg["o2sfd"]["enabled"] = False
    cfg["ablations"] = {k: [] if isinstance(v, list) else v for k, v in cfg["ablations"].items()}
    cfg["ablations"]["iters"] = None  # the default row is the main SFD student
    cfg["ablations"]["train_seeds"] = 1
    cfg["o2mkd"]["ablations"] = {k: [] if isinstance(v, list) else v for k, v in cfg["o2mkd"]["ablations"].items()}
    cfg["sfd"]["nfe"] = cfg["baselines"]["nfe"] = [2]
    cfg["baselines"]["solvers"] = ["dpmpp3m"]
    cfg["o2mkd"]["num_students"] = []
    # O2MKD's rows but the ablation's default router (always declared: its stage has one job)
    cfg["o2mkd"]["study"]["train_seeds"], cfg["o2mkd"]["ddim_nfe"] = 0, []
    cfg["pd"]["first_teacher_steps"] = []  # PD's chain and its own teachers only
    cfg["pd"]["nfe"] = [2]  # one round (n0 4 -> 2): the stage that step 2b changes
    cfg["teacher"]["iters"], cfg["teacher"]["ckpt_every"] = 300, 10  # long enough to interrupt (step 0)
    (dst / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"]):
        subprocess.run(cmd, cwd=dst, check=True)


@pytest.fixture
def dvc_env(cli_env, tmp_path):
    env = dict(cli_env)
    env["PYTHONPATH"] = str(tmp_path / "repo/src")  # jobs run the code the stages depend on
    return env


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/cifar10.yaml"])
def test_dvc_stages_own_every_output(tmp_path, dvc_env, configfile):
    """Every output of `rule all` lies under exactly one stage's outs (downloads aside),
    and every stage lists as deps the other stages' outputs its jobs read."""
    copy_workflow(tmp_path, WORKFLOW_FILES + ("dvc.yaml",))
    out = _run([str(VENV_BIN / "python"), "workflow/scripts/dvc_stage.py", "--check", "--configfile", configfile],
               tmp_path, dvc_env, timeout=300)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert [line.split(":")[0] for line in out.splitlines() if not line.startswith("undeclared")] == list(stages)
    undeclared = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("undeclared: ")]
    assert all(f.startswith("downloads/") for f in undeclared), undeclared


def _run(cmd, cwd, env, timeout=900):
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    return out


def _ran(out):
    return re.findall(r"^Running stage '([^']+)'", out, re.M)


def _restored(out):
    return re.findall(r"^Stage '([^']+)' is cached - skipping run", out, re.M)


def _outs(repo: Path) -> list[Path]:
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    return [repo / o for s in stages.values() for o in s["outs"]]


def _digest(repo: Path, paths) -> dict:
    files = []
    for p in paths:
        files += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    return {str(f.relative_to(repo)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def _only(digest: dict, paths, repo: Path) -> dict:
    prefixes = tuple(f"{p.relative_to(repo)}/" for p in paths)
    return {k: v for k, v in digest.items() if k.startswith(prefixes)}


@pytest.mark.slow
def test_dvc_repro_incremental_run_cache_and_remote(tmp_path, dvc_env):
    repo = tmp_path / "repo"
    _repo(repo)
    dvc = [str(VENV_BIN / "dvc")]
    sfd = [repo / "results/students/sfd", repo / "results/trajectories"]

    def status_clean():
        out = _run([*dvc, "status"], repo, dvc_env)
        assert "Data and pipelines are up to date." in out, out

    # 0. Ctrl-C during the teacher's training: DVC deletes the stage's outputs before it
    # reruns it, but the resume point lives outside them, so the rerun resumes
    resume = repo / "results/resume/teacher/resume.pt"
    with open(tmp_path / "interrupted.log", "w") as log:
        # Ctrl-C's default action restored: a shell runs background commands with SIGINT
        # ignored, and every process below would inherit that (CI started with `&`)
        proc = subprocess.Popen([*dvc, "repro", "teacher"], cwd=repo, env=dvc_env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 600
            while not resume.exists():
                assert proc.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "interrupted.log").read_text()[-3000:]
                time.sleep(0.02)
            os.killpg(proc.pid, signal.SIGINT)
            assert proc.wait(timeout=120) != 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert not (repo / "results/teacher/model.pt").exists() and resume.exists()
    out = _run([*dvc, "repro", "teacher"], repo, dvc_env)
    meta = json.loads((repo / "results/teacher/model.pt.meta.json").read_text())
    assert meta["resumed_from"] > 0 and meta["iterations"] == 300, (meta.get("resumed_from"), out[-3000:])

    # 1. everything, through Snakemake, one stage after the other
    out = _run([*dvc, "repro"], repo, dvc_env)
    assert set(_ran(out)) == set(STAGES) - {"config", "teacher"}, out[-3000:]
    status_clean()
    metrics = json.loads(_run([*dvc, "metrics", "show", "--json"], repo, dvc_env))
    data = next(iter(metrics.values()))["data"]
    fids = data["results/tables/fid_metrics.json"]["data"]  # nested: method, variant, NFE
    row = fids["sfd"]["default"]["nfe2"]
    assert row["fid_inf"] > 0 and row["fid_inf_std"] >= 0 and row["minus_reference_ci95"] > 0, row
    assert row["target"]["fid_inf"] > 0 and fids["reference"]["default"]["nfe7"]["fid_inf"] > 0 and fids["floor"] > 0
    _run([*dvc, "plots", "show", "-o", str(tmp_path / "plots")], repo, dvc_env)
    page = (tmp_path / "plots/index.html").read_text()
    assert "FID against NFE" in page and "Training curves" in page and "samples.png" in page
    git = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert git.split("\n")[:-1] == ["?? dvc.lock"], git  # outputs stay out of git
    first = _digest(repo, _outs(repo))

    # 2. one SFD value: the config resolution, SFD's stage, evaluation and report run; PD's
    # stage and the others do not (each method's stage has its own params file)
    cfg_file = repo / "config/config.yaml"
    original = cfg_file.read_text()
    cfg = yaml.safe_load(original)
    cfg["sfd"]["loss"] = "l2"
    cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = _run([*dvc, "repro"], repo, dvc_env)
    # sfd2 reads SFD's students, so its stage runs too (nothing to build: off in this config)
    assert _ran(out) == ["config", "sfd", "sfd2", "evaluate", "report"], out[-3000:]
    for stage in ("teacher", "featnet", "trajectories", "pd", "sfdv", "o2mkd", "o2sfd"):
        assert f"Stage '{stage}' didn't change, skipping" in out
    assert _digest(repo, sfd) != _only(first, sfd, repo)
    status_clean()
    pd_folder = [repo / "results/students/pd"]
    pd_before = _digest(repo, pd_folder)

    # 2b. one PD value: `dvc status` names PD's slice of the config, not SFD's; `dvc repro pd`
    # runs PD's stage, never SFD's; SFD's students are untouched. Changed back, PD's stage
    # comes back from the run-cache and nothing runs
    cfg = yaml.safe_load(cfg_file.read_text())
    cfg["pd"]["iters"] += 1
    cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    _run([*dvc, "repro", "config"], repo, dvc_env)  # resolves the config: the params files
    status = _run([*dvc, "status"], repo, dvc_env)
    changed = set(re.findall(r"^(\w+):$", status, re.M))
    assert "pd" in changed and "results/params/pd.yaml" in status, status
    assert not changed & {"sfd", "trajectories", "teacher", "featnet"}, status
    sfd_before = _digest(repo, sfd)
    out = _run([*dvc, "repro", "pd"], repo, dvc_env)  # up to PD's stage: step 2 ran evaluate and report
    assert _ran(out) == ["pd"], out[-3000:]
    assert "distill_sfd" not in ran_rules(out), out[-3000:]
    assert _digest(repo, sfd) == sfd_before and _digest(repo, pd_folder) != pd_before
    cfg["pd"]["iters"] -= 1
    cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = _run([*dvc, "repro"], repo, dvc_env)  # back to the L2 state of step 2 (from the run-cache)
    assert set(_restored(out)) == {"config", "pd"} and _ran(out) == [], out[-3000:]
    status_clean()

    # 3. changed back: the same stages come back from the run-cache, no job runs
    cfg_file.write_text(original)
    out = _run([*dvc, "repro"], repo, dvc_env)
    assert _ran(out) == [] and ran_rules(out) == set(), out[-3000:]
    assert set(_restored(out)) == {"config", "sfd", "sfd2", "evaluate", "report"}, out[-3000:]
    assert _digest(repo, _outs(repo)) == first
    status_clean()

    # 4. DVC restored every output above with new mtimes and without Snakemake's records
    # of how it was built. A forced stage runs only its own rules: never SFD's, whatever
    # the records and mtimes of the files it restored.
    out = _run([*dvc, "repro", "--force", "--single-item", "report"], repo, dvc_env)
    assert _ran(out) == ["report"], out[-3000:]
    allowed = set(re.search(r"^dvc_stage: report: snakemake \d+ targets, rules (.*)$", out, re.M).group(1).split())
    assert ran_rules(out) and ran_rules(out) <= allowed and "distill_sfd" not in allowed, out[-3000:]
    assert _digest(repo, sfd) == _only(first, sfd, repo)
    status_clean()

    # 5. the change of step 2 as an experiment, typed as DVC users type it (docs/dvc.md,
    # "Experiments"): it runs from the run-cache, changes params.yaml (config/config.yaml
    # is a link to it), and `dvc exp show` lists it with each setting once and its metrics
    out = _run([*dvc, "exp", "run", "-S", "sfd.loss=l2", "--name", "sfd-l2"], repo, dvc_env)
    assert ran_rules(out) == set(), out[-3000:]
    assert yaml.safe_load(cfg_file.read_text())["sfd"]["loss"] == "l2" and cfg_file.is_symlink()
    shown = _run([*dvc, "exp", "show", "--csv"], repo, dvc_env)
    header, *rows = shown.splitlines()
    columns = header.split(",")
    assert [c for c in columns if c.endswith("sfd.loss")] == ["sfd.loss"], header  # once, not per stage
    assert [c for c in columns if c.endswith("seed")] == ["seed"], header
    assert "sfd.default.nfe2.fid_inf" in header, header
    assert any(r.startswith("sfd-l2,") and ",l2," in r for r in rows), shown
    status_clean()

    # 6. a local directory remote: push, lose cache and outputs, pull them back
    outs = _outs(repo)
    before = _digest(repo, outs)
    _run([*dvc, "remote", "add", "-d", "store", str(tmp_path / "remote")], repo, dvc_env)
    _run([*dvc, "push"], repo, dvc_env)
    shutil.rmtree(repo / ".dvc/cache")
    for p in outs:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    out = _run([*dvc, "status"], repo, dvc_env)
    assert "deleted" in out
    _run([*dvc, "pull"], repo, dvc_env)
    assert _digest(repo, outs) == before
    status_clean()


def test_stage_plan_is_cached_until_an_input_of_the_plan_changes(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("dvc_stage", ROOT / "workflow/scripts/dvc_stage.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    calls = []
    monkeypatch.setattr(mod, "snakemake_jobs", lambda extra: calls.append(extra) or [["sample", ["a"], ["b"]]])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text("seed: 0\n")
    assert mod.planned_jobs([]) == [("sample", ["a"], ["b"])] and len(calls) == 1  # no .dvc: never cached
    (tmp_path / ".dvc").mkdir()
    for _ in range(2):
        assert mod.planned_jobs([]) == [("sample", ["a"], ["b"])]
    assert len(calls) == 2  # planned once, then read back
    (tmp_path / "config/config.yaml").write_text("seed: 1\n")
    mod.planned_jobs([])
    mod.planned_jobs(["--cores", "4"])
    assert len(calls) == 4 and not list((tmp_path / ".dvc/tmp").glob(".*.tmp"))
