"""Run one stage of dvc.yaml through Snakemake, the pipeline's only scheduler.

    python workflow/scripts/dvc_stage.py STAGE [--rest]
    python workflow/scripts/dvc_stage.py --check [snakemake options, e.g. --configfile X]

A DVC stage owns the paths under its `outs` (and `metrics`, `plots`). This script asks
Snakemake for every job of the default target (`rule all`), keeps those whose outputs
lie under STAGE's paths, and runs exactly them:

    snakemake <their output files> --cores all --allowed-rules <their rules>

`--allowed-rules` is what makes DVC and Snakemake agree. DVC deletes a stage's outputs
before running it and restores other stages' outputs from its cache (new mtimes, no
.snakemake metadata, possibly that of another config). With only STAGE's rules allowed,
Snakemake takes every other stage's file as a plain input that nothing can rebuild, so
an mtime or a stale record can never make it rerun (and overwrite) another stage's
work; DVC alone decides which stages are out of date.

Outputs that no stage declares (a rule added later) are not cached by DVC but still
built: their rules are allowed in every stage, and the stage run with `--rest` (the
last one) also targets them; a warning names them. A declared directory that the
config does not produce (e.g. results/students/sfdv with sfdv.enabled: false) is
created empty, since DVC fails a stage whose declared output is missing (a stage with
nothing to build, e.g. a method the config does not run, only does that).

The claims plan (a Snakemake checkpoint) adds jobs no dry run can see: its rows on more
seed sets (results/more-sets, `MORE_SETS`: their rules are allowed in the stage that owns
that folder), and, with claims.max_train_seeds above 1, more SFD students, which belong to
other stages: that setting is refused here with one line.

The script stops with one line when a job's outputs belong to two stages, when a rule
has jobs in two stages, or when a stage reads another stage's output that is not among
its DVC deps (DVC would not rerun it when that output changes). `--check` runs these
checks for every stage without running anything and lists outputs no stage declares.

The plan (a Snakemake dry run in this process, ~4 s, read from the structured job records
of Snakemake's logger) is kept in .dvc/tmp/dvc_stage_plan.json and reused
by later stages, and later repros, while its key holds: the contents of the Snakefile,
workflow/, config/, profiles/ and the diffdistill package (rows come from its methods),
the Snakemake version, $SNAKEMAKE_PROFILE and the extra arguments.

Extra Snakemake arguments come from $DIFFDISTILL_SNAKEMAKE_ARGS (e.g. "--cores 8" or
"--profile profiles/slurm"); they do not enter DVC's run-cache key, so they must not
change results: --configfile and --config are refused (DVC tracks params.yaml, which config/config.yaml links to).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from diffdistill.files import write_json  # atomic: a killed stage leaves no half-written plan

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


class StageError(Exception):
    pass


def _paths(entries) -> list[str]:
    out = []
    for e in entries or []:
        p = next(iter(e)) if isinstance(e, dict) else e
        out.append(os.path.normpath(str(p)))
    return out


def under(path: str, roots) -> bool:
    return any(path == r or path.startswith(r + "/") for r in roots)


def snakemake_jobs(extra: list[str]) -> list[tuple[str, list[str], list[str]]]:
    """(rule, inputs, outputs) of every job of the default target, from a dry run in this
    process: Snakemake's logger reports each planned job as a structured record (event
    JOB_INFO, with its rule name, input and output files), which a filter on that logger
    collects; nothing is read from the human-readable text."""
    import contextlib
    import io
    import logging

    from snakemake.cli import main as snakemake_main
    from snakemake.logging import logger
    from snakemake_interface_logger_plugins.common import LogEvent

    jobs = []

    class Collect(logging.Filter):
        def filter(self, record):
            if getattr(record, "event", None) == LogEvent.JOB_INFO:
                jobs.append((record.rule_name, [os.path.normpath(f) for f in record.input or []],
                             [os.path.normpath(f) for f in record.output or []]))
            return True

    collect, text = Collect(), io.StringIO()
    logger.addFilter(collect)
    try:
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            snakemake_main(["all", "--dry-run", "--forceall", "--nocolor", *extra])
        status = 0
    except SystemExit as e:
        status = e.code
    finally:
        logger.removeFilter(collect)
    if status:
        sys.stderr.write(text.getvalue()[-3000:])
        raise StageError("snakemake could not plan the workflow (see above)")
    if not jobs:
        raise StageError("snakemake's dry run listed no jobs")
    return jobs


PLAN_CACHE = Path(".dvc/tmp/dvc_stage_plan.json")


def _plan_key(extra: list[str]) -> str:
    spec = importlib.util.find_spec("diffdistill")  # locates the package without importing it
    roots = [Path("Snakefile"), Path("workflow"), Path("config"), Path("profiles")]
    roots += [Path(spec.origin).parent] if spec and spec.origin else []
    env = [sys.executable, importlib.metadata.version("snakemake"), os.environ.get("SNAKEMAKE_PROFILE"), extra]
    h = hashlib.sha256(json.dumps(env).encode())
    for root in roots:
        for f in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(f"{f}\0".encode())
                h.update(f.read_bytes())
    return h.hexdigest()


def _cached_plan(key: str):
    try:
        cached = json.loads(PLAN_CACHE.read_text())
        return cached["jobs"] if cached["key"] == key else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def planned_jobs(extra: list[str]) -> list[tuple]:
    """snakemake_jobs(extra), from the plan cache when nothing it depends on changed
    (outside a DVC repository: no cache)."""
    key = _plan_key(extra) if PLAN_CACHE.parent.parent.is_dir() else None
    jobs = _cached_plan(key) if key else None
    if jobs is None:
        jobs = snakemake_jobs(extra)
        if key:
            write_json(PLAN_CACHE, {"key": key, "jobs": jobs})
    return [tuple(j) for j in jobs]


class Plan:
    """Which Snakemake jobs belong to which stage of dvc.yaml."""

    def __init__(self, stages: dict, jobs):
        self.stages, self.jobs = stages, [j for j in jobs if j[2]]  # `rule all` writes nothing
        self.owned = {s: _paths(d.get("outs")) + _paths(d.get("metrics")) + _paths(d.get("plots"))
                      for s, d in stages.items()}
        self.rule_owners: dict[str, set] = {}
        for rule, _, outs in self.jobs:
            for f in outs:
                self.rule_owners.setdefault(rule, set()).add(self.owner(f))
        self.unowned = [j for j in self.jobs if self.rule_owners[j[0]] == {None}]

    def owner(self, path: str) -> str | None:
        for s, roots in self.owned.items():
            if under(path, roots):
                return s
        return None

    def stage(self, name: str):
        """(targets, rules) of stage `name`, after the checks."""
        mine = [j for j in self.jobs if self.owner(j[2][0]) == name]
        for rule, _, outs in mine:
            others = {self.owner(f) for f in outs} - {name}
            if others:
                raise StageError(f"a {rule} job writes {', '.join(outs)}: outputs of stages {name} and "
                                 f"{', '.join(sorted(map(str, others)))}; one job's outputs must belong to one stage")
        rules = {j[0] for j in mine}
        for r in sorted(rules):
            if self.rule_owners[r] - {name}:
                raise StageError(f"rule {r} has jobs in stage {name} and in "
                                 f"{', '.join(sorted(map(str, self.rule_owners[r] - {name})))}; "
                                 "give each rule's outputs to one stage")
        deps = _paths(self.stages[name].get("deps"))
        for rule, ins, _ in mine:
            for f in ins:
                o = self.owner(f)
                if o not in (None, name) and not under(f, deps):
                    raise StageError(f"stage {name} reads {f} (rule {rule}), an output of stage {o}: "
                                     f"add it (or a folder holding it) to the deps of {name} in dvc.yaml")
        return [f for _, _, outs in mine for f in outs], rules


def _stages() -> dict:
    return yaml.safe_load(Path("dvc.yaml").read_text())["stages"]


def run_snakemake(cmd: list[str]) -> int:
    """Run Snakemake and return its exit code. On Ctrl-C (which reaches Snakemake too,
    from the terminal's process group) wait for it to stop its jobs and remove its lock
    (subprocess.run would kill it 0.25 s later and leave the lock, and the next
    `dvc repro` would fail): if it is still running after 2 s, it gets the SIGINT itself;
    after 120 s more, SIGTERM. The training it stopped resumes on the next run."""
    import signal

    proc = subprocess.Popen(cmd)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        for sig, grace in ((None, 2), (signal.SIGINT, 120), (signal.SIGTERM, 30)):
            if sig is not None:
                proc.send_signal(sig)
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            proc.kill()
            proc.wait()
        print("dvc_stage: interrupted; rerun `dvc repro` to go on (training resumes from its last resume point)",
              file=sys.stderr)
        return 130


# rules whose jobs only the claims plan (a Snakemake checkpoint) creates, after a dry run has
# been read: the rows it evaluates on more seed sets, all under results/more-sets
MORE_SETS = ("results/more-sets", {"sample_more_sets", "fid_more_sets", "fid_more_sets_reference"})


def run(name: str, rest: bool, extra: list[str]) -> None:
    stages = _stages()
    if name not in stages:
        raise StageError(f"no stage '{name}' in dvc.yaml")
    plan = Plan(stages, planned_jobs(extra))
    targets, rules = plan.stage(name)
    allowed = rules | {j[0] for j in plan.unowned}
    if plan.owner(f"{MORE_SETS[0]}/x") == name:
        allowed |= MORE_SETS[1]
        seeds = (yaml.safe_load(Path("params.yaml").read_text()).get("claims") or {}).get("max_train_seeds", 1)
        if seeds > 1:
            raise StageError(f"params.yaml claims.max_train_seeds is {seeds}: the claims plan may then train SFD "
                             "students that belong to other stages of dvc.yaml; under dvc repro keep it at 1 (run "
                             "snakemake --cores all results/claims for more training seeds)")
    if rest:
        extra_targets = [f for _, _, outs in plan.unowned for f in outs]
        if extra_targets:
            print(f"dvc_stage: warning: no stage of dvc.yaml declares {', '.join(extra_targets)}; "
                  "built here, not cached by DVC", file=sys.stderr)
        targets += extra_targets
    if targets:
        print(f"dvc_stage: {name}: snakemake {len(targets)} targets, rules {' '.join(sorted(rules))}",
              file=sys.stderr, flush=True)
        code = run_snakemake([*SNAKEMAKE, *targets, "--cores", "all", "--nocolor",
                              "--allowed-rules", *sorted(allowed), *extra])
        if code != 0:
            sys.exit(code)
    # declared folders this config does not produce: empty, so DVC can record them
    for p in plan.owned[name]:
        if not Path(p).exists() and p not in targets and not Path(p).suffix:
            print(f"dvc_stage: {p}: nothing to build under it with this config; empty folder",
                  file=sys.stderr)
            Path(p).mkdir(parents=True)


def check(extra: list[str]) -> None:
    plan = Plan(_stages(), snakemake_jobs(extra))
    for name in plan.stages:
        targets, rules = plan.stage(name)
        print(f"{name}: {len(targets)} outputs, rules {' '.join(sorted(rules)) or '-'}")
    for _, _, outs in plan.unowned:
        for f in outs:
            print(f"undeclared: {f}")


def config_overrides(extra: list[str]) -> list[str]:
    """The options among Snakemake arguments that set the workflow's config (--configfile,
    --config and their short, attached and abbreviated forms, or a profile named there
    that sets them), read by Snakemake's own argument parser rather than by matching
    words."""
    if not extra:
        return []
    import contextlib
    import io

    from snakemake.cli import get_argument_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            first, _ = get_argument_parser().parse_known_args(extra)
            profiles = [p for p in (getattr(first, "profile", None),) if p]
            ns, _ = get_argument_parser(profiles=profiles).parse_known_args(extra)
    except SystemExit:
        last = (err.getvalue().strip().splitlines() or ["?"])[-1]
        raise StageError(f"DIFFDISTILL_SNAKEMAKE_ARGS: Snakemake cannot parse {shlex.join(extra)!r} ({last})") from None
    return [name for name, value in (("--configfile", ns.configfile), ("--config", ns.config)) if value]


def main(argv: list[str]) -> None:
    extra = shlex.split(os.environ.get("DIFFDISTILL_SNAKEMAKE_ARGS", ""))
    try:
        if argv[:1] == ["--check"]:
            check(extra + argv[1:])
            return
        if not argv or argv[0].startswith("-"):
            raise StageError("usage: dvc_stage.py STAGE [--rest] | dvc_stage.py --check [snakemake options]")
        setting = config_overrides(extra)
        if setting:
            raise StageError(f"DIFFDISTILL_SNAKEMAKE_ARGS must not set the config ({setting[0]}): DVC tracks "
                             "params.yaml (config/config.yaml); edit it instead")
        run(argv[0], "--rest" in argv[1:], extra)
    except StageError as e:
        sys.exit(f"dvc_stage: error: {e}")


if __name__ == "__main__":
    main(sys.argv[1:])
