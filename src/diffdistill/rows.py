"""Result rows, each defined once: what is sampled, how, and where it is reported.

A `Row` names one evaluated model setting at one NFE. Methods declare their rows
(`diffdistill.methods`); the workflow makes one sampling job and one metrics job per
row and seed set from them; every metrics file carries its row's fields, so tables and
figures read labels, families and table membership from the result files, never from
rule files. Paths:

    results/samples/<row>/samples.npz    seeds 0 .. S*n - 1 (seed set k: k*n .. (k+1)*n - 1)
    results/fid/<row>/fid.json           metrics of each seed set, their mean and spread

with n = eval.num_samples and S = eval.seed_sets. Seed set k of every row uses the same
seeds, so rows are compared paired, on the same noise (`diffdistill.stats`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from .naming import TEACHER
from .recipe import Recipe

KINDS = ("reference", "baseline", "target", "distilled")
# the table of the students that do not fit the main job's budget once every student trains
# to convergence (PD's chain, SFD-v, SFD's second stage, O2MKD x SFD): results/extended,
# built with the claims, beside the main table's rows
EXTENDED = ("extended",)


@dataclass(frozen=True)
class Row:
    name: str                     # path under results/samples and results/fid, e.g. "students/sfd/default/nfe2"
    label: str                    # label of the row in tables and legends
    nfe: int                      # network evaluations per sample
    family: str                   # method family: one colour in the figures
    kind: str = "distilled"       # reference | baseline | target | distilled (line style, cost table)
    model: str | None = None      # checkpoint to sample; its recipe says how, `recipe` overrides it
    recipe: Recipe = Recipe()     # a partial recipe: the settings that differ from the checkpoint's
    samples: str | None = None    # file whose images are evaluated instead of sampling (a cache's end points)
    tables: tuple = ("main",)     # tables that list it: main, o2mkd, ablations, ...
    column: str = ""              # column in pivot tables (default "NFE <nfe>")
    all_seed_sets: bool = False   # kept for row declarations; every row is evaluated on every seed set
    noise_floor: bool = False     # its seed sets against each other: the sampling-noise floor
    figure: bool = False          # a row of the sample figure
    meta: dict = field(default_factory=dict, compare=False)  # extra fields for tables (e.g. ablation factor)
    claims: bool = field(default=False, compare=False)  # a row outside the extended table that a claim reads

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"row {self.name}: kind must be one of {KINDS}")
        if (self.model is None) == (self.samples is None):
            raise ValueError(f"row {self.name}: give exactly one of model and samples")

    @property
    def col(self) -> str:
        return self.column or f"NFE {self.nfe}"

    def seed_sets(self, total: int) -> int:
        """Every row is evaluated on every seed set, so any two rows compare paired."""
        return total

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("claims")  # what builds the claims, not what the row is
        d["column"] = self.col
        d["recipe"] = self.recipe.to_dict()
        return d

    def sample_flags(self) -> str:
        """The row's overrides of its checkpoint's recipe, as `diffdistill sample` flags."""
        return self.recipe.to_flags()

    def seeds(self, num_samples: int, seed_sets: int) -> str:
        """The seeds the row samples and its metrics job checks: 0 .. S * n - 1 (seed set k:
        k n .. (k + 1) n - 1), the same for every row, so rows compare paired."""
        return f"0-{self.seed_sets(seed_sets) * num_samples - 1}"


def merge(rows) -> list[Row]:
    """One row per name, in first-seen order; a row declared twice (e.g. the teacher with
    DDIM 5 in the main and the O2MKD table) joins the tables of both declarations."""
    out: dict[str, Row] = {}
    for r in rows:
        if r.name in out:
            old = out[r.name]
            if replace(old, tables=(), all_seed_sets=False, figure=False, meta={}) != replace(
                    r, tables=(), all_seed_sets=False, figure=False, meta={}):
                raise ValueError(f"row {r.name} is declared twice with different settings")
            r = replace(old, tables=tuple(dict.fromkeys(old.tables + r.tables)), meta={**old.meta, **r.meta},
                        all_seed_sets=old.all_seed_sets or r.all_seed_sets, figure=old.figure or r.figure,
                        claims=old.claims or r.claims)
        out[r.name] = r
    return list(out.values())


def _more(sets) -> str:
    """Where a row evaluated on more seed sets than eval.seed_sets lives (the claims plan's)."""
    return f"results/more-sets/{sets}/" if sets else "results/"


def samples_path(row: Row, sets=None) -> str:
    """A row's samples; on `sets` seed sets (the claims plan's extra), beside the main ones."""
    return row.samples if row.samples and not sets else f"{_more(sets)}samples/{row.name}/samples.npz"


def fid_path(row: Row, sets=None) -> str:
    return f"{_more(sets)}fid/{row.name}/fid.json"


def features_path(row: Row, sets=None) -> str:
    """The features a row's metrics job writes (the reference row's: read by every other row)."""
    return f"{_more(sets)}fid/{row.name}/features.npz"


def teacher_files(ref: Row, sets=None) -> dict:
    """The reference row's samples and features, which every other row's metrics read
    (agreement with the teacher on the same seeds); on `sets` seed sets: the claims plan's."""
    return {"teacher_samples": samples_path(ref, sets), "teacher_features": features_path(ref, sets)}


def reference(rows) -> Row:
    """The reference sampler's row: every other row is compared with it, paired."""
    return next(r for r in rows if r.kind == "reference")


def profiled(rows, table: str) -> list[Row]:
    """The rows of a table that sample a model, the teacher's first (the ratios' reference)."""
    return sorted((r for r in in_table(rows, table) if r.model), key=lambda r: r.model != TEACHER)


def in_table(rows, table: str | tuple) -> list[Row]:
    tables = (table,) if isinstance(table, str) else table
    return [r for r in rows if set(tables) & set(r.tables)]


def fid_files(rows, table: str | tuple) -> list[str]:
    return [fid_path(r) for r in in_table(rows, table)]


def claims_files(rows, tables: tuple) -> list[str]:
    """The metrics files the claims read: every row of `tables` (the main and extended
    tables) and the rows of other tables a claim reads (`Row.claims`), not the
    ablations no claim reads."""
    rows = list(rows)
    return list(dict.fromkeys(fid_files(rows, tables) + [fid_path(r) for r in rows if r.claims]))


def setting(r: Row) -> str:
    """The setting a claims replica (table `replicas`) trains again: 'factor=value'; the
    default's other training seeds: 'default'."""
    f = r.meta.get("factor")
    return "default" if f in ("default", "train_seed") else f"{f}={r.meta.get('value', '')}"


def planned_files(rows, plan: str) -> list[str]:
    """The metrics files the claims plan (its JSON file, `plan`; diffdistill.budget) asks
    for: the replicas of each setting up to its `models` (a setting, 'factor=value' or
    'default', maps to the models it wants in all; the first, and the default's
    ablations.train_seeds, are the ablation table's own rows), and the rows of `sets`
    (S: [names]) with every model of their settings evaluated on S seed sets, with the
    reference row on them (its features are every other row's teacher features)."""
    from .errors import UserError
    from .files import read_json_object

    p = read_json_object(plan, ("models", "sets"), "claims plan")
    if not isinstance(p["models"], dict) or not isinstance(p["sets"], dict) or not all(
            str(k).isdigit() and isinstance(v, list) for k, v in p["sets"].items()):
        raise UserError(f"claims plan {plan}: 'models' must map settings to counts and 'sets' seed-set counts to "
                        "lists of rows; rerun its job (diffdistill claims-plan)")
    rows = list(rows)
    by_name = {r.name: r for r in rows}
    chosen = [r for r in in_table(rows, "replicas") if r.meta["replica"] < p["models"].get(setting(r), 0)]
    groups: dict = {}
    for r in in_table(rows, "ablations") + chosen:
        groups.setdefault(setting(r), []).append(r)
    out = [fid_path(r) for r in chosen]
    for sets, names in p["sets"].items():
        for name in names:
            if name not in by_name:
                raise UserError(f"claims plan {plan}: no result row '{name}' in this config")
            r = by_name[name]
            members = groups.get(setting(r), [r]) if {"ablations", "replicas"} & set(r.tables) else [r]
            out += [fid_path(m, int(sets)) for m in members]
        out.append(fid_path(reference(rows), int(sets)))
    return list(dict.fromkeys(out))
