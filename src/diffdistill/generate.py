"""Every generated file of the repository, each from its one source:

- the config schema's shared enums (`$defs` of src/diffdistill/schemas/config.schema.yaml):
  `solver` from the names of `diffdistill.solvers.SOLVERS`; the keys that take a solver
  `$ref` it (`diffdistill.config.resolve_refs`);
- config/README.md, every key of the schema (`diffdistill.config.reference_markdown`);
- dvc.yaml's blocks between `# BEGIN generated <block>` and `# END generated <block>`
  comments: the stage of each registered method (`method-stages`, from
  `diffdistill.methods.dvc_stages`, in registry order) and the folders of those stages
  that the evaluation and report stages read (`method-outs`). Everything outside the
  markers (vars, the other stages, comments) is hand-written and kept as it is.

Adding a method (docs/layout.md) is four hand-written files, then

    .venv/bin/python -m diffdistill.generate          # writes the files that changed
    .venv/bin/python -m diffdistill.generate --check  # one line per stale file, exit 1; writes nothing

from the repository root (tests/test_generate.py runs the check in the fast tier). Like
the workflow's planning, it imports no torch, numpy or pandas.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .errors import UserError

SCHEMA = "src/diffdistill/schemas/config.schema.yaml"
README = "config/README.md"
DVC = "dvc.yaml"
COMMAND = "python -m diffdistill.generate"


# --------------------------------------------------------------------------- the schema


def schema_enums() -> dict[str, list[str]]:
    """The `$defs` entries whose enum is written here, and their values: the deterministic
    solvers (the config's solver keys drive ODE trajectories and baselines; the
    consistency sampler is a consistency model's recipe, not a config choice)."""
    from .solvers import SOLVERS, STOCHASTIC

    return {"solver": [s for s in SOLVERS if s not in STOCHASTIC]}


def _scalar(value: str) -> str:
    """A string as a YAML flow scalar: plain where YAML reads it back as this string."""
    import yaml

    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.+/-]*|\$\{\w+\}[A-Za-z0-9_ ./-]*", value) is not None
    if plain and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar


def schema_text(text: str) -> str:
    """The schema's text with the enum of each `schema_enums` entry written in its `$defs`
    line (`  <name>: {type: string, enum: [...], ...}`); the rest as it is."""
    defs = re.search(r"^\$defs:.*\n((?:[ #].*\n|\n)*)", text, re.M)
    if not defs:
        raise UserError(f"{SCHEMA}: no top-level $defs (the solver names live in $defs.solver)")
    block = defs.group(1)
    for name, values in schema_enums().items():
        line = re.compile(rf"^(  {re.escape(name)}: \{{.*?\benum: )\[[^\]]*\]", re.M)
        if len(line.findall(block)) != 1:
            raise UserError(f"{SCHEMA}: $defs needs one line '  {name}: {{type: string, enum: [...], ...}}'")
        enum = "[" + ", ".join(_scalar(v) for v in values) + "]"
        block = line.sub(lambda m: m.group(1) + enum, block)
    new = text[:defs.start(1)] + block + text[defs.end(1):]
    from .config import parse_schema

    got = {n: parse_schema(new, resolve=False)["$defs"][n].get("enum") for n in schema_enums()}
    if got != schema_enums():  # the line rewritten is the one YAML reads
        raise UserError(f"{SCHEMA}: could not write the enums of $defs ({', '.join(schema_enums())})")
    return new


# --------------------------------------------------------------------------- dvc.yaml


def _stage_lines(name: str, stage: dict, indent: str) -> list[str]:
    lines = [f"{indent}{name}:"]
    for key, value in stage.items():
        if isinstance(value, list):
            lines.append(f"{indent}  {key}:")
            lines += [f"{indent}    - {_scalar(v)}" for v in value]
        else:
            lines.append(f"{indent}  {key}: {_scalar(value)}")
    return lines


def dvc_blocks() -> dict:
    """What each generated block of dvc.yaml holds, as a function of its marker's indent."""
    from . import methods

    stages = methods.dvc_stages()
    outs = list(dict.fromkeys(o for s in stages.values() for o in s["outs"]))

    def method_stages(indent: str) -> list[str]:
        lines: list[str] = []
        for name, stage in stages.items():
            lines += ([""] if lines else []) + _stage_lines(name, stage, indent)
        return lines

    return {"method-stages": method_stages, "method-outs": lambda indent: [f"{indent}- {_scalar(o)}" for o in outs]}


MARKERS = re.compile(r"^(?P<begin>(?P<indent>[ ]*)# BEGIN generated (?P<name>[\w-]+)\b.*\n)"
                     r"(?P<body>(?:.*\n)*?)"
                     r"(?P<end>(?P=indent)# END generated (?P=name)\b.*\n)", re.M)


def dvc_yaml(text: str) -> str:
    """dvc.yaml's text with every generated block written anew; the rest as it is."""
    import yaml

    blocks = dvc_blocks()
    seen = []

    def block(m: re.Match) -> str:
        name, indent = m.group("name"), m.group("indent")
        if name not in blocks:
            raise UserError(f"{DVC}: unknown generated block '{name}' (known: {', '.join(blocks)})")
        seen.append(name)
        return m.group("begin") + "".join(f"{line}\n" for line in blocks[name](indent)) + m.group("end")

    new = MARKERS.sub(block, text)
    if "method-stages" not in seen:
        raise UserError(f"{DVC}: no block '# BEGIN generated method-stages' ... '# END generated method-stages' "
                        "under stages: (where the registered methods' stages go)")
    from . import methods

    parsed = yaml.safe_load(new)["stages"]
    for name, want in methods.dvc_stages().items():  # what YAML reads back is the registry's
        if parsed.get(name) != want:
            raise UserError(f"{DVC}: stage {name} reads back as {parsed.get(name)}, not {want}; "
                            "is a generated block inside another stage?")
    return new


# --------------------------------------------------------------------------- all of them


def generated(root: Path) -> dict[str, tuple[str | None, str]]:
    """{path: (its text now or None, its text as generated)} of every generated file
    under `root` (the repository). The reference is made from the schema as generated."""
    from .config import parse_schema, reference_markdown

    root = Path(root)
    now = {}
    for path in (SCHEMA, DVC):
        if not (root / path).is_file():
            raise UserError(f"no {path} under {root}: run {COMMAND} from the repository root")
    for path in (SCHEMA, README, DVC):
        now[path] = (root / path).read_text() if (root / path).is_file() else None
    schema = schema_text(now[SCHEMA])
    return {SCHEMA: (now[SCHEMA], schema),
            README: (now[README], reference_markdown(parse_schema(schema))),
            DVC: (now[DVC], dvc_yaml(now[DVC]))}


def stale(root: Path) -> list[str]:
    """One line per generated file under `root` that is not what it would be generated as."""
    return [f"{path} is out of date: run {COMMAND}" for path, (old, new) in generated(root).items() if old != new]


def write(root: Path) -> list[str]:
    """Write (atomically) the generated files that changed; return their paths."""
    from .files import write_text

    changed = [(path, new) for path, (old, new) in generated(root).items() if old != new]
    for path, new in changed:
        write_text(Path(root) / path, new)
    return [path for path, _ in changed]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="exit 1 with one line per stale file; write nothing")
    p.add_argument("--root", default=".", help="the repository (default: the current folder)")
    args = p.parse_args(argv)
    try:
        if args.check:
            lines = stale(Path(args.root))
            for line in lines:
                print(line)
            return 1 if lines else 0
        written = write(Path(args.root))
        for path in written:
            print(f"wrote {path}")
        if not written:
            print("every generated file is up to date")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
