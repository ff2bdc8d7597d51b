"""Adding a method touches exactly four files: its module, its rules file, its schema
section and its config entry. In a copy of the repository, a small method (one-to-one
output KD at the teacher's width, sampled with Euler) is added that way, the tiny
config runs through Snakemake (from the tiny run's results: only the new method's jobs
run), and its row reaches the main table."""
import shutil
import subprocess

import pandas as pd
import pytest

from conftest import VENV_BIN, WORKFLOW_FILES, copy_workflow, ran_rules

MODULE = '''"""Output KD at the teacher's width: the student starts as the teacher and matches its
denoised value at noise levels drawn from the schedule (a test method)."""
import torch

from ..data import load_dataset
from ..naming import TEACHER, student_model
from ..options import DATA_OPTIONS, SCHEDULE_OPTIONS, Opt, positive_int
from ..precond import load_denoiser
from ..rows import Row
from ..sampling import Recipe
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

    def __init__(self, args, device):
        self.args = args
        self.teacher, self.spec = load_denoiser(args.teacher, device=device)
        self.model, _ = load_denoiser(args.teacher, device=device)
        self.images = load_dataset(args.dataset, args.dataset_path)[0]
        self.counters = {"teacher_nfe": 0}

    def train_step(self, iteration, gen, opt_step):
        y = self.images[torch.randint(len(self.images), (self.args.batch_size,), generator=gen)]
        sigma = Schedule.from_args(self.args).sigma_at(torch.rand(len(y), generator=gen))
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
        return Recipe(solver="euler", nfe=self.args.nfe, afs=False, grid="edm", schedule=Schedule.from_args(self.args))

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
    params:
        method="widthkd",
        args=train_args("widthkd", "seed", "device", "amp", "dataset", "schedule", "widthkd"),
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
@pytest.mark.xdist_group("tiny_run")  # one worker builds conftest.tiny_run for both
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

    # The tiny run's results, with their times and Snakemake's records: the existing rows
    # are up to date, so only the new method's jobs and the tables that list it run.
    for name in ("results", ".snakemake"):
        shutil.copytree(tiny_run[0] / name, repo / name, symlinks=True)
    env = {**cli_env, "PYTHONPATH": str(repo / "src")}  # the copy's package, new module included
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
