"""Run one stage of dvc.yaml through Snakemake, the pipeline's only scheduler.

    python workflow/scripts/dvc_stage.py STAGE [--rest]

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
created empty, since DVC fails a stage whose declared output is missing.

Extra Snakemake arguments come from $DIFFDISTILL_SNAKEMAKE_ARGS (e.g. "--cores 8" or
"--profile profiles/slurm"); they do not enter DVC's run-cache key, so they must not
change results: --configfile and --config are refused (DVC tracks config/config.yaml).
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
JOB_RE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):$")
FIELD_RE = re.compile(r"^\s+(input|output): (.*)$")


def fail(msg: str) -> None:
    sys.exit(f"dvc_stage: error: {msg}")


def _paths(entries) -> list[str]:
    out = []
    for e in entries or []:
        p = next(iter(e)) if isinstance(e, dict) else e
        out.append(os.path.normpath(str(p)))
    return out


def stage_paths(stage: dict) -> list[str]:
    return _paths(stage.get("outs")) + _paths(stage.get("metrics")) + _paths(stage.get("plots"))


def under(path: str, roots) -> str | None:
    for r in roots:
        if path == r or path.startswith(r + "/"):
            return r
    return None


def snakemake_jobs(extra: list[str]) -> list[tuple[str, list[str], list[str]]]:
    """(rule, inputs, outputs) of every job of the default target, from a dry run."""
    r = subprocess.run([*SNAKEMAKE, "--dry-run", "--forceall", "--nocolor", *extra],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-3000:] + r.stderr[-3000:])
        fail("snakemake could not plan the workflow (see above)")
    jobs, cur = [], None
    for line in r.stdout.splitlines():
        m = JOB_RE.match(line)
        if m:
            cur = (m.group(1), [], [])
            jobs.append(cur)
            continue
        m = FIELD_RE.match(line)
        if m and cur is not None:
            files = [os.path.normpath(f) for f in m.group(2).split(", ") if f]
            (cur[1] if m.group(1) == "input" else cur[2]).extend(files)
        elif not line.strip():
            cur = None
    if not jobs:
        fail("snakemake's dry run listed no jobs")
    return jobs


def main(argv: list[str]) -> None:
    if not argv or argv[0].startswith("-"):
        fail("usage: dvc_stage.py STAGE [--rest]")
    name, rest = argv[0], "--rest" in argv[1:]
    extra = shlex.split(os.environ.get("DIFFDISTILL_SNAKEMAKE_ARGS", ""))
    if any(a.split("=")[0] in ("--configfile", "--configfiles", "--config", "-C") for a in extra):
        fail("DIFFDISTILL_SNAKEMAKE_ARGS must not set the config: DVC tracks config/config.yaml")
    stages = yaml.safe_load(Path("dvc.yaml").read_text())["stages"]
    if name not in stages:
        fail(f"no stage '{name}' in dvc.yaml")
    owned = {s: stage_paths(d) for s, d in stages.items()}
    deps = _paths(stages[name].get("deps"))

    def owner(path):
        for s, roots in owned.items():
            if under(path, roots):
                return s
        return None

    jobs = snakemake_jobs(extra)
    rule_owners: dict[str, set] = {}
    for rule, _, outs in jobs:
        for f in outs:
            rule_owners.setdefault(rule, set()).add(owner(f))
    mine = [j for j in jobs if j[2] and owner(j[2][0]) == name]
    unowned = [j for j in jobs if j[2] and rule_owners[j[0]] == {None}]
    for rule, _, outs in mine:
        others = {owner(f) for f in outs} - {name}
        if others:
            fail(f"a {rule} job writes {', '.join(outs)}: outputs of stages {name} and "
                 f"{', '.join(sorted(map(str, others)))}; one job's outputs must belong to one stage")
    rules = {j[0] for j in mine}
    split = {r: rule_owners[r] - {name} for r in rules if rule_owners[r] - {name}}
    if split:
        r, o = next(iter(split.items()))
        fail(f"rule {r} has jobs in stage {name} and in {', '.join(sorted(map(str, o)))}; "
             "give each rule's outputs to one stage")
    # every input this stage reads from another stage must be one of its DVC deps,
    # else DVC would not rerun it when that input changes
    for rule, ins, _ in mine:
        for f in ins:
            o = owner(f)
            if o not in (None, name) and not under(f, deps):
                fail(f"stage {name} reads {f} (rule {rule}), an output of stage {o}: "
                     f"add it (or a folder holding it) to the deps of {name} in dvc.yaml")
    targets = [f for _, _, outs in mine for f in outs]
    allowed = rules | {j[0] for j in unowned}
    if rest:
        extra_targets = [f for _, _, outs in unowned for f in outs]
        if extra_targets:
            print(f"dvc_stage: warning: no stage of dvc.yaml declares {', '.join(extra_targets)}; "
                  "built here, not cached by DVC", file=sys.stderr)
        targets += extra_targets
    if not targets:
        fail(f"no Snakemake output lies under the outputs of stage {name}")
    cmd = [*SNAKEMAKE, *targets, "--cores", "all", "--nocolor", "--allowed-rules", *sorted(allowed), *extra]
    print(f"dvc_stage: {name}: snakemake {len(targets)} targets, rules {' '.join(sorted(rules))}",
          file=sys.stderr, flush=True)
    r = subprocess.run(cmd)
    if r.returncode != 0:
        sys.exit(r.returncode)
    # declared folders this config does not produce: empty, so DVC can record them
    for p in owned[name]:
        if not Path(p).exists() and not any(f == p for f in targets):
            print(f"dvc_stage: {p}: nothing to build under it with this config; empty folder",
                  file=sys.stderr)
            Path(p).mkdir(parents=True)


if __name__ == "__main__":
    main(sys.argv[1:])
