"""Experiment names: settings <-> folder names in one grammar, round-tripped for every
ablation factor; result rows of the default config."""
import pytest
import yaml

from conftest import ROOT, training_flags
from diffdistill import naming
from diffdistill.errors import UserError
from diffdistill.methods import rows, validate
from diffdistill.methods.pd.train import ProgressiveDistillation
from diffdistill.methods.sfd.plan import ABLATION_FACTORS
from diffdistill.methods.sfd.train import SFD


def _config(name="config.yaml"):
    return validate(yaml.safe_load((ROOT / "config" / name).read_text()))


@pytest.mark.parametrize("factor", ABLATION_FACTORS + ("iters", "train_seed"))
def test_variant_round_trip_for_every_ablation_factor(factor):
    cfg = _config()
    defaults = SFD.defaults(cfg)
    values = {"solver": ["euler", "dpmpp3m_exact"], "final_step": ["dpm", "off"], "afs": [False],
              "t_min": [0.002, 0.02, 0.1], "loss": ["l2"], "K": [1, 6, 12], "num": [1000, 50000],
              "iters": [77, 1563], "train_seed": [1, 2]}[factor]
    for value in values:
        settings = {**defaults, factor: value}
        name = naming.variant(settings, defaults)
        assert name != "default" and "-" not in name  # one factor: one token
        assert naming.parse_variant(name, defaults) == settings
    assert naming.variant(defaults, defaults) == "default"
    assert naming.parse_variant("default", defaults) == defaults


def test_several_settings_and_every_ablation_run_round_trip():
    cfg = _config()
    defaults = SFD.defaults(cfg)
    s = {**defaults, "iters": 77, "solver": "heun", "t_min": 0.02, "loss": "l2"}
    assert naming.variant(s, defaults) == "it77-solverheun-tmin0.02-lossl2"
    assert naming.parse_variant("it77-solverheun-tmin0.02-lossl2", defaults) == s
    for factor, value, var in SFD.ablation_runs(cfg):
        settings = naming.parse_variant(var, defaults)
        assert factor == "default" or settings[factor] == value


def test_cache_names_round_trip_and_name_what_shapes_them():
    cfg = _config()
    settings = SFD.cache_settings(cfg, SFD.defaults(cfg))
    name = naming.cache_name(settings)
    assert name == "fromteacher-solverdpmpp2m-K4-finalforce-thr0-tmin0.006-tmax80-rho7-tlast0.6699-afs1-tafs0-n5000-s100000"
    assert naming.parse_cache(name) == settings
    assert naming.source_model(naming.parse_cache(name)["source"]) == naming.TEACHER
    assert naming.source_model("sfdnfe5") == "results/students/sfd/default/nfe5/model.pt"


@pytest.mark.parametrize("bad", ["tmin0.0200", "lossl2-tmin0.02", "bogus3", "K4-K5", "afs2"])
def test_non_canonical_or_unknown_names_are_refused(bad):
    defaults = SFD.defaults(_config())
    with pytest.raises(UserError):
        naming.parse_variant(bad, defaults)


def test_rows_of_the_default_config():
    cfg = _config()
    cfg["baselines"]["afs"] = [False, True]  # DDIM without AFS is a main-table baseline too
    cfg["o2mkd"]["ddim_nfe"] = [5, 10, 20]  # and a column of the O2MKD table
    rs = {r.name: r for r in rows(cfg)}
    assert rs["students/sfd/default/nfe2"].tables == ("main", "ablations")  # the ablation default is the main student
    assert rs["students/sfdv/default/nfe3"].model == "results/students/sfdv/default/model.pt"
    assert rs["students/sfdv/default/nfe3"].recipe.nfe == 3 and rs["students/sfdv/default/nfe3"].recipe.solver is None
    assert rs["teacher-euler/nfe5"].tables == ("main", "o2mkd")  # DDIM 5: both tables, one job
    assert rs["teacher-euler/nfe20"].tables == ("o2mkd",)
    assert rs["reference/nfe35"].kind == "reference" and rs["reference/nfe35"].all_seed_sets
    labels = [r.label for r in rs.values() if "main" in r.tables]
    assert labels[0] == "teacher (reference)" and "SFD" in labels and "SFD target (teacher trajectories)" in labels
    extended = {r.label for r in rs.values() if "extended" in r.tables}  # built with the claims
    assert {"PD (progressive distillation)", "SFD-v (one model)", "SFD second stage"} <= extended
    abl = [r for r in rs.values() if "ablations" in r.tables]
    assert len(abl) == len(SFD.ablation_runs(cfg)) and abl[0].meta["factor"] == "default"


def test_an_empty_pd_nfe_list_runs_no_pd():
    cfg = _config()
    cfg["pd"]["nfe"] = []
    names = [r.name for r in rows(cfg)]
    assert names and not [n for n in names if n.startswith(("pd-teacher/", "students/pd/"))], names
    assert ProgressiveDistillation.rounds(cfg) == [] and ProgressiveDistillation.rounds(_config()) == [64, 32, 16, 8, 4, 2, 1]


def test_an_ablation_variants_schedule_reaches_its_training_flags():
    """The t_min of a variant folder (tmin0.02) reaches `diffdistill train sfd` with the
    rest of the config's schedule, each schedule flag once."""
    from types import SimpleNamespace

    from diffdistill import methods

    cfg = _config()
    wc = SimpleNamespace(variant="tmin0.02", nfe="2")
    inp = SimpleNamespace(teacher="t.pt", ref="r.npz", get=lambda k: None)
    out = SimpleNamespace(curve="c.json")
    text = training_flags("sfd", cfg, wc, inp, out).split()
    assert [text[text.index(f) + 1] for f in ("--t-min", "--t-max", "--rho")] == ["0.02", "80.0", "7.0"]
    assert all(text.count(f) == 1 for f in ("--t-min", "--t-max", "--rho"))


@pytest.mark.parametrize("name", ["config.yaml", "test.yaml"])
def test_every_sfd_nfe_has_its_target_row_on_the_evaluation_seeds(name):
    """Each NFE of sfd.nfe has a target row (the teacher's trajectories of the default
    student's settings, cached for the evaluation seeds 0 .. S n - 1, so student - target
    is paired), in the main table, and each SFD, SFD-v and PD row that names a target
    names a row that exists; PD's rounds name their own teacher."""
    cfg = _config(name)
    rs = {r.name: r for r in rows(cfg)}
    ev = cfg["eval"]
    targets = {r.nfe: r for r in rs.values() if r.kind == "target"}
    assert sorted(targets) == sorted(cfg["sfd"]["nfe"])
    for nfe, t in targets.items():
        assert "main" in t.tables and t.samples == SFD.target_cache(cfg, nfe)
        key = naming.parse_cache(t.samples.split("/")[2])
        assert key["seed_start"] == 0 and key["num"] == ev["num_samples"] * ev["seed_sets"]
        assert rs[f"students/sfd/default/nfe{nfe}"].meta["target"] == t.name
    named = [r for r in rs.values() if "target" in r.meta]
    assert named and all(r.meta["target"] in rs for r in named)
    for r in named:
        if r.family == "pd":
            teacher = rs[r.meta["target"]]
            assert teacher.nfe == 2 * r.nfe and teacher.family == "pd"


def test_t_last_names_its_caches_and_reaches_every_sfd_familys_training_flags():
    """sfd.t_last is in the caches' names (a plain schedule's names keep their old form), in
    the training flags of SFD, SFD-v and O2MKD x SFD, and the second stage's stage-1
    student is SFD's on the paper's ramp (a variant tlast0), whose cache it names."""
    from types import SimpleNamespace

    from diffdistill import methods
    from diffdistill.methods.o2sfd.train import O2SFD
    from diffdistill.methods.sfd2.train import SFD2
    from diffdistill.methods.sfdv.train import SFDV

    cfg = _config()
    cfg["sfd"]["t_last"] = 0.6699
    d = SFD.defaults(cfg)
    name = naming.cache_name(SFD.cache_settings(cfg, d))
    assert "-tlast0.6699-" in name and naming.parse_cache(name)["t_last"] == 0.6699
    plain = naming.cache_name(SFD.cache_settings(cfg, {**d, "t_last": 0.0}))
    assert "tlast" not in plain and naming.parse_cache(plain).get("t_last") is None
    inp = SimpleNamespace(teacher="t.pt", ref="r.npz", traj=["a.pt"], get=lambda k: None)
    out = SimpleNamespace(curve="c.json")
    for cls, wc in ((SFD, SimpleNamespace(variant="default", nfe="3")), (SFDV, None),
                    (O2SFD, SimpleNamespace(variant="n3", nfe="3"))):
        text = training_flags(cls.name, cfg, wc, inp, out).split()
        assert text[text.index("--t-last") + 1] == "0.6699", cls.name
    assert SFD2.rule_inputs(cfg)["teacher"] == "results/students/sfd/tlast0/nfe5/model.pt"
    src = naming.parse_cache(SFD2.cache(cfg).split("/")[-3])["source"]
    assert naming.source_model(src) == "results/students/sfd/tlast0/nfe5/model.pt"
    cfg["sfd"]["t_last"] = 0.0
    assert SFD2.rule_inputs(cfg)["teacher"] == "results/students/sfd/default/nfe5/model.pt"


@pytest.mark.parametrize("t_last, match", [(100.0, "sfd.t_last: 100.0 is not between"),
                                           (0.01, "ablations.t_min: 0.02 is not below sfd.t_last 0.01")])
def test_a_t_last_out_of_range_is_one_line_naming_its_key(t_last, match):
    cfg = _config()
    cfg["sfd"]["t_last"] = t_last
    with pytest.raises(UserError, match=match):
        SFD.check_config(cfg)
