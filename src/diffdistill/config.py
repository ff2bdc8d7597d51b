"""The config schema (package data: the one source of defaults) and validation of an
already-loaded config dict against it.

The workflow loads config/*.yaml and calls `validate`; nothing here opens a config
file. Errors are one line naming the offending key, with a guess for a mistyped one.
Cross-key rules that the JSON schema cannot state (t_min < t_max, a network's
constructor arguments) are checked here too; rules of one method live in its module
(`diffdistill.methods`)."""
from __future__ import annotations

import copy
import difflib
import functools
import math
from importlib import resources

from .errors import UserError

SCHEMA_FILE = "config.schema.yaml"


@functools.lru_cache(maxsize=1)
def _schema_text() -> str:
    return resources.files("diffdistill").joinpath("schemas", SCHEMA_FILE).read_text()


def load_schema(resolve: bool = True) -> dict:
    """The schema; `resolve`: each `$ref` replaced by the node it names (`resolve_refs`)."""
    return parse_schema(_schema_text(), resolve)


def parse_schema(text: str, resolve: bool = True) -> dict:
    import yaml

    # libyaml's safe loader where PyYAML has it: every command reads the schema (10x faster)
    schema = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    return resolve_refs(schema) if resolve else schema


ANNOTATIONS = ("description", "default")  # what a node that `$ref`s a definition may add to it


def resolve_refs(schema: dict) -> dict:
    """The schema with every node `{$ref: "#/$defs/<name>", ...}` replaced by a copy of that
    definition plus the node's own description and default, so that whatever walks the
    schema (defaults, validation, the reference, `schema_node`, the command-line options)
    sees plain nodes. `$defs` holds what several keys share, e.g. the solver names, which
    `python -m diffdistill.generate` writes from `diffdistill.solvers.SOLVERS`."""
    defs = schema.get("$defs", {})

    def walk(node):
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        node = {k: walk(v) for k, v in node.items()}
        ref = node.pop("$ref", None)
        if ref is None:
            return node
        name = ref.removeprefix("#/$defs/")
        if name == ref or name not in defs:
            raise ValueError(f"config schema: $ref {ref!r} names no entry of $defs")
        extra = set(node) - set(ANNOTATIONS)
        if extra:
            raise ValueError(f"config schema: a node with $ref {ref!r} may add only {', '.join(ANNOTATIONS)}, "
                             f"not {', '.join(sorted(extra))}")
        return {**walk(copy.deepcopy(defs[name])), **node}

    return walk(schema)


def schema_node(key: str, schema: dict | None = None) -> dict:
    """The schema of a dotted key, e.g. 'sfd.lr'."""
    node = schema or _cached_schema()
    for part in key.split("."):
        props = node.get("properties", {})
        if part not in props:
            raise KeyError(f"no config key '{key}' in the schema")
        node = props[part]
    return node


@functools.lru_cache(maxsize=1)
def _cached_schema() -> dict:
    return load_schema()


def schema_default(key: str):
    node = schema_node(key)
    if "default" not in node:
        raise KeyError(f"config key '{key}' has no default in the schema")
    return copy.deepcopy(node["default"])


def get(config: dict, key: str):
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def _fill_defaults(node: dict, schema: dict) -> None:
    for key, sub in schema.get("properties", {}).items():
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if isinstance(node.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(node[key], sub)


def _where(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _schema_errors(cfg: dict, schema: dict) -> None:
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(cfg),
                    key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        return
    e = errors[0]
    if e.validator == "additionalProperties":
        allowed = sorted(e.schema.get("properties", {}))
        unknown = sorted(set(e.instance) - set(allowed))
        key = unknown[0]
        prefix = _where(e.absolute_path)
        full = key if prefix == "<top level>" else f"{prefix}.{key}"
        guess = difflib.get_close_matches(key, allowed, n=1)
        hint = f"; did you mean '{guess[0]}'?" if guess else f"; allowed here: {', '.join(allowed)}"
        raise UserError(f"unknown config key '{full}'{hint}")
    value = e.instance if not isinstance(e.instance, (dict, list)) else type(e.instance).__name__
    raise UserError(f"config key '{_where(e.absolute_path)}' = {value!r}: {e.message.splitlines()[0]}")


def check_schedule(cfg: dict) -> None:
    s = cfg["schedule"]
    if not s["t_min"] < s["t_max"]:
        raise UserError(f"config keys schedule.t_min = {s['t_min']} and schedule.t_max = {s['t_max']}: "
                        "need 0 < t_min < t_max")


def check_finite(node, path=()) -> None:
    """No infinite or NaN number anywhere (YAML's .inf and .nan are floats to the schema)."""
    if isinstance(node, dict):
        for k, v in node.items():
            check_finite(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            check_finite(v, (*path, i))
    elif isinstance(node, float) and not math.isfinite(node):
        raise UserError(f"config key '{_where(path)}' = {node}: must be a finite number")


def check_seed_ranges(cfg: dict) -> None:
    from .seeding import MAX_SEED, MAX_SEEDS

    traj, ev = cfg["trajectories"], cfg["eval"]
    pool = range(traj["seed_start"], traj["seed_start"] + traj["num"])
    evaluated = range(0, ev["num_samples"] * ev["seed_sets"])
    if pool.stop - 1 > MAX_SEED:
        raise UserError(f"config keys trajectories.seed_start + trajectories.num = {pool.stop}: seeds must lie in "
                        f"0..{MAX_SEED}")
    if len(evaluated) > MAX_SEEDS:
        raise UserError(f"config keys eval.num_samples x eval.seed_sets = {len(evaluated)}: at most {MAX_SEEDS} "
                        "images per row")
    if pool.start < evaluated.stop:
        raise UserError(f"config key trajectories.seed_start = {traj['seed_start']}: the trajectory pool "
                        f"must not overlap the evaluation seeds 0..{evaluated.stop - 1} "
                        "(eval.num_samples x eval.seed_sets)")


def validate(config: dict, schema: dict | None = None) -> dict:
    """Return a copy of `config` with defaults filled in, or raise UserError."""
    schema = schema or load_schema()
    cfg = copy.deepcopy(config) if config else {}
    if not isinstance(cfg, dict):
        raise UserError(f"the config must be a mapping of keys, got a {type(cfg).__name__}")
    check_finite(cfg)
    _fill_defaults(cfg, schema)
    _schema_errors(cfg, schema)
    check_schedule(cfg)
    check_seed_ranges(cfg)
    if cfg["teacher"]["source"] == "train":
        from .nets import check_kwargs
        check_kwargs(cfg["teacher"]["net"], cfg["teacher"]["net_kwargs"], key="teacher.net_kwargs")
    return cfg


def check_yaml_text(text: str, source: str) -> None:
    """Refuse a config file's text in which a mapping names a key twice (YAML loaders keep
    the last silently), naming the key and its line. The workflow reads the file; this
    only parses the text it is given."""
    import yaml

    class Strict(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise UserError(f"{source}, line {key_node.start_mark.line + 1}: key '{key}' is given twice in "
                                "one mapping")
            seen.add(key)
        return loader.construct_mapping(node, deep=deep)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        yaml.load(text, Loader=Strict)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise UserError(f"{source} is not valid YAML ({str(e).splitlines()[0]})") from None


# --------------------------------------------------------------------------- reference


def _type_text(node: dict) -> str:
    t = node.get("type", "object")
    t = " or ".join(t) if isinstance(t, list) else t
    if t == "array" and "items" in node:
        t = f"list of {_type_text(node['items'])}"
    if "enum" in node:
        t += ": " + ", ".join(str(v) for v in node["enum"])
    bounds = [f"{op} {node[k]}" for k, op in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                                                 ("exclusiveMaximum", "<")) if k in node]
    return t + (f" ({', '.join(bounds)})" if bounds else "")


def _rows(node: dict, prefix: str = ""):
    import json

    section = lambda sub: sub.get("type") == "object" and "properties" in sub  # noqa: E731
    props = node.get("properties", {})
    for key, sub in props.items():  # the keys of this level first, then its sections
        if not section(sub):
            text = str(sub.get("description", "")).replace("|", "\\|")
            yield f"| `{prefix}{key}` | {_type_text(sub)} | `{json.dumps(sub.get('default'))}` | {text} |"
    for key, sub in props.items():
        if section(sub):
            yield f"\n### `{prefix}{key}`\n\n{sub.get('description', '')}\n\n| key | type | default | description |\n|---|---|---|---|"
            yield from _rows(sub, f"{prefix}{key}.")


def reference_markdown(schema: dict | None = None) -> str:
    """config/README.md: every key of the (resolved) schema with its type, default and
    meaning. `python -m diffdistill.generate` writes it."""
    schema = schema or _cached_schema()
    head = ["# Configuration", "",
            "Generated from `src/diffdistill/schemas/config.schema.yaml` (the one source of defaults) by",
            "`.venv/bin/python -m diffdistill.generate`; a test keeps the two in step.", "",
            "The files here: `config.yaml` (the digits default, on 2 CPU cores), `test.yaml` (tiny sizes for the",
            "tests), `cifar10.yaml` (the papers' setting: EDM's CIFAR-10 teacher, Inception FID, a GPU cluster),",
            "`cifar10-smoke.yaml` (that setting at smoke scale on small inputs in the real formats), `ffhq64.yaml`",
            "and `afhqv2-64.yaml` (EDM's 64x64 FFHQ and AFHQv2 teachers, a GPU cluster) and `custom.yaml` (a",
            "template for your own images, layered on `config.yaml`: README, \"Your own data\"). A key left",
            "out takes the default below; an unknown key, a wrong type or a value out of range is one error",
            "line naming the key. Pass another file with `--configfile` (it replaces `config.yaml`: keys it",
            "leaves out take the defaults below, not the digits values), single values with `--config key=value`.",
            "To write your own, copy the file closest to your setting and change what you need.", "",
            "**Features (`eval.features`), the rule:** a dataset with labels (digits, class folders",
            "`root/<class>/*.png`, an npz with `labels`) takes `classifier`: the pipeline trains a classifier on",
            "those labels, offline, at any image size. A dataset without labels (a flat folder of PNGs) takes",
            "`inception`: clean-fid's Inception-v3, whose weights file must be present at",
            "`eval.inception_weights` (fetched from `eval.inception_weights_url` when the machine has internet,",
            "or put there by hand). The classifier on an unlabelled dataset is one error line saying so.", "",
            schema.get("description", ""), "",
            "| key | type | default | description |", "|---|---|---|---|"]
    return "\n".join(head + list(_rows(schema))) + "\n"
