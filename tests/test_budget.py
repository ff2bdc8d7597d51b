"""The claims plan (diffdistill.budget): what a first pass's variances say to buy, and
what the workflow builds from it."""
import json
import math

import pytest

from diffdistill import budget, stats


def _s(a, b, **kw):
    return stats.paired(a, b, **kw)


A, B = [10.2, 10.9, 9.6, 10.4, 9.9], [10.0, 10.1, 9.9, 10.3, 9.7]


def test_seed_set_noise_buys_the_fewest_seed_sets_that_reach_x():
    """Without training noise the cheapest budget is seed sets alone: the fewest at which
    the one-sided 80 %-power bound is at or below the target (one fewer is not)."""
    s = _s(A, B)
    got = stats.reach(s, 0.4, lambda sets, models: sets * 2.0)
    assert got["models"] == 1 and got["sets"] > 5 and got["seconds"] == 2.0 * got["sets"]
    assert stats.power80(*stats.projected(s, got["sets"], 1), one_sided=True) <= 0.4
    assert stats.power80(*stats.projected(s, got["sets"] - 1, 1), one_sided=True) > 0.4


def test_training_noise_buys_training_seeds_which_seed_sets_cannot_replace():
    """Where both sides are trained, the plan's training noise s^2 (1/T + 1/max(T, T_default))
    does not shrink with seed sets: a target below it needs more models, and where the plan
    cannot train more (no `train`), the measured training noise stays and nothing reaches it."""
    s = _s(A, B, train_sd=math.sqrt(2) * 0.5, train_seeds=3)
    s2, df = 0.5 ** 2, 8

    def train(m):
        return s2 * (1 / m + 1 / max(m, 3)), df

    def cost(sets, models):
        return sets + 100.0 * (models - 1)

    se_inf, _ = stats.projected(s, 400, 1, train)
    assert se_inf > math.sqrt(s2 * (1 + 1 / 3)) * 0.99  # 400 seed sets leave the training noise
    got = stats.reach(s, 1.2, cost, train, max_models=6)
    assert got is not None and got["models"] > 1
    assert stats.power80(*stats.projected(s, got["sets"], got["models"], train), one_sided=True) <= 1.2
    assert stats.reach(s, 1.2, cost, None, max_models=6) is None
    assert stats.reach(s, 1.2, cost, train, max_models=1) is None


def _group(name, model_s=40.0, sets=10, kind="distilled", tmp=None):
    """A record with clocked sampling and metrics jobs (10 s each) and a model trained in `model_s`."""
    files = {}
    for what in ("samples", "metrics_file", "model"):
        f = tmp / f"{name}.{what}"
        f.write_text("")
        secs = model_s if what == "model" else 10.0
        (tmp / f"{name}.{what}.meta.json").write_text(json.dumps({"started_at": 0.0, "finished_at": secs,
                                                                  "wall_time": secs}))
        files[what] = str(f)
    return {"name": name, "kind": kind, "seed_sets": sets, "tables": ["ablations"], **files}


def test_a_shared_row_is_paid_once(tmp_path):
    """Two claims that share the default pay for its evaluation on S seed sets once; S
    seed sets re-evaluate every model of a setting and the reference; a new model trains
    and is evaluated on the main sets and the claim's; slots divide."""
    d, x, y = (_group(n, tmp=tmp_path) for n in ("d", "x", "y"))
    ref = _group("ref", kind="reference", tmp=tmp_path)
    c = budget.Costs({"default": [d, _group("d1", tmp=tmp_path)], "x": [x], "y": [y]}, ref, main_sets=10, slots=2)
    per_set = 2.0  # (10 s sampling + 10 s metrics) / 10 sets
    assert c.cost(["default", "x"], 20, 1) == pytest.approx((2 * 20 * per_set + 20 * per_set + 20 * per_set) / 2)
    c.buy(["default", "x"], 20, 1)
    assert c.cost(["default", "y"], 20, 1) == pytest.approx(20 * per_set / 2)  # y alone
    assert c.cost(["y"], 10, 2) == pytest.approx((40.0 + 10 * per_set) / 2)  # one more y: trained, main sets
    assert c.cost(["x"], 20, 2) == pytest.approx((40.0 + 10 * per_set + 20 * per_set) / 2)  # and on 20 sets


def test_the_workflow_builds_what_the_plan_asks_for(tmp_path):
    """The plan's models become the declared replicas of each setting (seed + 1, ...),
    its seed sets the rows of each setting, every model of it, and the reference on
    results/more-sets/S; a plan naming an unknown row is one clear error."""
    import yaml

    from conftest import ROOT
    from diffdistill import methods, rows as rowlib
    from diffdistill.errors import UserError

    cfg = methods.validate(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    assert not rowlib.in_table(methods.rows(cfg), "replicas")  # claims.max_train_seeds 1: none declared
    cfg["claims"]["max_train_seeds"] = 4
    rows = methods.rows(cfg)
    reps = rowlib.in_table(rows, "replicas")
    assert {r.meta["replica"] for r in reps} == set(range(1, cfg["claims"]["max_train_seeds"]))
    assert all(r.meta["factor"] in ("afs", "loss", "t_min", "K", "solver", "final_step", "train_seed") for r in reps)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"models": {"afs=False": 3, "default": 4},
                                "sets": {"30": ["students/sfd/afs0/nfe2"]}, "claims": []}))
    got = rowlib.planned_files(rows, str(plan))
    assert [f for f in got if "afs0" in f and "more-sets" not in f] == [
        "results/fid/students/sfd/afs0-seed1/nfe2/fid.json", "results/fid/students/sfd/afs0-seed2/nfe2/fid.json"]
    assert "results/fid/students/sfd/seed3/nfe2/fid.json" in got  # the default's fourth model
    more = [f for f in got if f.startswith("results/more-sets/30/")]
    assert "results/more-sets/30/fid/students/sfd/afs0/nfe2/fid.json" in more
    assert "results/more-sets/30/fid/students/sfd/afs0-seed2/nfe2/fid.json" in more
    assert rowlib.fid_path(rowlib.reference(rows), 30) in more and len(more) == 4
    plan.write_text(json.dumps({"models": {}, "sets": {"30": ["no/such/row"]}, "claims": []}))
    with pytest.raises(UserError, match="no result row 'no/such/row'"):
        rowlib.planned_files(rows, str(plan))
    plan.write_text(json.dumps({"models": [], "sets": {"many": ["students/sfd/afs0/nfe2"]}, "claims": []}))
    with pytest.raises(UserError, match="claims plan .*plan.json"):
        rowlib.planned_files(rows, str(plan))


def test_each_claim_reads_its_rows_on_one_number_of_seed_sets(tmp_path):
    """Every evaluation of a row is kept; a claim reads each row on the seed sets the plan
    bought for it where the row has them, else on the main evaluation."""
    from diffdistill.records import at_sets, load_records

    files = []
    for i, (name, sets) in enumerate([("a", 10), ("b", 10), ("a", 30), ("a", 18)]):
        f = tmp_path / f"{i}.json"
        f.write_text(json.dumps({"name": name, "label": name, "nfe": 2, "fid": 1.0, "seed_sets": sets}))
        files.append(f)
    assert [r["seed_sets"] for r in load_records(files)] == [10, 10]
    every = load_records(files, every_evaluation=True)
    assert len(every) == 4
    assert [(r["name"], r["seed_sets"]) for r in at_sets(every)] == [("a", 10), ("b", 10)]
    assert [(r["name"], r["seed_sets"]) for r in at_sets(every, 30)] == [("a", 30), ("b", 10)]


def test_a_claim_read_on_more_seed_sets_keeps_the_x_fixed_before_the_run():
    """X comes from the main evaluation even where the plan bought a claim more seed sets
    (whose rows' levels move with the extra sets)."""
    from diffdistill.claims_table import claims
    from diffdistill.methods import all_claims

    def row(level, sets):
        return {"name": "sfd2", "label": "SFD", "family": "sfd", "kind": "distilled", "nfe": 2, "tables": ["main"],
                "fid": level + 40, "fid_inf": level, "fid_inf_sets": [level] * sets, "seed_sets": sets}

    records = [row(10.0, 10), row(12.0, 30)]
    l1 = "L1 beats or matches L2"
    plan = {"claims": [{"claim": l1, "sets": 30, "bought": True}]}
    got = claims(records, all_claims(), plan=plan).set_index("claim").loc[l1, "X target"]
    assert got == "0.50 FID", got
