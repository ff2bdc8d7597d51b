"""O2MKD's report: its table (results/tables/o2mkd.*: teacher, one-to-one KD, O2MKD
with N students), its study against one-to-one KD over training seeds (the ablation
table ablations_o2mkd_study.* and the learning curves o2mkd_study.png) and the claim that
reads the study (the claims table, `diffdistill.claims_table`). Imported by the O2MKD
method's hooks only: numpy and pandas stay out of planning."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ... import stats
from ...claims import Claim, better
from ...curves import last_gain, read_curve
from ...naming import CONFIG_RECIPE, O2MKD_STUDY, router_label
from ...plotting import plot_seed_curves
from ...records import Q, cell, in_table, values
from ...tables.format import write_table

if TYPE_CHECKING:
    from ...claims_table import Data


# -- its table: teacher, one-to-one KD, O2MKD with N students ---------------------------

def o2mkd_table(records: list[dict], profile: dict):
    """Rows: the models of the O2MKD table; columns: FID per (solver, NFE), then parameters
    and MACs per step and the throughput of the largest DDIM step count, against the first
    model's (the teacher)."""
    rows: dict[str, dict] = {}
    for r in in_table(records, "o2mkd"):
        label, col = cell(r, "o2mkd")
        row = rows.setdefault(label, {"model": label, "_profiles": []})
        row[col] = r.get(Q, r["fid"])
        if r.get("name") in profile:
            row["_profiles"].append(profile[r["name"]])
    out, ref = [], None
    for row in rows.values():
        ps = sorted(row.pop("_profiles"), key=lambda p: (p["solver"] == "euler", p["nfe"]))
        p = ps[-1] if ps else {}
        ref = ref or p
        out.append({**row, "params (per step)": p.get("params_per_step"), "params (total)": p.get("params_total"),
                    "MMACs / step": p.get("macs_per_step", float("nan")) / 1e6,
                    f"images/s (DDIM {p.get('nfe')})": p.get("images_per_second"),
                    "x teacher": p["images_per_second"] / ref["images_per_second"] if p and ref else None})
    return pd.DataFrame(out)


def write_o2mkd_table(out, df) -> None:
    shown = df.copy()
    for c in ("params (per step)", "params (total)"):
        shown[c] = shown[c].map(lambda v: "—" if v is None or v != v else f"{int(v):,}")
    write_table(out, "o2mkd", df, "O2MKD and one-to-one KD", shown=shown, intro=(
        "Each O2MKD student owns a contiguous noise range; one student runs per step, so params and MACs per step "
        "are one student's (MACs = FlopCounterMode FLOPs / 2). Throughput: DDIM sampling at the largest step count, "
        "measured row after row by one job running alone. The last FID column is O2MKD composed with a fast solver "
        "(the students replace the teacher network under DPM-Solver++(3M)). FID: lower is better."))


def write_tables(records: list[dict], profile: dict, out) -> None:
    """The O2MKD table (results/tables/o2mkd.*), when its rows and the profile are there."""
    if profile and in_table(records, "o2mkd"):
        write_o2mkd_table(out, o2mkd_table(records, profile))


# -- its study: one-to-one KD against O2MKD over training seeds ------------------------

def study_groups(records: list[dict]) -> dict:
    """The O2MKD study's records by router: {(N, recipe): [records, by training seed]},
    the config's recipe first."""
    groups: dict = {}
    for r in sorted(in_table(records, O2MKD_STUDY), key=lambda r: r["meta"]["train_seed"]):
        groups.setdefault((r["meta"]["students"], r["meta"]["recipe"]), []).append(r)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][1] != CONFIG_RECIPE, kv[0])))


def study_difference(groups: dict, students: int) -> dict | None:
    """One-to-one KD minus O2MKD with `students` students, both with the config's recipe,
    over their training seeds (`stats.paired_over_seeds`); None when either is missing."""
    kd, o2 = groups.get((1, CONFIG_RECIPE)), groups.get((students, CONFIG_RECIPE))
    if not kd or not o2:
        return None
    return {"students": students, "iters": kd[0]["meta"]["iters"], "nfe": kd[0]["nfe"],
            "kd": float(np.mean([r[Q] for r in kd])), "o2mkd": float(np.mean([r[Q] for r in o2])),
            "d": {**stats.paired_over_seeds([values(r) for r in kd], [values(r) for r in o2]),
                  "rows": [r.get("name") for r in kd[:1] + o2[:1]]}}


def study_table(groups: dict, curves: dict) -> tuple[pd.DataFrame, dict | None]:
    """One row per router of the study: FID at infinite n over its training seeds (mean,
    and their spread), its curves' last gain; a recipe variant (first seed) against the
    config's recipe of the same N, paired, the config recipe's training spread added.
    And KD minus the claim's N over the training seeds. `groups`: `study_groups`."""
    rows = []
    for (n, recipe), recs in groups.items():
        means = [r[Q] for r in recs]
        base = groups.get((n, CONFIG_RECIPE), [])
        row = {"router": recs[0]["label"], "N": n, "recipe": recipe, "iterations": recs[0]["meta"]["iters"],
               "training seeds": len(recs), "FID inf": float(np.mean(means)),
               "FID inf std (training)": float(np.std(means, ddof=1)) if len(means) > 1 else float("nan"),
               "curve: last gain": float(np.mean([last_gain(curves[r["meta"]["curve"]]["points"]) for r in recs
                                                 if r["meta"]["curve"] in curves] or [float("nan")]))}
        if recipe != CONFIG_RECIPE and base:
            spread = float(np.std([r[Q] for r in base], ddof=1)) if len(base) > 1 else None
            d = stats.paired_rows(recs[0], base[0], train_sd=spread, train_seeds=len(base))
            row |= {"- config recipe": d["diff"], "- config recipe std": d["se"], "p": d["p"]}
        rows.append(row)
    ns = sorted(n for n, _ in groups if n != 1)
    verdict = study_difference(groups, ns[-1]) if ns else None
    return pd.DataFrame(rows), verdict


def write_study(records: list[dict], out) -> None:
    """The study's table (ablations_o2mkd_study.{csv,md,tex}) and its learning curves
    (o2mkd_study.png): FID during training, a thin line per training seed."""
    curves = {r["meta"]["curve"]: read_curve(r["meta"]["curve"]) for r in in_table(records, O2MKD_STUDY)
              if Path(r["meta"]["curve"]).exists()}
    groups = study_groups(records)
    df, v = study_table(groups, curves)
    note = ("A recipe variant (first training seed) minus the config's recipe of the same N: paired over the "
            "evaluation seed sets, the config recipe's training-seed spread added (Welch-Satterthwaite). "
            "'curve: last gain': the last FID-curve point's improvement on the one before, as a fraction "
            "(near 0: flat).")
    if v:
        note = (f"One-to-one KD minus O2MKD N={v['students']} at {v['iters']} iterations, DDIM {v['nfe']}, over "
                f"{v['d']['train_seeds']} training seeds each: {stats.fmt(v['d'])}; the smallest difference this "
                f"run calls significant: {v['d']['detectable']:.2f}, the one it detects with 80 % power: "
                f"{stats.power80(v['d']['se'], v['d']['df']):.2f} (per-set differences of the seed means, the spread of "
                f"the per-seed differences added).\n\n{note}")
    write_table(out, O2MKD_STUDY, df, "O2MKD against one-to-one KD: learning curves and training seeds", note,
                intro="Each router trained with the config's recipe over several training seeds, and with each "
                      "recipe variant on the first seed; FID at infinite n at DDIM steps of the study (lower is "
                      "better). Learning curves: o2mkd_study.png.")
    lines = {router_label(n) + ("" if recipe == CONFIG_RECIPE else f", {recipe}"):
             [curves[r["meta"]["curve"]] for r in recs if r["meta"]["curve"] in curves]
             for (n, recipe), recs in groups.items()}
    lines = {k: c for k, c in lines.items() if c and all(c_["points"] for c_ in c)}
    if lines:
        plot_seed_curves(lines, Path(out), "o2mkd_study", "O2MKD against one-to-one KD: FID during training")


ABLATION_TABLES = {O2MKD_STUDY: write_study}  # the study's table and learning curves (results/ablations)


# -- its claim: O2MKD beats one-to-one KD, read from the study ----------------------------

def _o2mkd_study(d: Data):
    """The study's KD minus the claim's N over their training seeds, at the study's
    budget (None when the study was not built)."""
    v = study_difference(study_groups(d.records), d.o2mkd_students)
    if v is None:
        return None
    s = v["d"]
    return (f"DDIM {v['nfe']}, {v['iters']} iterations, {s['train_seeds']} training seeds each: one-to-one KD "
            f"(FID inf {v['kd']:.2f}) minus O2MKD N={d.o2mkd_students} ({v['o2mkd']:.2f}): {stats.fmt(s)}; "
            "results/ablations", {"d": s})


def _o2mkd(d: Data):
    """Decided over training seeds only (the study); one model per side cannot tell the
    routers from their training noise, so without the study the claim is not measured."""
    return _o2mkd_study(d)


CLAIMS = [
    Claim("O2MKD beats one-to-one KD at equal cost per step", "comparison with one-to-one KD (numbers not public)",
          "FID inf(one-to-one KD) - FID inf(O2MKD, N from the config), paired over the evaluation seed sets and the "
          "training seeds of the O2MKD study (results/ablations), > 0; without the study: not measured",
          better, None, _o2mkd, order=110),
]
