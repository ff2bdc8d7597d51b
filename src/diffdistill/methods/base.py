"""The interface every method implements (see `diffdistill.methods` for the registry)."""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ..errors import UserError
from ..naming import FEATNET, REF_STATS, TEACHER
from ..options import Opt
from ..recipe import Recipe
from ..rows import Row
from ..schedules import Schedule
from ..solvers import SOLVER_NAMES

if TYPE_CHECKING:
    from torch import nn


def curve_inputs(cfg: dict) -> dict:
    """What an FID curve reads: the reference statistics and the feature network."""
    ev = cfg["eval"]
    weights = [ev["inception_weights"]] if ev["inception_weights"] else []
    return {"ref": REF_STATS, "featnet": weights if ev["features"] == "inception" else [FEATNET]}


def curve_values(cfg: dict, input, output) -> dict:
    return {"curve_out": output.curve, "ref": input.ref,
            "featnet": FEATNET if cfg["eval"]["features"] == "classifier" else None}


class Method:
    """One training method behind the runner.

    Class attributes declare it: `name` (registry key, the `diffdistill train <name>`
    subcommand and the results/students/<name> folder), `section` (its config section:
    defaults and allowed values of its options), `summary` (help), `options` (its own
    command-line options; the runner adds the training and run options) and `curves`
    (whether it measures a validation curve, which the plateau rule of
    `diffdistill.convergence` reads: its `monitor` value).

    An instance is built from its command's typed, frozen settings (`self.settings`,
    `command_options`): it loads its inputs, builds
    `self.model` (the trained module) and `self.spec` (the checkpoint's constructor
    spec), implements `train_step`, and says how its result samples (`recipe`).
    """

    name: ClassVar[str] = ""
    section: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    options: ClassVar[tuple[Opt, ...]] = ()
    curves: ClassVar[bool] = False         # a validation curve on the curve seeds (and the plateau rule)
    monitor: ClassVar[str] = "rmse"        # the curve's value the plateau rule reads (lower is better)
    find_unused: ClassVar[bool] = False    # DDP: some parameters sit out some steps
    reads: ClassVar[tuple[str, ...]] = ()  # config sections it depends on besides its own
    plan_only: ClassVar[tuple[str, ...]] = ()  # keys of its section the workflow reads, not its training
    order: ClassVar[int] = 100             # position of its rows in the tables
    # what it adds to the report (diffdistill.tables.Parts): its name in titles, its rows'
    # colour in the figures, a family its cost is set beside at equal NFE
    label: ClassVar[str] = ""              # default: the name, upper-cased
    colour: ClassVar[str | None] = None    # None: one of the figures' spare colours
    compare_with: ClassVar[str | None] = None
    # its DVC stage (dvc.yaml): the other stages' folders its jobs read, and its own folders
    stage_inputs: ClassVar[tuple[str, ...]] = ("results/teacher", "results/featnet")
    shared_keys: ClassVar[tuple[str, ...]] = ("seed", "device", "amp", "dataset", "schedule")

    model: nn.Module
    spec: dict
    counters: dict

    def __init__(self, settings, device):
        """`settings`: its command's typed, frozen settings (`options.settings_class` of
        `command_options`), as the runner builds them from the command line."""
        raise NotImplementedError

    @classmethod
    def command_options(cls) -> list:
        """The options of `diffdistill train <name>`: the method's own (inputs, and the settings
        it gives its own meaning), every setting of its config section (but `plan_only`), and
        the runner's."""
        from ..config import schema_node
        from ..options import section_options, training_options

        own = [o.name for o in cls.options]
        return [*cls.options, *section_options(cls.section, skip=(*own, *cls.plan_only)),
                *training_options(cls.section, schema_node(cls.section), curves=cls.curves)]

    @property
    def train_model(self) -> nn.Module:
        """The module to call in the loss: the runner's DistributedDataParallel wrapper."""
        return self.__dict__.get("_train_model", self.model)

    @train_model.setter
    def train_model(self, module: nn.Module) -> None:
        self.__dict__["_train_model"] = module

    def train_step(self, iteration: int, gen, opt_step) -> dict:
        raise NotImplementedError

    def recipe(self) -> Recipe | None:
        """The sampling recipe written into the checkpoint (None: none, e.g. a teacher)."""
        return None

    def meta(self, res) -> dict:
        """Extra metadata of the result (costs, settings derived from the inputs)."""
        return {}

    def save(self, out, res) -> None:
        from ..precond import save_denoiser

        recipe = self.recipe()
        save_denoiser(out, res.model, self.spec, sampling=recipe.to_dict() if recipe else None)

    # the validation curve: methods with `curves` say what it samples and what it must match
    def curve_sampler(self) -> dict:
        raise UserError(f"method {self.name} has no validation curve")

    def curve_probes(self, seeds: list[int], device) -> list:
        """(sampler, target) pairs the validation curve measures on `seeds`: the result's
        sampler (`curve_sampler`) and the images it is trained to reproduce for those seeds
        (float [N, C, H, W] in [-1, 1]; None: no agreement)."""
        return [(self.curve_sampler(), None)]

    def curve_evaluator(self, device):
        """model -> the curve point's values on the curve seeds: the agreement with the
        targets (rmse) and, with --ref, the FID of the samples."""
        from ..curves import curve_evaluator, curve_seeds
        from ..metrics import feature_extractor
        from ..precond import image_shape

        settings = self.settings
        seeds = curve_seeds(settings.curve_seed_start, settings.curve_samples)
        extractor = feature_extractor(settings.features, settings.featnet, settings.inception_weights, device) if settings.ref else None
        return curve_evaluator(self.curve_probes(seeds, device), seeds, image_shape(self.spec), extractor, settings.ref,
                               device=device)

    def curve_nfe(self) -> int:
        """The NFE that names the curve: a model of one NFE, or the curve's sampler's (the
        first of a list)."""
        nfe = getattr(self.settings, "nfe", None) or self.settings.curve_nfe
        return nfe[0] if isinstance(nfe, list) else nfe

    def write_curve(self, res) -> None:
        from ..curves import curve_seeds, seeds_text, write_curve
        from ..provenance import write_meta
        from ..options import used_args

        settings = self.settings
        nfe = self.curve_nfe()
        write_curve(settings.curve_out, res.curve, row=str(settings.out), label=f"{self.name} NFE {nfe}", nfe=nfe,
                    seeds=seeds_text(curve_seeds(settings.curve_seed_start, settings.curve_samples)),
                    num_samples=settings.curve_samples, monitor=self.monitor, converged=res.converged)
        write_meta(settings.curve_out, used_args(settings), settings.seed)

    @classmethod
    def report(cls):
        """Its report module, `report.py` beside the module that defines the class (none
        beside a method written as one module), or None. It may hold `CLAIMS` (the papers'
        claims about it, `diffdistill.claims.Claim`), `write_tables(records, profile,
        out_dir)` (its own tables in results/tables) and `ABLATION_TABLES` ({table:
        function (records, out_dir)} it writes into results/ablations). Imported where a
        table or a claim is written, never at the top of a method's package: planning reads
        no numpy or pandas."""
        import importlib
        import importlib.util

        module = cls.__module__.rpartition(".")[0] + ".report"
        return importlib.import_module(module) if importlib.util.find_spec(module) else None

    @classmethod
    def claims(cls) -> list:
        """Its claims in the claims table (each with its `order` there; `methods.all_claims`
        gathers them): its report module's CLAIMS."""
        return list(getattr(cls.report(), "CLAIMS", []))

    @classmethod
    def stage_outputs(cls) -> tuple[str, ...]:
        """The folders its DVC stage owns: results/students/<name>."""
        return (f"results/students/{cls.name}",)

    # the workflow's side: its training rule's inputs and flags, result rows, config checks
    @classmethod
    def rule_inputs(cls, cfg: dict, wildcards) -> dict:
        """Input files of its training rule (the FID curve's too, for methods with curves)."""
        return {"teacher": TEACHER, **(curve_inputs(cfg) if cls.curves else {})}

    @classmethod
    def rule_values(cls, cfg: dict, wildcards, input, output) -> dict:
        """Flag values of its training rule that are not config keys (inputs, wildcards)."""
        return {"teacher": input.teacher}

    @staticmethod
    def rows(cfg: dict) -> list:
        return []

    @staticmethod
    def check_config(cfg: dict) -> None:
        pass


def teacher_row(cfg: dict, name: str, label: str, nfe: int, solver: str, afs: bool = False, grid: str = "edm",
                kind: str = "baseline", family: str = "teacher", **kw) -> Row:
    """A row of the teacher sampled with a training-free solver (the config's schedule)."""
    recipe = Recipe(solver=solver, nfe=nfe, afs=afs, grid=grid, schedule=Schedule.from_config(cfg))
    return Row(name=name, label=label, nfe=nfe, family=family, kind=kind, model=TEACHER, recipe=recipe, **kw)


def solver_row(cfg: dict, solver: str, nfe: int, afs: bool, **kw) -> Row:
    suffix = "-afs" if afs else ""
    label = f"teacher {SOLVER_NAMES.get(solver, solver)}{', AFS' if afs else ''}"
    return teacher_row(cfg, f"teacher-{solver}{suffix}/nfe{nfe}", label, nfe, solver, afs, **kw)
