"""Command-line options that mirror the config schema.

An option with a `key` takes its type, bounds, allowed values, default and help from
the schema node of that key, so the command line refuses exactly what config
validation refuses and shows the same defaults (the schema is their one source).
`flags` is the workflow's side: the config's value of every keyed option, rendered as
command-line flags, so a rule never spells an option twice.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from .config import get, schema_node
from .convergence import Plateau
from .flagtext import flag, render
from .schedules import REQUIRED as SCHEDULE_REQUIRED


def used_args(args) -> dict:
    """The arguments of a command (a Namespace or a settings dataclass), as its outputs'
    metadata records them."""
    items = {f.name: getattr(args, f.name) for f in dataclasses.fields(args)} if dataclasses.is_dataclass(args) \
        else vars(args)
    return {k: v for k, v in items.items() if k not in ("func", "command", "method", "debug")}


def bool_arg(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")


def json_arg(s: str):
    try:
        value = json.loads(s)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {s!r} ({e.msg})")
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {s!r}")
    return value


def json_list(s: str):
    try:
        value = json.loads(s)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {s[:60]!r} ({e.msg})")
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise argparse.ArgumentTypeError("expected a JSON list of objects")
    return value


def number(kind: type = float, minimum=None, exclusive_minimum=None, maximum=None) -> Callable:
    """argparse type: a finite int or float within bounds, refused with the bound named."""
    def parse(s: str):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {s!r}")
        if kind is float and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {s!r}")
        if minimum is not None and v < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {s}")
        if exclusive_minimum is not None and v <= exclusive_minimum:
            raise argparse.ArgumentTypeError(f"must be > {exclusive_minimum}, got {s}")
        if maximum is not None and v > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {s}")
        return v
    parse.__name__ = kind.__name__
    return parse


def seeds_arg(s: str) -> str:
    """argparse type: a seed list ('0-1999', '1,5,7'), checked for its bounds and repeats
    (`seeding.seed_ranges`) before anything is built; the text itself is kept."""
    from .errors import UserError
    from .seeding import seed_ranges

    try:
        seed_ranges(s)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e))
    return s


MAX_NFE = 8192  # network evaluations per sample: Progressive Distillation's first teacher


positive_int = number(int, minimum=1)
nfe_int = number(int, minimum=1, maximum=MAX_NFE)
nonneg_int = number(int, minimum=0)
positive_float = number(float, exclusive_minimum=0)


def optional(parse: Callable) -> Callable:
    def opt(s: str):
        return None if s.lower() in ("none", "null") else parse(s)
    opt.__name__ = parse.__name__
    return opt


def _scalar_type(node: dict) -> tuple[Callable | None, tuple | None]:
    types = node.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    nullable = "null" in types
    kind = next((t for t in types if t != "null"), None)
    choices = tuple(node["enum"]) if "enum" in node else None
    bounds = dict(minimum=node.get("minimum"), exclusive_minimum=node.get("exclusiveMinimum"),
                  maximum=node.get("maximum"))
    parse = {"integer": lambda: number(int, **bounds), "number": lambda: number(float, **bounds),
             "boolean": lambda: bool_arg, "object": lambda: json_arg,
             "string": lambda: str}.get(kind, lambda: str)()
    return (optional(parse) if nullable else parse), choices


def schema_kwargs(key: str) -> dict:
    """argparse keyword arguments of the schema node `key`."""
    node = schema_node(key)
    if node.get("type") == "array":
        parse, choices = _scalar_type(node.get("items", {}))
        kw: dict[str, Any] = {"type": parse, "nargs": "+"}
    else:
        parse, choices = _scalar_type(node)
        kw = {"type": parse}
    if choices:
        kw["choices"] = choices
    kw["default"] = node.get("default")
    kw["help"] = node.get("description", "")
    if node.get("type") == "boolean":
        kw["metavar"] = "{true,false}"
    return kw


@dataclass(frozen=True)
class Opt:
    """One command-line option; `key` (dotted config key) draws everything else from the schema."""
    name: str                         # flag without dashes, e.g. "t_min" -> --t-min
    key: str | None = None            # config key it mirrors; None: an input, output or run setting
    help: str = ""
    required: bool = False
    kwargs: dict = field(default_factory=dict)  # extra or overriding argparse arguments

    @property
    def flag(self) -> str:
        return flag(self.name)


def add_options(parser: argparse.ArgumentParser, opts) -> None:
    for o in opts:
        kw = schema_kwargs(o.key) if o.key else {}
        if o.help:
            kw["help"] = o.help
        kw.update(o.kwargs)
        if o.required:
            kw.pop("default", None)
            kw["required"] = True
        action = parser.add_argument(o.flag, dest=o.name, **kw)
        action.config_key = o.key  # the schema key it mirrors (tests compare defaults)


def section_options(section: str, skip=()) -> tuple[Opt, ...]:
    """One option per setting of config section `section`, declared once (in the schema):
    its scalars, lists and free-form objects; not its nested groups (`o2mkd.study`), the
    workflow's switch `enabled`, the runner's training keys (`training_options`) nor the
    names in `skip` (options the command gives its own meaning: `--nfe` is one NFE)."""
    props = schema_node(section).get("properties", {})
    runner = (*TRAINING_KEYS, "curve_every")
    return tuple(Opt(k, key=f"{section}.{k}") for k, node in props.items()
                 if k not in skip and k != "enabled" and k not in runner and "properties" not in node)


_PY_TYPES = {"integer": "int", "number": "float", "boolean": "bool", "string": "str", "object": "dict",
             "array": "list"}


def _field(o: Opt) -> tuple:
    kw = schema_kwargs(o.key) if o.key else {}
    kw.update(o.kwargs)
    if o.key:
        types = schema_node(o.key).get("type")
        kind = next((t for t in ([types] if isinstance(types, str) else types or []) if t != "null"), "string")
        kind = _PY_TYPES.get(kind, "str")
    else:
        kind = "bool" if kw.get("action") == "store_true" else getattr(kw.get("type"), "__name__", "str")
    help_text = o.help or kw.get("help", "")
    return o.name, kind, field(default=None, metadata={"help": help_text, "key": o.key})


_SETTINGS: dict = {}


def settings_class(name: str, opts) -> type:
    """The frozen dataclass of a command's settings: one typed field per option (type,
    default and one-line description from the schema for a keyed option), the type a
    method receives instead of an argparse Namespace."""
    key = (name, tuple(o.name for o in opts))
    if key not in _SETTINGS:
        cls_name = "".join(p.capitalize() for p in name.split("_")) + "Settings"
        _SETTINGS[key] = dataclasses.make_dataclass(cls_name, [_field(o) for o in opts], frozen=True)
    return _SETTINGS[key]


def settings_from(args, name: str, opts):
    """A command's parsed arguments as its settings dataclass."""
    return settings_class(name, opts)(**{o.name: getattr(args, o.name, None) for o in opts})


# option groups that several commands and methods share
SCHEDULE_OPTIONS = tuple(Opt(k, key=f"schedule.{k}") for k in SCHEDULE_REQUIRED) + (
    Opt("t_last", help="> 0: the few-step grid ramps from t_max to t_last, then one step to t_min (SFD's "
        "students: config key sfd.t_last); 0: the plain ramp (default: 0, or a checkpoint's own)",
        kwargs={"type": float, "default": None}),)
DATA_OPTIONS = (Opt("dataset", key="dataset.name"), Opt("dataset_path", key="dataset.path"))
RUN_OPTIONS = (Opt("device", key="device"),
               Opt("threads", help="torch threads", kwargs={"type": positive_int, "default": 1}),
               Opt("quiet", help="no progress bar", kwargs={"action": "store_true"}))
FEATURE_OPTIONS = (Opt("features", key="eval.features"),
                   Opt("featnet", help="feature classifier checkpoint (features classifier)"),
                   Opt("inception_weights", key="eval.inception_weights"))


def flags(config: dict, opts, **values) -> str:
    """Command-line flags of `opts`: `values` by name, else the config's value of each
    keyed option; options with neither (or a null value) are left out. A value that is a
    group of settings (a `Schedule`) gives the options of its fields."""
    for name, v in list(values.items()):
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            values.pop(name)
            values.update(v.to_dict() if hasattr(v, "to_dict") else dataclasses.asdict(v))
    out = []
    for o in opts:
        if o.name in values:
            v = values[o.name]
        elif o.key:
            v = get(config, o.key)
        else:
            continue
        text = render(v)
        if text is not None:
            out.append(f"{o.flag} {text}")
    return " ".join(out)


# ---- the options every training command has (the runner's) ---------------------------

TRAINING_KEYS = ("iters", "batch_size", "lr", "lr_schedule", "grad_clip", "ema", "ckpt_every")


def training_options(section: str, schema_section: dict, curves: bool = False) -> list[Opt]:
    """The runner's options of a method whose config section is `section`: the training
    keys that section has, the run settings, and the FID-curve options (`curves`)."""
    opts = [Opt(k, key=f"{section}.{k}") for k in TRAINING_KEYS if k in schema_section.get("properties", {})]
    opts += [Opt("seed", key="seed"), Opt("device", key="device"), Opt("amp", key="amp"),
             Opt("out", required=True, help="output checkpoint (.pt); resume.pt goes to results/resume/<its folder> "
                 "(or its folder, outside results/)"),
             Opt("threads", help="torch threads", kwargs={"type": positive_int, "default": 1}),
             Opt("quiet", help="no progress bar", kwargs={"action": "store_true"}),
             Opt("restart", help="ignore a resume point and train from the start", kwargs={"action": "store_true"}),
             Opt("tensorboard_dir", help="TensorBoard folder of this run (default: results/runs/<output path>)"),
             Opt("max_iters_this_run", help="stop after this many iterations (a rerun resumes)",
                 kwargs={"type": positive_int})]
    if curves and "curve_every" in schema_section.get("properties", {}):
        opts += [Opt("curve_out", help="write the validation curve (JSON) here"),
                 Opt("curve_every", key=f"{section}.curve_every", kwargs={"type": nonneg_int}),
                 Opt("curve_seed_start", key="convergence.seed_start"),
                 Opt("curve_samples", key="convergence.samples"),
                 Opt("ref", help="reference statistics (.npz) of the curve's FID"),
                 Opt("features", key="eval.features"),
                 Opt("featnet", help="feature classifier checkpoint (features classifier)"),
                 Opt("inception_weights", key="eval.inception_weights"), *PLATEAU_OPTIONS]
    return opts


PLATEAU_OPTIONS = tuple(Opt(f"plateau_{f.name}", key=f"convergence.{f.name}") for f in dataclasses.fields(Plateau)
                        if f.name != "tol") + (
    Opt("plateau_tol", help="relative gain per curve point below which the curve is flat (the workflow passes "
                            "convergence.tol of the method's monitored value)",
        kwargs={"type": number(float, minimum=0), "default": Plateau.tol}),)
