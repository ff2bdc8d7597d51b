"""The claims table's rules (diffdistill.claims, diffdistill.claims_table; the claims
themselves are the methods', `methods.all_claims`): each holds on the paper's own numbers,
none passes for the wrong reason, the family is corrected for multiplicity, and every
verdict that is not a decision says which effects the run excludes."""
import math

import numpy as np
import pytest

from diffdistill import stats
from diffdistill.claims import decide
from diffdistill.claims_table import claims as claims_table
from diffdistill.methods import all_claims

CLAIMS = all_claims()


def claims(records, **kw):
    """The claims table of every method's claims."""
    return claims_table(records, CLAIMS, **kw)


def _row(name, family, kind, nfe, level, tables=("main",), label=None, noise=(0.0, 0.4, -0.4, 0.2, -0.2)):
    sets = [level + e for e in noise]
    return {"name": name, "label": label or name, "family": family, "kind": kind, "nfe": nfe,
            "tables": list(tables), "fid": level + 40, "fid_inf": float(np.mean(sets)), "fid_inf_sets": sets}


OTHER = (0.3, -0.2, 0.1, -0.4, 0.2)  # another row's per-set noise (paired differences need a spread)


def _verdict(records, claim, **kw):
    return claims(records, **kw).set_index("claim").loc[claim]


@pytest.mark.parametrize("claim", [c for c in CLAIMS if c.paper is not None], ids=lambda c: c.claim)
def test_every_rule_holds_on_the_papers_own_numbers(claim):
    assert decide(claim.test(claim.paper)) == "holds", claim.claim


def test_claims_without_measurements_say_so():
    assert set(claims([])["verdict"]) == {"not measured"}


def test_holm_and_benjamini_hochberg():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.benjamini_hochberg([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.04, 0.04])
    h = stats.holm([0.02, float("nan")])
    assert h[0] == pytest.approx(0.02) and h[1] != h[1]


def test_the_80_percent_power_effect_is_about_3_7_standard_errors_at_4_degrees_of_freedom():
    assert stats.power80(1.0, 4) == pytest.approx(2.776 + 0.941, abs=0.01)
    assert stats.power80(float("nan"), 4) != stats.power80(float("nan"), 4)


def test_a_difference_within_noise_says_which_effects_it_excludes():
    """Not significant: 'no effect larger than X', X the upper end of the 90 % interval in
    the claim's direction."""
    from diffdistill.claims import better

    s = stats.paired([1.0, 1.5, 0.2, 0.9, 0.4], [0.5, 0.4, 0.6, 0.3, 0.7])
    assert not stats.significant(s)
    x = s["diff"] + stats.t_crit(s["df"], 0.90) * s["se"]
    assert decide(better({"d": s})) == f"no effect larger than {x:.2f} FID"


def test_sfdv_must_hold_at_every_nfe():
    """NFE 3 far below 1.10 cannot hide NFE 4 above it (the mean of the ratios would)."""
    sfd = [_row(f"sfd{n}", "sfd", "distilled", n, 10.0) for n in (2, 3, 4, 5)]
    v_levels = {2: 9.9, 3: 8.0, 4: 12.0, 5: 10.0}
    sfdv = [_row(f"sfdv{n}", "sfdv", "distilled", n, v_levels[n], tables=("extended",), noise=OTHER)
            for n in (2, 3, 4, 5)]
    assert np.mean([v_levels[n] / 10.0 for n in v_levels]) < 1.0
    got = _verdict(sfd + sfdv, "SFD-v is about as good as the per-NFE SFD students")
    assert got["verdict"] == "does not hold", got.to_dict()


def test_beating_training_free_sampling_is_tested_at_every_nfe_up_to_5():
    """SFD at NFE 2 beats every sampler at NFE 2, but a sampler at NFE 5 beats it: the
    claim does not hold (testing NFE 2 against NFE 2 alone said it did)."""
    recs = [_row("sfd2", "sfd", "distilled", 2, 10.0)]
    recs += [_row(f"{s}{n}", "teacher", "baseline", n, 50.0 if n < 5 else 5.0, label=s, noise=OTHER)
             for s in ("euler", "dpmpp3m") for n in (2, 3, 4, 5)]
    got = _verdict(recs, "SFD beats training-free sampling at equal or higher NFE, up to NFE 5")
    assert got["verdict"] == "does not hold" and "8 pairs" in got["ours"], got.to_dict()
    only_nfe2 = [r for r in recs if r["nfe"] == 2]
    assert _verdict(only_nfe2, "SFD beats training-free sampling at equal or higher NFE, up to NFE 5")[
        "verdict"] == "holds"


def _pd_chain(losses, ddim_losses):
    """PD's chain from a first teacher at 16 steps: each round's loss to its teacher and
    what DDIM loses halving the same teacher (rows pd-teacher/nfe<n>)."""
    level, recs = 10.0, [_row("pd-teacher/nfe16", "pd", "baseline", 16, 10.0, tables=("extended",))]
    for n, loss, dl in zip((8, 4, 2), losses, ddim_losses):
        recs.append(_row(f"pd-teacher/nfe{n}", "pd", "baseline", n, level + dl, tables=("ablations_pd",),
                         noise=OTHER))
        level += loss
        recs.append(_row(f"students/pd/default/nfe{n}", "pd", "distilled", n, level, tables=("extended",),
                         noise=tuple(0.5 * x for x in OTHER)))
    return recs


def test_pd_rounds_that_lose_more_than_half_of_ddims_loss_do_not_hold():
    """Rounds losing 12.0 and 15.7 FID against their teachers, where halving with DDIM
    loses 10 and 14: PD kept nothing; the old rule (ratio <= 1.5) called 22 -> 37.7
    'holds'."""
    got = _verdict(_pd_chain([12.0, 15.7, 1.0], [10.0, 14.0, 30.0]), "PD halves the steps down to 4 with little loss")
    assert got["verdict"] == "does not hold", got.to_dict()
    assert (22.0 / 10.0 > 1.5) and (37.7 / 22.0 < 1.5 * 1.2)
    good = _verdict(_pd_chain([0.5, 1.0, 9.0], [10.0, 20.0, 1.0]), "PD halves the steps down to 4 with little loss")
    assert good["verdict"] == "holds", good.to_dict()


def test_o2mkd_is_not_measured_without_training_seeds():
    """One model per side (the main table's routers) cannot be told from training noise:
    the claim is not measured, however large the difference."""
    recs = [_row("kd", "o2mkd", "distilled", 20, 20.0, tables=("o2mkd",), label="one-to-one KD"),
            _row("o2", "o2mkd", "distilled", 20, 10.0, tables=("o2mkd",), label="O2MKD N=3")]
    for r in recs:
        r["meta"] = {"o2mkd": {"col": "DDIM 20"}}
    got = _verdict(recs, "O2MKD beats one-to-one KD at equal cost per step", o2mkd_students=3)
    assert got["verdict"] == "not measured"


def test_an_unreachable_equivalence_margin_says_what_would_reach_it():
    from diffdistill.claims import beats_or_matches

    s = stats.paired([10.2, 12.0, 8.5, 11.0, 9.0], [10.0, 10.0, 10.0, 10.0, 10.0])
    t = beats_or_matches(0.10)({"d": s, "scale": 10.0})
    assert any("cannot reach the margin 1.00" in n and "seed sets would" in n for n in t.notes), t.notes
    assert decide(t).startswith("no effect larger than")


def test_a_bound_with_an_unknown_spread_decides_nothing():
    assert stats.at_most(1.0, float("nan"), 4, 1.5).startswith("inconclusive")
    assert stats.at_most(1.0, 0.0, math.inf, 1.5) == "holds"  # an exact number (the paper's)


def test_the_family_is_corrected_for_multiplicity():
    """Every measured claim's p is Holm-adjusted over the family of measured claims (here
    SFD against a sampler, p 0.018, doubles beside SFD-v's 0.079) and its verdict follows
    the adjusted p; claims not measured are not counted."""
    from diffdistill.claims_table import Data

    recs = [_row("sfd2", "sfd", "distilled", 2, 10.0, noise=(0.0, 1.0, -1.0, 0.5, -0.5))]
    recs += [_row("euler2", "teacher", "baseline", 2, 11.1, label="euler", noise=(0.3, 0.3, -1.5, 1.4, -0.5))]
    recs += [_row("sfdv2", "sfdv", "distilled", 2, 10.5, tables=("extended",), noise=(0.5, 0.2, -0.9, 0.9, -0.3))]
    df = claims(recs).set_index("claim")
    beats = "SFD beats training-free sampling at equal or higher NFE, up to NFE 5"
    sfdv = "SFD-v is about as good as the per-NFE SFD students"
    raw = stats.paired_rows(recs[1], recs[0])["p"]
    sfdv_claim = next(c for c in CLAIMS if c.claim == sfdv)
    p_sfdv = sfdv_claim.test(sfdv_claim.ours(Data(recs))[1]).p
    assert raw < 0.05 and 0 < p_sfdv < 1
    expected = stats.holm([raw, p_sfdv])
    assert df.loc[beats, "p (Holm)"] == pytest.approx(expected[0])
    assert df.loc[sfdv, "p (Holm)"] == pytest.approx(expected[1])
    assert expected[0] == pytest.approx(2 * raw) and (df.loc[beats, "verdict"] == "holds") == (expected[0] < 0.05)
    assert df.loc[sfdv, "verdict"].startswith("no effect larger than x")


def test_ablation_rows_carry_the_training_noise_of_both_sides():
    """Each side is the mean of its models over their training seeds, and the training
    noise is the spread pooled over every setting with several seeds, s^2 (1 / T_a +
    1 / T_b) (one model against one model: 2 s^2); a replica (table `replicas`, the claims
    plan's) joins its setting; with one training seed the mark says training noise was
    not measured."""
    from diffdistill.tables.ablation import ablation_table

    def abl(name, level, factor, value="", kind="distilled", noise=(0.0, 0.4, -0.4, 0.2, -0.2)):
        r = _row(name, "sfd", kind, 2, level, tables=("ablations",), noise=noise)
        r["meta"] = {"factor": factor, "factor_name": factor, "value": value}
        return r

    recs = [abl("d", 10.0, "default"), abl("s1", 10.6, "train_seed", "1", noise=(0.1, 0.3, -0.2, 0.2, -0.4)),
            abl("x", 12.0, "loss", "l2")]
    mean = lambda *rs: np.mean([r["fid_inf_sets"] for r in rs], axis=0)  # noqa: E731
    df, spread = ablation_table(recs)
    s2 = np.var([10.0, 10.6], ddof=1)
    d = df.set_index("value").loc["l2", "_paired"]
    plain = stats.paired(recs[2]["fid_inf_sets"], mean(recs[0], recs[1]))
    assert d["se"] == pytest.approx(math.sqrt(plain["se"] ** 2 + s2 * (1 + 1 / 2)))
    seed = df.set_index("value").loc["1", "_paired"]  # the default's other seed against the default: 2 s^2
    assert seed["se"] == pytest.approx(math.sqrt(stats.paired(recs[1]["fid_inf_sets"], recs[0]["fid_inf_sets"])["se"]
                                                 ** 2 + 2 * s2))
    rep = abl("x2", 12.4, "loss", "l2", noise=(0.3, 0.1, -0.1, 0.0, -0.3))
    rep["tables"], rep["meta"]["replica"] = ("replicas",), 1
    df2, spread2 = ablation_table(recs + [rep])
    pooled = (np.var([10.0, 10.6], ddof=1) + np.var([12.0, 12.4], ddof=1)) / 2
    d2 = df2.set_index("value").loc["l2"]
    plain2 = stats.paired(mean(recs[2], rep), mean(recs[0], recs[1]))
    assert d2["models"] == 2 and spread2["pooled_df"] == 2
    assert d2["_paired"]["se"] == pytest.approx(math.sqrt(plain2["se"] ** 2 + pooled * (1 / 2 + 1 / 2)))
    assert d2["- default"] == pytest.approx(12.2 - 10.3)
    one, _ = ablation_table([recs[0], recs[2]])
    assert "training noise not measured" in one.set_index("value").loc["l2", "significance"]


def test_a_papers_effect_is_carried_to_our_scale_through_the_same_rows():
    """Where the paper gives the effect, the claim's X target is half of it carried to our
    scale: the same fraction of a row both have (here our DPM-Solver++(3M) at NFE 5 sits
    3.0 above our reference; the paper's smallest gap is 0.889 of that sampler's excess),
    not 10 % of our SFD student."""
    from diffdistill.claims_table import Data, claim_effect

    recs = [_row("reference", "teacher", "reference", 35, 6.0), _row("sfd", "sfd", "distilled", 2, 10.0)]
    recs += [_row("teacher-dpmpp3m-afs/nfe5", "teacher", "baseline", 5, 9.0, label="teacher DPM-Solver++(3M), AFS")]
    d = Data(recs)
    beats = next(c for c in CLAIMS if c.claim.startswith("SFD beats training-free"))
    assert claim_effect(beats, d) == pytest.approx((24.97 - 4.53) / (24.97 - 1.97) * 3.0)
    afs = next(c for c in CLAIMS if c.claim == "AFS helps")  # no published effect: 10 % of SFD at NFE 2
    assert claim_effect(afs, d) == pytest.approx(1.0)
    got = claims(recs).set_index("claim").loc[beats.claim, "X target"]
    assert got == f"{(24.97 - 4.53) / (24.97 - 1.97) * 3.0 / 2:.2f} FID", got
    pd = next(c for c in CLAIMS if c.claim.startswith("PD halves"))  # the smallest DDIM halving loss: 10
    frac = ((15.69 - 2.57) / 2 - (3.00 - 2.57)) / (15.69 - 2.57)
    assert claim_effect(pd, Data(_pd_chain([0.5, 1.0, 9.0], [10.0, 20.0, 1.0]))) == pytest.approx(frac * 10.0)


def test_a_budget_dominated_by_training_noise_asks_for_training_seeds_not_seed_sets():
    """Training noise does not shrink with seed sets: where it alone keeps the bound above
    X, the budget adds training seeds per model; without it, seed sets alone, and the
    fewest that reach X with 80 % power."""
    a, b = [10.2, 10.9, 9.6, 10.4, 9.9], [10.0, 10.1, 9.9, 10.3, 9.7]
    plain = stats.paired(a, b)
    assert stats.power80(plain["se"], plain["df"], one_sided=True) > 0.4
    got = stats.reach(plain, 0.4, stats.linear_cost(plain, 1.0, 100.0), stats.measured_training(plain))
    assert got["models"] == 1 and got["sets"] > 5
    se, df = stats.projected(plain, got["sets"])
    assert stats.power80(se, df, one_sided=True) <= 0.4
    se, df = stats.projected(plain, got["sets"] - 1)
    assert stats.power80(se, df, one_sided=True) > 0.4  # the fewest sets
    noisy = stats.paired(a, b, train_sd=math.sqrt(2) * 0.8, train_seeds=3)
    assert stats.projected(noisy, 400)[0] > 1.0  # 400 seed sets cannot remove 2 s_train^2 = 1.28
    got = stats.reach(noisy, 1.0, stats.linear_cost(noisy, 1.0, 100.0), stats.measured_training(noisy))
    assert got is not None and got["models"] > 1
    se, df = stats.projected(noisy, got["sets"], got["models"], stats.measured_training(noisy))
    assert stats.power80(se, df, one_sided=True) <= 1.0
    assert got["seconds"] >= (got["models"] - 1) * 100.0


def test_the_claims_table_prices_the_budget_that_would_reach_x():
    """A claim whose bound is above its X target names the seed sets that would reach it
    and their minutes, from the rows' own job clocks (metadata sidecars)."""
    import json

    from diffdistill.claims_table import Data, budget_text

    recs = [_row("sfd2", "sfd", "distilled", 2, 10.0, noise=(0.0, 1.0, -1.0, 0.5, -0.5)),
            _row("euler2", "teacher", "baseline", 2, 10.4, label="euler", noise=(0.3, 0.3, -1.5, 1.4, -0.5))]
    d = Data(recs)
    s = stats.paired_rows(recs[1], recs[0])
    assert s["rows"] == ["euler2", "sfd2"] and d.costs(s["rows"]) == (0.0, 0.0)  # no clocks: no cost
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        for r in recs:
            f = Path(tmp) / f"{r['name']}.npz"
            f.write_bytes(b"")
            Path(f"{f}.meta.json").write_text(json.dumps({"started_at": 0.0, "finished_at": 30.0}))
            r["samples"], r["seed_sets"] = str(f), 5
        d = Data(recs)
        assert d.costs(s["rows"]) == pytest.approx((12.0, 0.0))  # 2 rows x 30 s / 5 sets
        text = budget_text(s, 0.5, d)
        got = stats.reach(s, 0.5, stats.linear_cost(s, 12.0, 0.0))
        assert text == f"{got['sets']} seed sets: about {(got['sets'] - 5) * 12.0 / 60:.0f} min more"


def test_the_claims_target_builds_the_ablation_rows_a_claim_reads_and_no_other():
    """Each ablation a claim reads (factor, value) is a row the claims target builds
    (`Row.claims`), as are the default and its other training seeds; every other SFD
    ablation row is the ablation table's only. The O2MKD study's rows with the config's
    recipe, and the DDIM rows at each PD round's steps, are built with the claims too."""
    import yaml

    from conftest import ROOT
    from diffdistill import methods
    from diffdistill.naming import CONFIG_RECIPE

    cfg = methods.validate(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    rows = methods.rows(cfg)
    sfd = [r for r in rows if "ablations" in r.tables]
    reads = [c.ours.reads for c in CLAIMS if hasattr(c.ours, "reads")]
    assert len(reads) == 6
    for factor, value in reads:
        hit = [r for r in sfd if r.meta["factor_name"] == factor and (value is None or r.meta["value"] == value)]
        assert hit and all(r.claims for r in hit), (factor, value)
    for r in sfd:
        read = any(r.meta["factor_name"] == f and (v is None or r.meta["value"] == v) for f, v in reads)
        assert r.claims == (read or r.meta["factor"] in ("default", "train_seed")), r.name
    assert any(not r.claims for r in sfd)  # the table's other values: not built by the claims
    study = [r for r in rows if r.tables == ("ablations_o2mkd_study",)]
    assert study and all(r.claims == (r.meta["recipe"] == CONFIG_RECIPE) for r in study)
    assert not any(r.claims for r in rows if "ablations_o2mkd" in r.tables)
    ddim = {r.nfe for r in rows if r.claims and "ablations_pd" in r.tables}
    assert ddim == {n for n in cfg["pd"]["nfe"] if any(r.nfe == n for r in rows if "ablations_pd" in r.tables)}


def test_the_claims_write_their_own_wall_clock_and_a_dated_page(tmp_path, monkeypatch):
    """jobs.md counts the jobs beyond the main table's rows; summary.md is the dated page
    of the claims and their time."""
    import json

    from diffdistill.claims_table import write_claims

    monkeypatch.chdir(tmp_path)
    files = []
    for i, (name, tables, start) in enumerate([("sfd2", ("main",), 0.0), ("afs0", ("ablations",), 100.0)]):
        f = tmp_path / f"results/fid/{name}/fid.json"
        f.parent.mkdir(parents=True)
        f.write_text(json.dumps({**_row(name, "sfd", "distilled", 2, 10.0 + i, tables=tables),
                                 "meta": {"factor": "default" if i else "", "factor_name": "default", "value": ""}}))
        (f.parent / "fid.json.meta.json").write_text(json.dumps({"pid": i, "host": "h", "started_at": start,
                                                                 "finished_at": start + 30.0}))
        files.append(f"results/fid/{name}/fid.json")
    write_claims(files, tmp_path / "out", CLAIMS)
    assert "**0.5 min**" in (tmp_path / "out/claims.md").read_text()  # 100 s .. 130 s: the ablation row's job only
    page = (tmp_path / "out/summary.md").read_text()
    assert page.startswith("# Claims, ") and "## The papers' claims" in page and "## Where the time went" in page
