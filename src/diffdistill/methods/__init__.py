"""Methods, registered by name: each is a package of this package (`train.py`, `plan.py`,
`report.py`; a small method may be one module) behind one interface (`base.Method`),
trained by the one runner (`diffdistill.runner`).

Adding a method means adding its package or module here (it registers itself with
`@register`), its rules file under workflow/rules/methods/, its config section in the
schema and its config entry (docs/layout.md); the command line (`diffdistill train <name>`), sampling, metrics, tables, figures
and DVC stages find it through this registry and its rows.
"""
from __future__ import annotations

import importlib
import pkgutil

from ..errors import UserError
from ..naming import FRESH_SEEDS

REGISTRY: dict = {}


def register(cls):
    """Class decorator: make a method known by `cls.name`."""
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"two methods named '{cls.name}'")
    REGISTRY[cls.name] = cls
    return cls


def load_all() -> dict:
    """Import every module of this package (each registers its methods and model kinds)."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
    return REGISTRY


def get(name: str):
    load_all()
    if name not in REGISTRY:
        raise UserError(f"unknown method '{name}' (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name]


def ordered() -> list:
    """Registered methods in table order (`order`, then name)."""
    load_all()
    return sorted(REGISTRY.values(), key=lambda m: (getattr(m, "order", 100), m.name))


def report_parts():
    """What the methods add to the tables and figures (`diffdistill.tables.Parts`)."""
    from ..tables import Parts

    ms = ordered()
    reports = [r for r in (m.report() for m in ms) if r]
    return Parts(labels={m.name: m.label or m.name.upper() for m in ms},
                 colours={m.name: m.colour for m in ms if m.colour},
                 compare=next(((m.name, m.compare_with) for m in ms if m.compare_with), ()),
                 tables=tuple(r.write_tables for r in reports if hasattr(r, "write_tables")),
                 ablation_tables={t: f for r in reports for t, f in getattr(r, "ABLATION_TABLES", {}).items()})


def all_claims() -> list:
    """Every method's claims (`Method.claims`), in the claims table's order (`Claim.order`)."""
    return sorted((c for m in ordered() for c in m.claims()), key=lambda c: c.order)


def config_keys(cls) -> tuple[str, ...]:
    """The config sections a method's training command reads: the shared ones, its own,
    the others it `reads`, and for its validation curve `eval` (the FID's features) and
    `convergence` (curve seeds, plateau rule)."""
    return tuple(dict.fromkeys([*cls.shared_keys, cls.section, *cls.reads,
                                *(["eval", "convergence"] if cls.curves else [])]))


def owner(path) -> type:
    """The method whose folders (`stage_outputs`) hold `path`: whose training rule wrote it."""
    from pathlib import PurePosixPath

    for m in ordered():
        if any(PurePosixPath(path).is_relative_to(folder) for folder in m.stage_outputs()):
            return m
    raise UserError(f"no method writes {path}")


def rows(config: dict) -> list:
    """Every result row of every method for a validated config (merged by name)."""
    from ..rows import merge

    return merge(r for m in ordered() for r in m.rows(config))


def _model_wildcards(cls, model: str):
    """The training rule's wildcards of a student path results/students/<name>/<variant>[/nfe<n>]/model.pt."""
    import re
    from types import SimpleNamespace

    m = re.fullmatch(rf"results/students/{cls.name}/([^/]+)(?:/nfe(\d+))?/model\.pt", model)
    return SimpleNamespace(variant=m.group(1), nfe=m.group(2)) if m else None


def _training_inputs(cls, config: dict, model: str | None) -> list[str]:
    """The input files of the training job that writes `model` (none when the method's
    rule does not write it: a teacher row, a cache row)."""
    wc = _model_wildcards(cls, model) if model else None
    if wc is None:
        return []
    return [f for v in cls.rule_inputs(config, wc).values() for f in ([v] if isinstance(v, str) else v)]


def trajectory_caches(config: dict, method_rows: dict | None = None) -> list[str]:
    """Every cache of the teacher's trajectories the workflow builds for `config` (under
    results/trajectories; its folder name holds every setting that shapes it): the
    inputs of each method's training jobs and the rows sampled from a cache
    (`method_rows`: {method: its rows}, when the caller has them)."""
    from ..naming import TRAJECTORIES

    prefix = f"{TRAJECTORIES}/"
    method_rows = method_rows or {m: m.rows(config) for m in ordered()}
    out = set()
    for m, rows_of_m in method_rows.items():
        for r in rows_of_m:
            if r.samples and r.samples.startswith(prefix):
                out.add(r.samples)
            out.update(f for f in _training_inputs(m, config, r.model) if f.startswith(prefix))
    return sorted(out)


def report_inputs(config: dict, tables) -> list[str]:
    """The files whose metadata sidecars the tables and figures read for the rows of
    `tables` (wall times and costs): every model and the trajectory caches it was trained
    on, which the `tables` and `figures` rules declare as inputs (the job that writes a
    file writes its sidecar)."""
    out = set()
    for m in ordered():
        for model in {r.model for r in m.rows(config) if r.model and set(r.tables) & set(tables)}:
            out.add(model)
            out.update(f for f in _training_inputs(m, config, model) if f.endswith("/traj.pt"))
    return sorted(out)


FEATNET_PARAMS = ("dataset", "seed", "device", "featnet", "eval.features", "eval.inception_weights",
                  "eval.reference_stats", "eval.floor_splits", "eval.batch_size")


def stage_params(config: dict) -> dict:
    """What each stage that builds models reads from the config ({stage: values}, written
    to results/params/<stage>.yaml, a dep of that stage): for each method its
    `shared_keys`, its own section and the sections it reads, and the FID curves' feature
    choice (methods with curves); for the teacher's trajectory caches (stage
    `trajectories`) the list of caches, whose folder names hold every setting that shapes
    them; for the feature network (stage `featnet`) its keys. A value changed in one
    method's section changes that method's file only (and those of the methods that read
    it). DVC's params are the config file itself (params.yaml, `dvc exp run -S`): these
    files are deps, so that `dvc exp show` lists each setting once."""
    method_rows = {m: m.rows(config) for m in ordered()}
    from ..config import get

    out = {"featnet": {key: get(config, key) for key in FEATNET_PARAMS},
           "trajectories": {k: config[k] for k in ("seed", "device", "amp")}
           | {"caches": trajectory_caches(config, method_rows)}}
    for m, rows_of_m in method_rows.items():
        if not rows_of_m:  # not run with this config (disabled, or no NFE listed): nothing it reads matters
            out[m.name] = {"runs": False}
            continue
        params = {k: config[k] for k in config_keys(m) if k in config and k != "eval"}
        if m.curves:  # its FID-during-training curves
            params["eval"] = {k: config["eval"][k] for k in ("features", "inception_weights")}
        out[m.name] = params
    return out


def dvc_stages() -> dict:
    """The stage of dvc.yaml for each registered method, in table order: it runs that
    method's Snakemake jobs (workflow/scripts/dvc_stage.py), its deps are what it reads
    from the config (results/params/<name>.yaml, `stage_params`), the other stages'
    folders it reads and the code, its outs its own folders. tests/test_dvc.py keeps
    dvc.yaml in step with this."""
    code = ["src/diffdistill", "workflow/rules", "workflow/Snakefile", "Snakefile"]
    return {m.name: {"cmd": f"${{run}} {m.name}",
                     "deps": [f"results/params/{m.name}.yaml", *m.stage_inputs, *code],
                     "outs": list(m.stage_outputs())}
            for m in ordered()}


def seed_spaces(cfg: dict) -> dict[str, range]:
    """The noise seeds each use draws from: the evaluation seed sets (every row), the
    trajectory pool (SFD's caches, the largest pool any ablation asks for) and the curve
    seeds (validation curves and the plateau rule), and the range fresh trajectories draw
    from where there is no cache. They must not overlap: a curve
    that stops training on evaluation seeds tunes on the test set, and one on the
    trajectory pool measures the training data."""
    ev, tr, cv = cfg["eval"], cfg["trajectories"], cfg["convergence"]
    pool = max([tr["num"], *cfg["ablations"]["num"]])
    return {"evaluation seeds (eval)": range(0, ev["num_samples"] * ev["seed_sets"]),
            "trajectory pool (trajectories)": range(tr["seed_start"], tr["seed_start"] + pool),
            "curve seeds (convergence)": range(cv["seed_start"], cv["seed_start"] + cv["samples"]),
            **({"fresh trajectories (trajectories.cache: false)": FRESH_SEEDS} if not tr["cache"] else {})}


def check_seed_spaces(cfg: dict) -> None:
    spaces = list(seed_spaces(cfg).items())
    for i, (a, ra) in enumerate(spaces):
        for b, rb in spaces[i + 1:]:
            if ra.start < rb.stop and rb.start < ra.stop:
                raise UserError(f"config keys convergence.seed_start / trajectories.seed_start / eval: the {a} "
                                f"{ra.start}..{ra.stop - 1} overlap the {b} {rb.start}..{rb.stop - 1}; move a seed_start")


def check_evaluation(cfg: dict) -> None:
    """What every metrics job needs, known before any job runs: more samples per set than
    PRDC's neighbours (a point's k nearest neighbours among the others), and a path for
    the datasets read from disk."""
    ev, ds = cfg["eval"], cfg["dataset"]
    if ev["num_samples"] <= ev["prdc_k"]:
        raise UserError(f"config key eval.num_samples: {ev['num_samples']} samples per seed set, but precision and "
                        f"recall need more than eval.prdc_k = {ev['prdc_k']} neighbours; raise it")
    if ds["name"] in ("folder", "npz") and not ds.get("path"):
        raise UserError(f"config key dataset.path: dataset '{ds['name']}' reads its images from disk; give the "
                        "folder, .zip or .npz")


def validate(config: dict) -> dict:
    """Schema validation, defaults and the cross-key checks of every method."""
    from ..config import validate as validate_schema

    cfg = validate_schema(config)
    check_seed_spaces(cfg)
    check_evaluation(cfg)
    for m in ordered():
        sec = cfg.get(m.section, {})
        if sec.get("lr_schedule") == "plateau" and not (m.curves and sec.get("curve_every")):
            raise UserError(f"config key {m.section}.lr_schedule: plateau ends training on a flat validation curve, "
                            f"but {m.section}.curve_every is 0 (no curve)")
    for m in ordered():
        m.check_config(cfg)
    return cfg


def workflow_config(config: dict, texts: dict | None = None) -> dict:
    """`validate` for the Snakefile, after `config.check_yaml_text` of each config file's
    text ({file: text}, read by the workflow): an invalid config, or an input file it
    names that is missing with no URL to fetch it from, stops the workflow with one line."""
    from ..config import check_yaml_text
    from ..fetch import missing_inputs

    try:
        for source, text in (texts or {}).items():
            check_yaml_text(text, source)
        cfg = validate(config)
        for line in missing_inputs(cfg):
            raise UserError(line)
        return cfg
    except UserError as e:
        raise SystemExit(f"config error: {e}") from None
