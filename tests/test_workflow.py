"""The tiny config through Snakemake, end to end; a new method added to a copy of the
repository on top of the tiny run's results; config errors at the CLI.

Adding a method touches exactly four files: its module, its rules file, its schema section
and its config entry; `python -m diffdistill.generate` then writes the generated files (the
config reference, the method's DVC stage). In a copy of the repository, a small method
(one-to-one output KD at the teacher's width, sampled with Euler) is added that way, the
tiny config runs through Snakemake (from the tiny run's results: only the new method's jobs
run), and its row reaches the main table.

Both tests that read the tiny run (conftest.tiny_run) live in this file, which the slow tier
(.ci/run) runs in one pytest process, so the run is built once."""
import re
import shutil
import subprocess

import pandas as pd
import pytest

from conftest import VENV_BIN, WORKFLOW_FILES, copy_workflow, ran_rules


def test_mistyped_config_key_is_one_line(tmp_path, cli_env):
    copy_workflow(tmp_path)
    (tmp_path / "bad.yaml").write_text("sfd:\n  itres: 3\n")
    r = subprocess.run([str(VENV_BIN / "snakemake"), "-n", "--configfile", "bad.yaml"], cwd=tmp_path,
                       env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    errors = [l for l in (r.stdout + r.stderr).splitlines() if "error" in l.lower()]
    assert errors == ["config error: unknown config key 'sfd.itres'; did you mean 'iters'?"], r.stderr


@pytest.mark.slow
def test_tiny_config_end_to_end(tiny_run, cli_env):
    tmp_path, cmd = tiny_run  # the run itself: conftest.tiny_run
    df = pd.read_csv(tmp_path / "results/tables/fid_vs_nfe.csv")
    assert {"SFD", "teacher (reference)", "SFD target (teacher trajectories)"} <= set(df["method"])
    assert df.filter(like="NFE").notna().any().all()
    assert (tmp_path / "results/samples/students/sfd/default/nfe2/grid.png").stat().st_size > 0
    assert (tmp_path / "results/students/sfd/default/nfe2/model.pt.meta.json").exists()
    # the main tables hold SFD, its targets and the teacher's samplers; PD's rounds, SFD-v,
    # the second stage and O2MKD (N = 2 and its one-to-one baseline) reach results/extended
    assert not {"PD (progressive distillation)", "SFD-v (one model)", "SFD second stage"} & set(df["method"])
    ext = pd.read_csv(tmp_path / "results/extended/fid_vs_nfe.csv")
    assert {"SFD", "PD (progressive distillation)", "PD first teacher (DDIM on the PD grid)", "SFD-v (one model)",
            "SFD second stage"} <= set(ext["method"])
    assert ext.loc[ext["method"] == "SFD second stage", "NFE 1"].notna().all()
    o2 = pd.read_csv(tmp_path / "results/extended/o2mkd.csv")
    assert list(o2["model"]) == ["teacher", "one-to-one KD (N=1)", "O2MKD N=2"] and o2.filter(like="FID").notna().all().all()
    cost = pd.read_csv(tmp_path / "results/extended/cost.csv")
    assert {"SFD", "PD (progressive distillation)", "O2MKD N=2"} <= set(cost["method"])
    assert (cost["student optimizer steps"] > 0).all()
    jobs = pd.read_csv(tmp_path / "results/tables/jobs.csv")
    assert {"train sfd", "train teacher", "teacher trajectories"} <= set(jobs["job kind"]) and (jobs["jobs"] > 0).all()
    # the run's jobs forked from its server (diffdistill.forkserver): every sampling job, none refused
    forked = (tmp_path / "results/logs/forkserver.log").read_text()
    assert "refused" not in forked
    samples = [*(tmp_path / "results/samples").rglob("samples.npz"), *(tmp_path / "results/more-sets").rglob("*.npz")]
    assert forked.count(": diffdistill sample ") == len([f for f in samples if f.name == "samples.npz"])
    # the claims plan: what it bought, and why, on the claims' page
    assert (tmp_path / "results/claims-plan/plan.json").exists() and (tmp_path / "results/claims/plan.md").exists()
    # the ablation table, the curves and the figures
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
    # tables that read the ablations (the claims and their plan among them); nothing else reruns
    (tmp_path / "more.yaml").write_text("ablations:\n  t_min: [0.006, 0.02, 0.05]\n")
    r = subprocess.run([*cmd, "more.yaml", "-n"], cwd=tmp_path, env=cli_env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", r.stdout, re.M))
    assert counts == {"teacher_trajectories": "1", "distill_sfd": "1", "sample": "1", "fid": "1",
                      "ablation_table": "1", "claims_plan": "1", "figures": "1", "claims": "1", "run_config": "1",
                      "all": "1", "total": "10"}, r.stdout[-3000:]
    outputs = "\n".join(l for l in r.stdout.splitlines() if l.strip().startswith("output:"))
    assert "tmin0.05" in outputs and "tmin0.02-" not in outputs, outputs


MODULE = '''"""Output KD at the teacher's width: the student starts as the teacher and matches its
denoised value at noise levels drawn from the schedule (a test method). Torch is imported
where training needs it: the workflow plans rows without it."""
from ..naming import TEACHER, student_model
from ..options import DATA_OPTIONS, SCHEDULE_OPTIONS, Opt, positive_int
from ..recipe import Recipe
from ..rows import Row
from ..schedules import Schedule
from . import register
from .base import Method


@register
class WidthKD(Method):
    name = "widthkd"
    section = "widthkd"
    summary = "output KD of the teacher into a copy of itself"
    options = (Opt("teacher", required=True, help="teacher checkpoint"),
               Opt("nfe", required=True, help="Euler steps of its row", kwargs={"type": positive_int})
               ) + DATA_OPTIONS + SCHEDULE_OPTIONS

    def __init__(self, settings, device):  # its command's typed settings: every widthkd key, the options above
        from ..data import load_dataset
        from ..precond import load_denoiser

        self.settings = settings
        self.teacher, self.spec = load_denoiser(settings.teacher, device=device)
        self.model, _ = load_denoiser(settings.teacher, device=device)
        self.images = load_dataset(settings.dataset, settings.dataset_path)[0]
        self.counters = {"teacher_nfe": 0}

    def train_step(self, iteration, gen, opt_step):
        import torch

        y = self.images[torch.randint(len(self.images), (self.settings.batch_size,), generator=gen)]
        sigma = Schedule.from_args(self.settings).sigma_at(torch.rand(len(y), generator=gen))
        x = y + sigma.view(-1, 1, 1, 1) * torch.randn(y.shape, generator=gen)
        with torch.no_grad():
            target = self.teacher(x, sigma)
        loss = (self.train_model(x, sigma) - target).pow(2).mean()
        opt_step(loss)
        self.counters["teacher_nfe"] += len(y)
        return {"loss": loss.item()}

    @classmethod
    def rule_values(cls, cfg, wildcards, input, output):
        return {"teacher": input.teacher, "nfe": wildcards.nfe}

    def recipe(self):
        return Recipe(solver="euler", nfe=self.settings.nfe, afs=False, grid="edm", schedule=Schedule.from_args(self.settings))

    @staticmethod
    def rows(cfg):
        return [Row(name=f"students/widthkd/default/nfe{n}", label="width KD (test method)", nfe=n,
                    family="widthkd", model=student_model("widthkd", "default", n)) for n in cfg["widthkd"]["nfe"]]
'''

RULES = '''# A test method: output KD of the teacher into a copy of itself.


use rule _train as distill_widthkd with:
    input:
        unpack(train_input("widthkd")),
    output:
        model="results/students/widthkd/default/nfe{nfe}/model.pt",
    log:
        "results/logs/distill/widthkd/nfe{nfe}.log",
'''

SCHEMA = '''  widthkd:
    type: object
    description: a test method (output KD of the teacher into a copy of itself)
    additionalProperties: false
    default: {}
    properties:
      nfe: {type: array, items: {type: integer, minimum: 1}, default: [3], description: its rows' Euler steps}
      iters: {type: integer, minimum: 1, default: 4, description: training iterations}
      batch_size: {type: integer, minimum: 1, default: 16, description: images per iteration}
      lr: {type: number, exclusiveMinimum: 0, default: 0.0001, description: Adam learning rate}
      ckpt_every: {type: integer, minimum: 1, default: 2, description: iterations between resume checkpoints}
'''


@pytest.mark.slow
def test_a_new_method_needs_its_module_rules_schema_and_config_only(tmp_path, cli_env, tiny_run):
    repo = tmp_path / "repo"
    repo.mkdir()
    copy_workflow(repo, WORKFLOW_FILES + ("src", "dvc.yaml", "pyproject.toml"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-qm", "base"]):
        subprocess.run(cmd, cwd=repo, check=True)

    (repo / "src/diffdistill/methods/widthkd.py").write_text(MODULE)
    (repo / "workflow/rules/methods/widthkd.smk").write_text(RULES)
    with open(repo / "src/diffdistill/schemas/config.schema.yaml", "a") as f:
        f.write(SCHEMA)
    with open(repo / "config/test.yaml", "a") as f:
        f.write("widthkd: {nfe: [3], iters: 4}\n")
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo,
                            capture_output=True, text=True, check=True).stdout.split("\n")[:-1]
    assert sorted(line[3:] for line in status) == ["config/test.yaml", "src/diffdistill/methods/widthkd.py",
                                                   "src/diffdistill/schemas/config.schema.yaml",
                                                   "workflow/rules/methods/widthkd.smk"], status
    env = {**cli_env, "PYTHONPATH": str(repo / "src")}  # the copy's package, new module included
    # the generated files follow from one command: the new keys' reference and the new DVC stage
    gen = [str(VENV_BIN / "python"), "-m", "diffdistill.generate"]
    r = subprocess.run(gen, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.splitlines() == ["wrote config/README.md", "wrote dvc.yaml"], r
    assert "`widthkd.lr`" in (repo / "config/README.md").read_text()
    assert "  widthkd:\n    cmd: ${run} widthkd\n" in (repo / "dvc.yaml").read_text()
    assert subprocess.run([*gen, "--check"], cwd=repo, env=env, capture_output=True).returncode == 0

    # The tiny run's results, with their times and Snakemake's records: the existing rows
    # are up to date, so only the new method's jobs and the tables that list it run.
    for name in ("results", ".snakemake"):
        shutil.copytree(tiny_run[0] / name, repo / name, symlinks=True)
    r = subprocess.run([str(VENV_BIN / "snakemake"), "--cores", "2", "results/tables", "--configfile",
                        "config/test.yaml"], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    ran = ran_rules(r.stdout + r.stderr)
    assert "distill_widthkd" in ran and not ran & {"train_teacher", "distill_sfd", "distill_pd"}, ran
    df = pd.read_csv(repo / "results/tables/fid_vs_nfe.csv")
    row = df[df["method"] == "width KD (test method)"]
    assert len(row) == 1 and row["NFE 3"].notna().all()
    cost = pd.read_csv(repo / "results/tables/cost.csv")
    assert "width KD (test method)" in set(cost["method"])
    help_text = subprocess.run([str(VENV_BIN / "diffdistill"), "train", "--help"], env=env, capture_output=True,
                               text=True).stdout
    assert "widthkd" in help_text


def test_tiny_run_users_share_one_pytest_process():
    """conftest.tiny_run is a session fixture: each pytest process (or xdist worker) builds
    its own. The slow tier (.ci/run) runs its files in two pytest processes, without
    workers; every test that reads the tiny run must live in one file of one process, or
    the run is built twice."""
    import ast

    from conftest import ROOT

    users = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(a.arg == "tiny_run" for a in node.args.args):
                users.add((path.name, node.name))
    assert {f for f, _ in users} == {"test_workflow.py"} and len(users) == 2, users
    ci = (ROOT / ".ci/run").read_text()
    second = re.search(r"^SECOND=\(([^)]*)\)$", ci, re.M)
    assert second and "tests/test_workflow.py" in second.group(1).split(), "the tiny run's file in one process"
    slow_tier = [line for line in ci.splitlines() if "pytest -q -m slow" in line]
    assert len(slow_tier) == 2 and not any(re.search(r" -n |--dist", line) for line in slow_tier), slow_tier
