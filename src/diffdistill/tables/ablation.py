"""Ablation tables: one factor at a time around the default, each row against the
default, paired over the seed sets, training noise of both sides included."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from .. import stats
from ..atomic import atomic_dir
from ..errors import UserError
from ..records import Q, combination, in_table, load_records, reference, values
from . import Parts
from .format import finite, write_table


SIGNIFICANCE_RULE = (
    "Each row against the default, paired over the S evaluation seed sets both share: the mean per-set difference "
    "of FID at infinite n ± its standard error. Where both are trained models, each side is the mean of its T models "
    "(the default: its training seeds, the rows 'default, another training seed'; a setting the claims trained more "
    "often: all of its), each one draw of its training, so the variance adds s_train^2 (1 / T_a + 1 / T_b), s_train "
    "the spread between training seeds pooled over every setting with several (one model a side: 2 s_train^2; a "
    "row 'default, another training seed' is compared with the default's first model); with one training seed that "
    "noise is not measured and the row says so. Student's t "
    "with Welch-Satterthwaite degrees of freedom, two-sided; the marks control the false discovery rate over the "
    "table's {m} comparisons (Benjamini-Hochberg): *larger than noise* when q < 0.05, else *within noise*. "
    "'80 % power': the smallest difference the comparison detects with 80 % power.")


def ablation_table(records: list[dict], table: str = "ablations") -> tuple[pd.DataFrame, dict]:
    """One row per ablation run: its FID at infinite n, the paired difference to the
    default (training noise of both sides included) with its p value, its
    Benjamini-Hochberg q over the table and a significance mark, the effect it detects
    with 80 % power, the ratio of the bias-free FIDs; and the default's spread over
    training seeds. A setting trained with several seeds (the default's `train_seed`
    rows; the claims' extra seeds, table `replicas`) enters as the mean of its models,
    and the training noise is the spread pooled over every setting with several seeds:
    s_train^2 (1 / T_a + 1 / T_b) for T_a and T_b models a side."""
    recs = in_table(records, table)
    default = next((r for r in recs if r.get("meta", {}).get("factor") == "default"), None)
    if default is None:
        raise UserError(f"the rows of {table} lack the default row")
    runs = seed_groups(recs + [x for x in in_table(records, "replicas") if x.get("family") == default.get("family")])
    seeds = runs[("default", "")]
    trained = default.get("kind") == "distilled"  # a training-free sampler has no training-seed spread
    s2, df_train = pooled_training_variance(runs.values()) if trained else (0.0, 0)
    s_train = math.sqrt(s2) if s2 == s2 else float("nan")
    unmeasured = trained and df_train < 1
    ref = reference(records)
    rows = []
    for r in recs:
        m = r.get("meta", {})
        a, b = ([r], seeds[:1]) if m.get("factor") == "train_seed" else (runs[group_key(r)], seeds)
        sd = s_train * math.sqrt(1 / len(a) + 1 / len(b)) if trained and r.get("kind") == "distilled" else None
        d = stats.paired_rows(combination([(x, 1 / len(a)) for x in a]), combination([(x, 1 / len(b)) for x in b]),
                              train_sd=sd, train_seeds=df_train + 1, per_side=len(a))
        row = {"factor": "default" if m.get("factor") == "default" else m.get("factor_name", m.get("factor")),
               "value": m.get("value", ""), "NFE": r["nfe"], "models": len(a), "FID (n)": r["fid"], "FID inf": r[Q],
               "FID inf std": r.get(f"{Q}_std", float("nan")), "- default": d["diff"], "- default std": d["se"],
               "p": d["p"], "80 % power": stats.power80(d["se"], d["df"]),
               "vs default": stats.ratio(values(r), values(default))[0], "_paired": d}
        if ref is not None and not trained:  # samplers: also against the reference sampler, paired
            e = stats.paired_rows(r, ref)
            row |= {"- reference": e["diff"], "- reference std": e["se"], "p (reference)": e["p"],
                    "vs reference": "larger than noise" if stats.significant(e) else "within noise"}
        rows.append(row)
    others = [i for i, r in enumerate(recs) if r is not default]
    qs = stats.benjamini_hochberg([rows[i]["p"] for i in others])
    for row in rows:
        row["q (BH)"], row["significance"] = float("nan"), ""
    for i, q in zip(others, qs):
        d = rows[i]["_paired"]
        rows[i]["q (BH)"] = q
        rows[i]["significance"] = ("no spread measured" if d["se"] != d["se"] else
                                   ("larger than noise" if q < 0.05 else "within noise")
                                   + ("; training noise not measured" if unmeasured else ""))
    means = [x[Q] for x in seeds]
    spread = {"train_seeds": len(means), "fid_mean": float(np.mean(means)),
              "fid_std": float(np.std(means, ddof=1)) if trained and len(means) > 1 else 0.0 if not trained
              else float("nan"), "pooled_sd": s_train, "pooled_df": df_train,
              "description": default.get("meta", {}).get("description", ""), "comparisons": len(others),
              "training_noise_measured": not unmeasured}
    return pd.DataFrame(rows), spread


def group_key(r: dict) -> tuple[str, str]:
    """The setting an ablation row or a replica measures: (factor, value); the default's
    other training seeds are the default."""
    m = r.get("meta", {})
    return ("default", "") if m.get("factor") in ("default", "train_seed") else (m.get("factor"), m.get("value", ""))


def seed_groups(recs: list[dict]) -> dict:
    """{(factor, value): the setting's models over their training seeds}, the ablation
    table's row first."""
    out: dict = {}
    for r in sorted(recs, key=lambda r: "replica" in r.get("meta", {})):
        out.setdefault(group_key(r), []).append(r)
    return out


def pooled_training_variance(groups) -> tuple[float, int]:
    """The spread of FID at infinite n between training seeds, pooled over the settings
    trained with several: (s^2, degrees of freedom); (NaN, 0) where none is."""
    ss = df = 0
    for g in groups:
        if len(g) > 1:
            x = np.asarray([r[Q] for r in g], float)
            ss, df = ss + float(((x - x.mean()) ** 2).sum()), df + len(g) - 1
    return (ss / df, df) if df else (float("nan"), 0)


def ablation_metrics(df: pd.DataFrame) -> dict:
    """An ablation table's rows for DVC, nested by factor and value: FID at infinite n, its
    std over the seed sets, the paired difference to the default (± its standard error,
    training noise included) and its BH q."""
    out: dict = {}
    seen: dict = {}
    for _, row in df.iterrows():
        factor = str(row["factor"])
        value = str(row["value"]) if str(row["value"]) else "default"
        seen[(factor, value)] = seen.get((factor, value), 0) + 1
        if seen[(factor, value)] > 1:
            value = f"{value}#{seen[(factor, value)]}"
        out.setdefault(factor, {})[value] = {
            "fid_inf": finite(row["FID inf"]), "fid_inf_std": finite(row["FID inf std"]),
            "minus_default": finite(row["- default"]), "minus_default_se": finite(row["- default std"]),
            "q_bh": finite(row["q (BH)"])}
    return out


def write_ablation_dir(fid_files, out_dir, parts: Parts = Parts()) -> None:
    """One ablation table ({csv,md,tex}) per ablation group of the rows (each method's
    rows name theirs, e.g. `ablations`, `ablations_o2mkd`), titled by the family of its
    rows (`parts.labels`), into out_dir as a whole folder."""
    records = load_records(fid_files)
    tables = list(dict.fromkeys(t for r in records for t in r.get("tables", ()) if t.startswith("ablations")))
    metrics: dict = {}
    with atomic_dir(out_dir, "ablation-table") as out:
        for table in tables:
            if table in parts.ablation_tables:  # a method writes this one itself
                parts.ablation_tables[table](records, out)
                continue
            df, spread = ablation_table(records, table)
            df = df.drop(columns="_paired")
            shown = df.copy() if (df["models"] > 1).any() else df.drop(columns="models")  # the claims' replicas
            shown["vs default"] = shown["vs default"].map(lambda v: f"{v:.2f}x")
            note = SIGNIFICANCE_RULE.format(m=spread["comparisons"])
            if "- reference" in df:
                note = ("Training-free samplers: no training-seed spread enters; '- reference' is each row minus the "
                        f"reference sampler, paired the same way.\n\n{note}")
            elif spread["train_seeds"] > 1:
                note = (f"Default over {spread['train_seeds']} training seeds: FID at infinite n "
                        f"{spread['fid_mean']:.2f} ± {spread['fid_std']:.2f}.\n\n{note}")
            nfe = sorted(set(df["NFE"]))
            at = f"NFE {int(nfe[0])}" if len(nfe) == 1 else "each row's NFE"
            intro = (f"Each row changes one factor of the default and keeps the rest; FID at {at}"
                     f" at the evaluated n and at infinite n (lower is better; means over "
                     f"the evaluation seed sets); 'vs default': the ratio of FIDs at infinite n. Default: "
                     f"{spread['description'] or 'the config'}.")
            family = next(r.get("family", "") for r in in_table(records, table))
            title = f"{parts.labels.get(family, family.upper())} ablations (one factor at a time)"
            write_table(out, table, df, title, note, shown, intro)
            metrics[table] = ablation_metrics(df)
        # for DVC (dvc.yaml): every ablation row, nested by table, factor and value
        (out / "ablation_metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
