"""The Snakemake profiles: the local one (profiles/default, which Snakemake loads on every
run, --profile or not) never replaces a key of the SLURM profile; on SLURM each job asks
for as many CPUs as it runs threads; GPU jobs go to the partition the config names.

Dry runs in a copy of the workflow that holds both profiles: a job's threads are read
from its printed shell command (`--threads N`), its resources from the job display."""
import re
import subprocess

import yaml

from conftest import ROOT, VENV_BIN, copy_workflow

TARGETS = ["results/teacher/model.pt", "results/samples/reference/nfe7/samples.npz"]


def _dry_run(cwd, env, *args) -> str:
    r = subprocess.run([str(VENV_BIN / "snakemake"), "-n", *TARGETS, *args, "--configfile", "config/test.yaml"],
                       cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout + r.stderr


def _jobs(out: str) -> dict:
    """rule -> (threads of its command, its resources line) for each job of a dry run."""
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        threads = re.search(r"--threads (\d+)", block)
        if m and threads:
            res = re.search(r"resources: (.*)", block)
            jobs[m.group(1)] = (int(threads.group(1)), res.group(1) if res else "")
    return jobs


def test_default_profile_sets_no_key_of_the_slurm_profile():
    local = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())
    slurm = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert not set(local) & set(slurm) - {"rerun-incomplete", "printshellcmds", "show-failed-logs"}, \
        set(local) & set(slurm)
    for key in set(local) & set(slurm):
        assert local[key] == slurm[key], key  # the same value: replacing it changes nothing


def test_slurm_cpus_come_from_threads():
    """No cpus_per_task anywhere in the SLURM profile: the executor then asks for the job's
    threads as --cpus-per-task, and every rule asking for a GPU has its threads set."""
    slurm = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert "cpus_per_task" not in slurm["default-resources"]
    assert not [r for r, res in slurm["set-resources"].items() if "cpus_per_task" in res]
    gpu_rules = {r for r, res in slurm["set-resources"].items() if res.get("gpu")}
    assert gpu_rules <= set(slurm["set-threads"]), gpu_rules - set(slurm["set-threads"])


def test_slurm_profile_threads_survive_the_default_profile(tmp_path, cli_env):
    copy_workflow(tmp_path)
    assert (tmp_path / "profiles/default/config.yaml").exists()
    slurm = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())["set-threads"]
    # --cores: a dry run caps threads at its cores (1 unless given); a SLURM run does not
    out = _dry_run(tmp_path, cli_env, "--profile", "profiles/slurm", "--cores", "16")
    assert "workflow specific profile profiles/default" in out  # both profiles are loaded
    jobs = _jobs(out)
    assert jobs["train_teacher"][0] == slurm["train_teacher"] and jobs["sample_reference"][0] == slurm["sample_reference"], jobs
    # locally: the teacher's threads come from the config (threads_teacher), the others' from threads_per_job
    jobs = _jobs(_dry_run(tmp_path, cli_env, "--cores", "4", "--config", "threads_teacher=3"))
    assert jobs["train_teacher"][0] == 3 and jobs["sample_reference"][0] == 1, jobs


def test_gpu_jobs_go_to_the_configured_partition(tmp_path, cli_env):
    copy_workflow(tmp_path)
    jobs = _jobs(_dry_run(tmp_path, cli_env, "--cores", "4", "--config", "device=cuda", "gpu_partition=gpuq"))
    assert "slurm_partition=gpuq" in jobs["sample_reference"][1] and "gpu=1" in jobs["sample_reference"][1], jobs
    jobs = _jobs(_dry_run(tmp_path, cli_env, "--cores", "4", "--config", "device=cuda"))
    assert "slurm_partition" not in jobs["sample_reference"][1], jobs  # unset: the cluster's default
