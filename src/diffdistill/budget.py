"""The claims target's budget, planned from the variances a first pass measured.

`snakemake --cores all results/claims` first builds everything the claims read once:
every claimed setting with one model (the default SFD student with
ablations.train_seeds: the pilot of the training noise), every row on the main job's
seed sets (eval.seed_sets). Then this plan (a Snakemake checkpoint) reads those results
and the jobs' own clocks, and spends what is left of claims.budget_minutes where more
data can change a verdict. For each claim that is neither decided nor bounded by its X
target, it finds the cheapest budget at which the one-sided 80 %-power bound reaches X
(beyond X: the power to decide it at its estimate):
- seed sets: the rows the claim reads are sampled and measured again on sets 0 .. S - 1
  (results/more-sets/S), each row's bias at n the main evaluation's (its first sets are
  the main ones, value for value): the seed-set variance shrinks as 1 / S, the fits'
  own noise stays;
- training seeds, for SFD's ablation settings: more models per setting, each side the
  mean of its models, with the training-seed spread pooled over every setting trained
  more than once (s_train^2 / T a side). No number of seed sets removes training noise.
Prices come from the first pass's job clocks (process seconds over the jobs that run
side by side); claims are bought cheapest first while they fit. A claim that cannot
reach X within the limits, or within what is left, gets nothing more, and the claims
table prints the X it reached and the budget that would reach the target.
"""
from __future__ import annotations

import math

from . import stats
from .claims import Claim, verdict
from .claims_table import Data, claim_effect, evaluate, set_seconds
from .files import write_json
from .provenance import write_meta
from .jobs import job_table
from .records import fine_tune_seconds, in_table, load_records, model_meta
from .tables.ablation import group_key, pooled_training_variance, seed_groups

DEFAULT = "default"
RESERVE_S = 60.0  # the plan's and the claims table's own jobs


def setting(r: dict) -> str:
    """'factor=value' of an ablation row or replica; the default's seeds: 'default';
    any other row: its name (a setting of one model)."""
    if not {"ablations", "replicas"} & set(r.get("tables", ())):
        return r.get("name", "")
    f, v = group_key(r)
    return DEFAULT if f == "default" else f"{f}={v}"


class Costs:
    """What more of a claim's groups costs, in wall seconds, against what is bought so
    far: a group is a setting's models (a row alone, for rows that are no ablation's);
    one more model trains, and samples and measures on the main seed sets and the claim's;
    S seed sets sample and measure each of the group's models again from set 0 (and the
    reference row, whose features every row's metrics read), once per S."""

    def __init__(self, groups: dict, ref: dict | None, main_sets: int, slots: int):
        self.groups, self.ref, self.k0, self.slots = groups, ref, main_sets, max(1, slots)
        self.models = {k: len(g) for k, g in groups.items()}
        self.evaluated = {k: {main_sets: n} for k, n in self.models.items()}  # seed sets: models evaluated on them
        self.ref_sets = {main_sets}

    per_set = staticmethod(set_seconds)

    def _want(self, k: str, models: int) -> int:
        first = self.groups[k][0]
        return max(self.models[k], models) if first.get("model") and first.get("kind") == "distilled" else self.models[k]

    def cost(self, keys, sets: int, models: int) -> float:
        total = 0.0
        for k in keys:
            first, want = self.groups[k][0], self._want(k, models)
            total += (want - self.models[k]) * (fine_tune_seconds(model_meta(first)) or 0.0)
            total += sum(max(0, want - self.evaluated[k].get(n, 0)) * n * self.per_set(first) for n in {self.k0, sets})
        if sets not in self.ref_sets and self.ref is not None:
            total += sets * self.per_set(self.ref)
        return total / self.slots

    def buy(self, keys, sets: int, models: int) -> None:
        for k in keys:
            self.models[k] = want = self._want(k, models)
            for n in {self.k0, sets}:
                self.evaluated[k][n] = max(self.evaluated[k].get(n, 0), want)
        self.ref_sets.add(sets)


def plan(fid_files, claim_list: list[Claim], budget_minutes: float, max_models: int, slots: int,
         benchmark: str | None = None, o2mkd_students: int = 3) -> dict:
    """What to build more for the claims of `claim_list` (`methods.all_claims()`): {"models":
    {setting: models in all}, "sets": {seed sets: [rows]}, "claims": [...], the budget's
    seconds}. `slots`: jobs run side by side (cores / threads per job), which turn the
    jobs' process seconds into wall seconds."""
    records = load_records(fid_files)
    d = Data(records, benchmark, o2mkd_students)
    main = [r["metrics_file"] for r in in_table(records, "main")]
    _, span = job_table([str(f) for f in fid_files] + ([benchmark] if benchmark else []), exclude=main)
    elapsed = span.get("seconds", 0.0) if span else 0.0
    abl = [r for r in in_table(records, "ablations") + in_table(records, "replicas") if r.get("family") == "sfd"]
    groups = {setting(g[0]): g for g in seed_groups(abl).values()}
    groups |= {r["name"]: [r] for r in records if r.get("name") and setting(r) not in groups}
    s2, df_train = pooled_training_variance([g for k, g in groups.items() if k == DEFAULT or "=" in k])
    main_sets = d.ref.get("seed_sets", 1) if d.ref else 1
    costs = Costs(groups, d.ref, main_sets, slots)
    noise = (s2, df_train, costs.models.get(DEFAULT, 1), max_models)
    options = [_option(c, d, t, p, g, {r.get("name"): r for r in records}, costs, noise)
               for c, _, g, t, p in evaluate(claim_list, lambda c: d)]
    rows, sets = _buy(options, costs, budget_minutes * 60 - elapsed - RESERVE_S, main_sets)
    have = {k: len(g) for k, g in groups.items()}
    return {"budget_s": budget_minutes * 60, "elapsed_s": elapsed, "remaining_s": budget_minutes * 60 - elapsed,
            "slots": slots, "main_sets": main_sets, "training_sd": math.sqrt(s2) if s2 == s2 else None,
            "training_df": df_train,
            "models": {k: n for k, n in costs.models.items() if n > have[k]} | {DEFAULT: costs.models.get(DEFAULT, 1)},
            "sets": sets,
            "claims": [{k: r.get(k) for k in ("claim", "x", "settings", "sets", "models", "seconds", "bought", "why")}
                       for r in rows]}


def _option(c, d: Data, t, p: float, got, by_name: dict, costs: Costs, noise: tuple) -> dict:
    """A claim's row of the plan: why it needs nothing more, or its cheapest budget (a
    candidate: "seconds", "sets", "models", "settings", "rows")."""
    s2, df_train, default_models, max_models = noise
    v = verdict(t, p)
    x = claim_effect(c, d, got[1]) / 2 if got is not None and c.test_kind != "none" else float("nan")
    out = {"claim": c.claim, "x": x}
    names = [n for n in (t.s or {}).get("rows") or [] if n in by_name]
    keys = list(dict.fromkeys(setting(by_name[n]) for n in names))
    parts = (t.s or {}).get("parts") or {}
    if t.verdict:
        return {**out, "why": f"nothing to buy: {v}"}
    if v in ("holds", "does not hold"):
        return {**out, "why": f"decided by the first pass: {v}"}
    if x != x:
        return {**out, "why": "no X target"}
    if t.point + t.half <= x:
        return {**out, "why": "X reached by the first pass"}
    if not keys or any(not by_name[n].get("model") for n in names):
        return {**out, "why": "nothing to buy: a row it reads is not sampled from a model (a cache's end points)"}
    if "train_seeds" in t.s:  # over training seeds (the O2MKD study): its rows are every seed's
        return {**out, "why": "nothing to buy: a comparison over training seeds the plan does not evaluate again"}
    ablation = all(k == DEFAULT or "=" in k for k in keys)
    if ablation and "train" not in parts:
        return {**out, "why": "nothing to buy: its training noise was not measured (ablations.train_seeds: 1)"}
    # beyond X: the power to decide it at its estimate (two-sided, as the verdict)
    target, one_sided = (t.point, False) if t.point >= x else (x, True)
    train = (lambda m: (s2 * (1 / m + 1 / max(m, default_models)), df_train)) if ablation and s2 == s2 else None
    best = stats.reach(t.s, target, lambda sets, models: costs.cost(keys, sets, models), train, max_models,
                       one_sided)
    if best is None:
        return {**out, "why": f"X needs more than {stats.MAX_SETS} seed sets" + (
            f" or {max_models} models per setting (claims.max_train_seeds)" if train else
            " (where training noise enters, more seed sets do not shrink it, and the plan trains more seeds of "
            "SFD's ablation settings only)" if "train" in parts else "")}
    if best["seconds"] <= 0:
        return {**out, "why": "the first pass has the power; its estimate stayed short"}
    return {**out, "settings": keys, "rows": names, **best, "candidate": True}


def _buy(options: list[dict], costs: Costs, remaining: float, main_sets: int) -> tuple[list[dict], dict]:
    """Candidates bought cheapest first while they fit `remaining` seconds (a row or model
    another claim already bought is not paid twice); the plan's rows in the claims' order
    and the rows to evaluate again on each number of seed sets."""
    sets: dict = {}
    rows = [o for o in options if not o.get("candidate")]
    for c in sorted((o for o in options if o.get("candidate")), key=lambda o: o["seconds"]):
        extra = costs.cost(c["settings"], c["sets"], c["models"])
        bought = extra <= remaining
        if bought:
            remaining -= extra
            costs.buy(c["settings"], c["sets"], c["models"])
            if c["sets"] > main_sets:
                named = sets.setdefault(str(c["sets"]), [])
                named += [n for n in c["rows"] if n not in named]
        rows.append({**c, "seconds": extra, "bought": bought, "why": (
            f"{c['sets']} seed sets" + (f" and {c['models']} models per setting" if c["models"] > 1 else "")
            + " reach X with 80 % power"
            + ("" if bought else f"; {extra / 60:.0f} min did not fit the {max(0.0, remaining) / 60:.0f} min left"))})
    order = [o["claim"] for o in options]
    return sorted(rows, key=lambda r: order.index(r["claim"])), sets


def write_plan(args: dict, claim_list: list[Claim]) -> None:
    """`plan` of `claim_list` into the JSON file args["out"], with its metadata sidecar (the
    command's arguments: fid, budget_minutes, max_train_seeds, slots, benchmark,
    o2mkd_students)."""
    write_json(args["out"], plan(args["fid"], claim_list, args["budget_minutes"], args["max_train_seeds"],
                                 args["slots"], args.get("benchmark"), args.get("o2mkd_students", 3)))
    write_meta(args["out"], args)
