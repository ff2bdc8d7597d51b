"""The papers' claims against our measurements: one row per claim (the methods' claims,
gathered from their registry by the command line: `diffdistill.methods.all_claims`),
stated as the paper states it, with the paper's own numbers as evidence, the rule that
decides it (`diffdistill.claims`), our measurement and a verdict: Holm's correction over
the family, the effect X each claim is about and the budget that would reach it."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from . import stats
from .atomic import atomic_dir
from .claims import NOT_MEASURED, Claim, Test, verdict
from .files import read_json_object
from .jobs import job_seconds, job_table
from .records import Q, at_sets, fine_tune_seconds, in_table, load_records, model_meta, reference
from .tables.ablation import ablation_table
from .tables.cost import write_job_page
from .tables.format import write_table

RULE = ("Verdicts: differences are paired over the evaluation seed sets (Student's t; training noise of both sides "
        "added where trained models are compared, each side the mean of its models, the fits' own noise where FIDs at "
        "infinite n are); a bound on a ratio of FIDs at infinite n is a one-sided test with the ratio's standard "
        "error; a claim made of several comparisons holds only when each does (its p is the largest). The claims are one family: Holm's correction "
        "over their p values. *holds* / *does not hold*: the adjusted p is below 0.05, in the claim's direction or "
        "against it; *no effect larger than X*: neither, and the 90 % interval excludes effects in the claim's "
        "direction beyond X (the '80 % power' column: the effect the comparison detects with 80 % power); "
        "*not measured*: missing. Each rule gives *holds* on the paper's own numbers (its evidence column). "
        "'X target': half the effect each claim is about, fixed before the run: where the paper gives the effect, "
        "carried to our scale through the same rows (a fraction of a row the paper and we both have); for a ratio "
        "bound, its distance from 1; else 10 % of the default SFD student's FID at infinite n at NFE 2. 'budget to "
        "reach it': where this run neither decided the claim nor bounded it by X, the cheapest budget whose 90 % "
        "interval ends below X with 80 % power when the true effect is 0 ((t_0.95 + t_0.80) SE <= X; it detects "
        "the claim's whole effect, 2 X, with more), or, where the estimate is already beyond X, the budget that "
        "decides the claim at its estimate with 80 % power: seed sets (their variance shrinks as 1 / sets) and, "
        "where training noise enters, training seeds per model (it shrinks as 1 / seeds, and no number of seed "
        "sets removes it); its minutes from this run's own job times, beside the claims target's budget "
        "(claims.budget_minutes).")


def set_seconds(r: dict) -> float:
    """Process seconds of one seed set of a row: its sampling and metrics jobs' (metadata
    sidecars) over its seed sets."""
    files = [f for f in (r.get("samples"), r.get("metrics_file")) if f]
    return sum(job_seconds(f) for f in files) / max(1, r.get("seed_sets", 1))


class Data:
    """The records the claims read, by role."""

    def __init__(self, records: list[dict], benchmark: str | None = None, o2mkd_students: int = 3):
        # the rows of the main and the extended tables (PD's chain, SFD-v and the second stage are in the latter)
        self.records, self.table_rows = records, in_table(records, ("main", "extended"))
        self.by_name = {r.get("name"): r for r in records}
        self.ref = reference(self.table_rows)
        self.abl = {}
        if any("ablations" in r.get("tables", ()) for r in records):
            df, _ = ablation_table(records, "ablations")
            self.abl = {(row["factor"], row["value"]): row for row in df.to_dict("records")}
        self.benchmark = read_json_object(benchmark, (), "benchmark file") if benchmark and Path(benchmark).exists() \
            else None
        self.o2mkd_students = o2mkd_students

    def costs(self, names: list) -> tuple[float, float]:
        """What more budget costs for these rows, from their jobs' own clocks (metadata
        sidecars): seconds per extra seed set (sampling and metrics of every row, over its
        seed sets) and per extra trained model (training of every trained row)."""
        per_set = per_model = 0.0
        for r in (self.by_name.get(n) for n in names):
            if r is None:
                continue
            per_set += set_seconds(r)
            if r.get("kind") == "distilled":
                per_model += fine_tune_seconds(model_meta(r)) or 0.0
        return per_set, per_model

    def rows(self, family: str, kind: str = "distilled") -> dict:
        return {r["nfe"]: r for r in self.table_rows if r.get("family") == family and r.get("kind") == kind}


def evaluate(claim_list: list[Claim],
             data: Callable[[Claim], Data]) -> list[tuple[Claim, Data, tuple | None, Test, float]]:
    """Each claim of `claim_list` with the data it reads (`data(claim)`), our measurement
    (`ours`: text and values, None when missing), its test and its Holm-adjusted p over
    the family."""
    ds = [data(c) for c in claim_list]
    got = [c.ours(d) for c, d in zip(claim_list, ds)]
    tests = [Test(verdict=NOT_MEASURED) if g is None else c.test(g[1]) for c, g in zip(claim_list, got)]
    adjusted = stats.holm([t.p if not t.verdict else float("nan") for t in tests])
    return list(zip(claim_list, ds, got, tests, adjusted))


def claims(records: list[dict], claim_list: list[Claim], benchmark: str | None = None, o2mkd_students: int = 3,
           budget_minutes: float | None = None, plan: dict | None = None) -> pd.DataFrame:
    """One row per claim of `claim_list` (`methods.all_claims()`), in its order: our
    measurement, the effect detected with 80 % power, the Holm-adjusted p over the
    claims' family and the verdict. `records` may hold rows
    evaluated on the claims plan's extra seed sets (`plan`): a claim it bought sets for
    reads every row of its comparisons on them, the others the main evaluation."""
    bought = {c["claim"]: c["sets"] for c in (plan or {}).get("claims", ()) if c.get("bought") and c.get("sets")}
    cache: dict = {}

    def data(c: Claim | None) -> Data:
        sets = bought.get(c.claim) if c else None
        if sets not in cache:
            cache[sets] = Data(at_sets(records, sets), benchmark, o2mkd_students)
        return cache[sets]

    rows = []
    for c, d, g, t, p in evaluate(claim_list, data):
        text = NOT_MEASURED if g is None else "; ".join([g[0], *t.notes])
        v = verdict(t, p)
        decided = v in ("holds", "does not hold")
        # X is fixed before the run: from the main evaluation, whatever seed sets the claim was bought
        x = claim_effect(c, data(None), g[1] if g is not None and d is data(None) else None) / 2 \
            if c.test_kind != "none" else float("nan")
        target, budget = _target(c, d, t, x, decided, budget_minutes)
        rows.append({"claim": c.claim, "paper's evidence": c.evidence, "rule": c.rule, "ours": text,
                     "80 % power": t.power or "—", "p (Holm)": p, "verdict": v,
                     "X target": target, "budget to reach it": budget})
    return pd.DataFrame(rows)


def claim_effect(c: Claim, d: Data, values: dict | None = None) -> float:
    """The effect a claim is about, in its test's units, fixed before the run: the paper's
    effect carried to our scale where the paper gives one; a ratio bound's distance from
    1; otherwise 10 % of the default SFD student's FID at infinite n at NFE 2. `values`:
    our measurement's (`c.ours`), measured here when not given."""
    if c.carry is not None:
        if values is None:
            got = c.ours(d)
            values = got[1] if got else None
        e = c.carry(d, values)
        return e if e == e and e > 0 else float("nan")
    if c.test_kind == "ratio":
        return c.ratio_bound - 1
    sfd2 = d.rows("sfd").get(2)
    return 0.10 * sfd2[Q] if sfd2 is not None and sfd2[Q] > 0 else float("nan")


def _target(c: Claim, d: Data, t: Test, x: float, decided: bool = False,
            budget_minutes: float | None = None) -> tuple[str, str]:
    """The bound X to reach (`x`, half the claim's effect) and, where this run neither
    decided the claim nor reached X, the budget that would bound it by X with 80 % power
    (`stats.reach`: seed sets, and training seeds where training noise is part of the
    comparison), in minutes from this run's own job times. The same budget detects the
    claim's whole effect (2 X) with more than 80 % power."""
    if c.test_kind == "none" or x != x:
        return "—", "—"
    unit = (lambda v: f"x{1 + v:.2f}") if c.test_kind == "ratio" else (lambda v: f"{v:.2f} FID")
    if t.verdict or t.half != t.half or not t.sets or t.s is None:
        return unit(x), "—"
    if decided:
        return unit(x), "none more (decided)"
    if t.point + t.half <= x:
        return unit(x), "reached"
    if t.point >= x:  # beyond X in the claim's direction: what it needs is the power to decide it
        return unit(x), "to decide it at its estimate: " + budget_text(t.s, t.point, d, budget_minutes, False)
    return unit(x), budget_text(t.s, x, d, budget_minutes)


def budget_text(s: dict, x: float, d: Data, budget_minutes: float | None = None, one_sided: bool = True) -> str:
    """'S seed sets, T training seeds per model: about M min more' (the cheapest budget
    that reaches x with 80 % power: a bound at x where the effect is 0, or a decision
    where it is x), flagged where it exceeds the claims target's budget."""
    set_s, model_s = d.costs(s.get("rows") or [])
    got = stats.reach(s, x, stats.linear_cost(s, set_s, model_s), stats.measured_training(s), one_sided=one_sided)
    if got is None:
        return f"beyond {stats.MAX_SETS} seed sets" + (
            f" and {stats.MAX_MODELS} training seeds" if "train" in (s.get("parts") or {}) else "")
    if got["seconds"] <= 0:
        return ("none more: this run has 80 % power there; its estimate, in the claim's direction, stayed short "
                "(after Holm's correction over the family)")
    seeds = f", {got['models']} training seeds per model" if got["models"] > s.get("per_side", 1) else ""
    minutes = got["seconds"] / 60
    over = f" (over the {budget_minutes:g}-minute budget)" if budget_minutes and minutes > budget_minutes else ""
    return f"{got['sets']} seed sets{seeds}: about {minutes:.0f} min more{over}"


def write_claims(fid_files, out_dir, claim_list: list[Claim], benchmark: str | None = None, o2mkd_students: int = 3,
                 budget_minutes: float | None = None, plan: str | None = None) -> pd.DataFrame:
    """claims.{md,csv,tex} of `claim_list` (`methods.all_claims()`), jobs.{md,csv,tex} (the
    jobs the claims needed beyond the main job's: the main table's rows and what made
    them, with their wall clock), plan.{md,...} (what the claims plan, its JSON file
    `plan`, bought: `diffdistill.budget`) and summary.md, the dated page of all."""
    records = load_records(fid_files, every_evaluation=True)
    p = read_json_object(plan, ("models", "sets", "claims"), "claims plan") if plan else None
    df = claims(records, claim_list, benchmark, o2mkd_students, budget_minutes, p)
    main = [r["metrics_file"] for r in in_table(at_sets(records), "main")]  # the main job's evaluations
    jobs, span = job_table([str(f) for f in fid_files], exclude=main)
    budget = f"the claims target's budget: {budget_minutes:g} min" if budget_minutes else "no budget given"
    cost = (f" The jobs they needed beyond the main job's: {span['jobs']}, {span['process_seconds']:.0f} process "
            f"seconds, **{span['seconds'] / 60:.1f} min** from the first one's start to the last one's end (jobs.md; "
            f"{budget})." if span else "")
    bought, plan_rule = plan_table(p) if p else (None, "")
    with atomic_dir(out_dir, "claims") as out:
        write_table(out, "claims", df, "The papers' claims against our measurements", RULE, intro=(
            "Our numbers are FIDs at infinite n on the pipeline's features at its scale (see docs/results.md, 'Reading the "
            "results'): they test the direction and size of each effect, not the papers' absolute values." + cost))
        sections = [("claims", "The papers' claims")]
        if bought is not None:
            write_table(out, "plan", bought, "What the claims plan bought: seed sets and training seeds sized by power",
                        plan_rule)
            sections.append(("plan", "What the plan bought with the budget the first pass left"))
        if span:
            write_job_page(out, jobs, span, "Claims", (*sections, ("jobs", "Where the time went, beyond the main job")),
                           "Where the claims' time went: the jobs they needed beyond the main job's")
    return df


def plan_table(p: dict) -> tuple[pd.DataFrame, str]:
    """The plan as a table and its rule, for the claims page."""
    rows = [{"claim": c["claim"], "X target": c.get("x"), "seed sets": c.get("sets") or p.get("main_sets"),
             "models per setting": c.get("models") or 1, "min": (c.get("seconds") or 0.0) / 60,
             "bought": "yes" if c.get("bought") else "no", "why": c.get("why", "")} for c in p["claims"]]
    sd = p.get("training_sd")
    rule = (f"The first pass took {p.get('elapsed_s', 0) / 60:.1f} min of the {p.get('budget_s', 0) / 60:g}-minute "
            f"budget, on {p.get('main_sets')} seed sets (eval.seed_sets); the plan had "
            f"{max(0.0, p.get('remaining_s', 0)) / 60:.1f} min, less a minute for its own jobs ({p.get('slots')} jobs "
            "side by side). ")
    rule += (f"Training noise: the spread of FID at infinite n between training seeds, pooled over every setting "
             f"trained more than once: {sd:.2f} ({p.get('training_df')} degrees of freedom). " if sd is not None else
             "Training noise was not measured (no setting trained more than once). ")
    rule += ("For each claim neither decided nor bounded by its X target: the cheapest seed sets and models per "
             "trained setting at which the 90 % interval reaches X with 80 % power ((t_0.95 + t_0.80) SE <= X; "
             "beyond X, the power to decide it at its estimate), priced by the first pass's own job clocks, bought "
             "cheapest first while they fit.")
    return pd.DataFrame(rows), rule
