"""Methods, registered by name: each is one module of this package behind one interface
(`base.Method`), trained by the one runner (`diffdistill.runner`).

Adding a method means adding its module here (it registers itself with `@register`), its
rules file under workflow/rules/methods/, its config section in the schema and its
tests; the command line (`diffdistill train <name>`), sampling, metrics, tables, figures
and DVC stages find it through this registry and its rows.
"""
from __future__ import annotations

import importlib
import pkgutil

from ..io import UserError

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


def all_options(cls) -> list:
    from ..config import schema_node
    from ..runner import options

    return list(cls.options) + options(cls.section, schema_node(cls.section), curves=cls.curves)


def cli_flags(name: str, config: dict, **values) -> str:
    """The command-line flags of `diffdistill train <name>` for `config` (the workflow's
    side): every option's config value, or the value given here."""
    from ..options import flags

    return flags(config, all_options(get(name)), **values)


def rows(config: dict) -> list:
    """Every result row of every method for a validated config (merged by name)."""
    from ..rows import merge

    return merge(r for m in ordered() for r in m.rows(config))


SHARED_KEYS = ("seed", "device", "amp", "dataset", "schedule")


def distill_params(config: dict) -> dict:
    """The config values the trained models depend on: the shared keys and every
    method's sections (DVC's params of the stage that trains them)."""
    keys = list(SHARED_KEYS) + [k for m in ordered() for k in (m.section, *getattr(m, "reads", ()))]
    out = {k: config[k] for k in dict.fromkeys(keys) if k in config}
    out["eval"] = {k: config["eval"][k] for k in ("features", "inception_weights")}  # FID curves
    return out


def validate(config: dict) -> dict:
    """Schema validation, defaults and the cross-key checks of every method."""
    from ..config import validate as validate_schema

    cfg = validate_schema(config)
    for m in ordered():
        m.check_config(cfg)
    return cfg


def workflow_config(config: dict, texts: dict | None = None) -> dict:
    """`validate` for the Snakefile, after `config.check_yaml_text` of each config file's
    text ({file: text}, read by the workflow): an invalid config stops the workflow with
    one line."""
    from ..config import check_yaml_text

    try:
        for source, text in (texts or {}).items():
            check_yaml_text(text, source)
        return validate(config)
    except UserError as e:
        raise SystemExit(f"config error: {e}") from None
