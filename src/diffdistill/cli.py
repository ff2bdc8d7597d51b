"""diffdistill: distil diffusion models (SFD, SFD-v, Progressive Distillation, O2MKD) and evaluate them reproducibly.

Each Snakemake rule runs one subcommand: it parses its options (types, allowed values and defaults mirror the config
schema), checks that its outputs can be written, calls one library function and writes its outputs atomically, each
with a `.meta.json` sidecar. Bad input: one line on stderr, exit status 2 (`--debug`: the traceback)."""
from __future__ import annotations

import argparse
import difflib
import sys

from . import __version__
from .atomic import check_paths, outputs
from .errors import UserError, error_text
from .options import (DATA_OPTIONS, FEATURE_OPTIONS, RUN_OPTIONS, SCHEDULE_OPTIONS, Opt, add_options, bool_arg,
                      json_arg, json_list, nfe_int, positive_float, positive_int, seeds_arg, used_args)
from .schedules import GRIDS
from .solvers import FINAL_STEP_RULES, SOLVERS

HELP = argparse.ArgumentDefaultsHelpFormatter
SCHEDULE, RUN, FEATURES, DATA = (list(g) for g in (SCHEDULE_OPTIONS, RUN_OPTIONS, FEATURE_OPTIONS, DATA_OPTIONS))


class Parser(argparse.ArgumentParser):
    """One `error:` line (a misspelt option named, with a guess) and a pointer to --help."""

    def parse_known_args(self, args=None, namespace=None):
        self._argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message):
        known = [s for a in self._actions for s in a.option_strings]
        for word in getattr(self, "_argv", []):
            if word.startswith("--") and word.split("=")[0] not in known:
                guess = difflib.get_close_matches(word.split("=")[0], known, n=1)
                message = f"unrecognized option {word}" + (f"; did you mean {guess[0]}?" if guess else "")
                break
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _data(args):
    from .data import load_dataset
    return load_dataset(args.dataset, args.dataset_path)


def _extractor(args):
    from .metrics import feature_extractor
    return feature_extractor(args.features, args.featnet, args.inception_weights, args.device)


def _kw(args, keys: str) -> dict:  # a library call's arguments: the parsed options of the same names
    return {k: getattr(args, k) for k in keys.split()}


def cmd_train(args):
    from .methods import get
    from .runner import run
    return run(get(args.method), args)


def cmd_train_featnet(args):
    from .metrics import train_feature_net_to_file
    train_feature_net_to_file(*_data(args), args.out, progress=not args.quiet, args=used_args(args),
                              **_kw(args, "iters batch_size lr seed device"))


def cmd_ref_stats(args):
    from .metrics import reference_stats_to_file
    reference_stats_to_file(_data(args)[0], _extractor(args), args.out, args.floor_out, args=used_args(args),
                            **_kw(args, "batch_size floor_splits seed reference_stats ref_features device"))


def cmd_trajectories(args):
    from .schedules import Schedule, timesteps
    from .trajectories import build_cache
    ts = timesteps("edm", args.nfe, args.afs, "euler", Schedule.from_args(args))
    build_cache(args.teacher, args.out, student_t=ts, progress=not args.quiet,
                **_kw(args, "K solver final_step thresholding rho seeds batch_size teacher_afs device amp"),
                args=used_args(args))


def cmd_sample(args):
    from .sampling import sample_checkpoint
    sample_checkpoint(args.model, args.out, args.seeds, args.batch_size, progress=not args.quiet, args=used_args(args),
                      given=args, **_kw(args, "png png_count device amp"))


def cmd_fid(args):
    from .metrics import evaluate_samples
    evaluate_samples(args.samples, args.ref, _extractor(args), args.out, args=used_args(args), **_kw(
        args, "num_samples batch_size row seed_sets kid_subsets kid_subset_size prdc_k prdc_samples noise_floor "
        "seeds teacher_samples teacher_features features_out bias_from device"))


def cmd_profile(args):
    from .profiling import profile_rows
    profile_rows(args.rows, args.out, args=used_args(args), **_kw(args, "num_images batch_size repeats threads device"))


def cmd_fetch(args):
    from .fetch import fetch_to_file
    fetch_to_file(args.url, args.out, args.what, args.sha256, args.sha256_key, args=used_args(args))


def cmd_import_edm(args):
    from .edm_import import import_edm_to_file
    import_edm_to_file(args.pkl, args.out, key=args.key, args=used_args(args))


def cmd_render(args):
    """Tables, ablation tables, claims (the methods', and their plan) and figures: from result files only."""
    from . import budget, claims_table, figures, methods
    from .tables import ablation, main
    parts = methods.report_parts()
    if args.command == "table":
        main.write_tables(args.fid, args.out_dir, args.floor, args.profile or [], parts, tuple(args.tables))
    elif args.command == "ablation-table":
        ablation.write_ablation_dir(args.fid, args.out_dir, parts)
    elif args.command == "claims":
        claims_table.write_claims(args.fid, args.out_dir, methods.all_claims(),
                                  **_kw(args, "benchmark o2mkd_students budget_minutes plan"))
    elif args.command == "claims-plan":
        budget.write_plan(used_args(args), methods.all_claims())
    else:
        figures.write_figures(args.fid, args.out_dir, floor=args.floor, profile=args.profile, colours=parts.colours)


OUT = Opt("out", required=True, help="output file")
IO = [Opt("batch_size", key="eval.batch_size"), OUT]
FID = Opt("fid", required=True, help="FID JSON files", kwargs={"nargs": "+"})
OUT_DIR = Opt("out_dir", required=True, help="output folder (replaced as a whole if new, empty or ours alone)")
FLOOR = Opt("floor", help="floor JSON (real vs real)")
CLAIMS = [Opt("benchmark", help="SFD-vs-PD benchmark JSON"), Opt("o2mkd_students", key="o2mkd.claim_students"),
          Opt("budget_minutes", key="claims.budget_minutes")]
RECIPE = [Opt("solver", help="solver (default: the recipe's)", kwargs={"choices": tuple(SOLVERS)}),
          Opt("nfe", help="network evaluations per sample (default: the recipe's)", kwargs={"type": nfe_int}),
          Opt("afs", help="analytical first step (default: the recipe's)",
              kwargs={"type": bool_arg, "metavar": "{true,false}"}),
          Opt("grid", help="timestamps: edm (t_max..t_min), edm_zero (EDM's Heun sampler, ending at 0), pd "
              "(Progressive Distillation's grid) (default: the recipe's)", kwargs={"choices": GRIDS}),
          Opt("final_step", help="lower-order final steps (default: the recipe's, else force)",
              kwargs={"choices": FINAL_STEP_RULES})] + [
    Opt(o.name, help=f"{o.name} of the schedule (default: the recipe's, else the config schema's)",
        kwargs={"type": positive_float}) for o in SCHEDULE]
COMMANDS = [
    ("train-featnet", cmd_train_featnet, "train the digits classifier whose features feed FID",
     DATA + [Opt("iters", key="featnet.iters"), Opt("batch_size", key="featnet.batch_size"),
             Opt("lr", key="featnet.lr"), Opt("seed", key="seed"), OUT] + RUN),
    ("ref-stats", cmd_ref_stats, "reference feature statistics of the dataset and the real-vs-real floor",
     DATA + FEATURES + IO + [Opt("floor_out", required=True, help="floor JSON"),
                             Opt("floor_splits", key="eval.floor_splits"), Opt("seed", key="seed"),
                             Opt("reference_stats", key="eval.reference_stats"),
                             Opt("ref_features", key="eval.ref_features")] + RUN),
    ("trajectories", cmd_trajectories, "teacher trajectories at the student timestamps (a cache)",
     [Opt("teacher", required=True, help="teacher checkpoint"),
      Opt("nfe", required=True, help="student NFE", kwargs={"type": nfe_int}), Opt("afs", key="sfd.afs"),
      Opt("solver", key="trajectories.solver"), Opt("K", key="trajectories.K"),
      Opt("final_step", key="trajectories.final_step"), Opt("thresholding", key="trajectories.thresholding"),
      Opt("teacher_afs", help="the teacher's first step is analytical (a stage-1 SFD student teaches)",
          kwargs={"type": bool_arg, "default": False, "metavar": "{true,false}"}),
      Opt("seeds", required=True, help="noise seeds, e.g. 100000-102999", kwargs={"type": seeds_arg}),
      Opt("batch_size", key="trajectories.batch_size"), Opt("amp", key="amp"), OUT] + SCHEDULE + RUN),
    ("sample", cmd_sample, "sample a checkpoint by its recipe (options given here override it)",
     [Opt("model", required=True, help="checkpoint")] + RECIPE
     + [Opt("seeds", required=True, help="noise seeds, e.g. 0-1999", kwargs={"type": seeds_arg}),
        Opt("amp", key="amp"),
        Opt("png", help="PNG grid of the first images"), Opt("png_count", key="eval.grid_count")] + IO + RUN),
    ("fid", cmd_fid, "FID of samples (or a trajectory cache's end points) against reference statistics",
     [Opt("samples", required=True, help="samples .npz, or a trajectory cache .pt"),
      Opt("ref", required=True, help="reference statistics .npz"), Opt("num_samples", key="eval.num_samples"),
      Opt("row", help="the row's fields (JSON), copied into the result",
          kwargs={"type": json_arg, "default": {"label": "samples", "nfe": None}}),
      Opt("seed_sets", help="seed sets of num_samples images each", kwargs={"type": positive_int, "default": 1}),
      Opt("seeds", help="the seeds the samples must hold, in order (what the row sampled); default 0 .. "
          "seed_sets * num_samples - 1", kwargs={"type": seeds_arg}),
      Opt("noise_floor", help="also compare the seed sets with each other", kwargs={"action": "store_true"}),
      Opt("teacher_samples", help="the reference sampler's samples (same seeds): agreement with the teacher"),
      Opt("teacher_features", help="their features (the reference row's --features-out)"),
      Opt("features_out", help="write this row's features (npz)"), Opt("bias_from", help="the row's metrics on its "
                                                                           "first seed sets: their bias fit, not a new one")]
     + [Opt(k, key=f"eval.{k}") for k in ("kid_subsets", "kid_subset_size", "prdc_k", "prdc_samples")]
     + FEATURES + IO + RUN),
    ("profile", cmd_profile, "parameters, MACs per image and sampling throughput of result rows",
     [Opt("rows", required=True, help='JSON list of rows [{"name", "model", "recipe"}] (recipe: the settings '
          "over the checkpoint's); the first is the reference", kwargs={"type": json_list}),
      Opt("num_images", key="eval.profile.num_images"), Opt("batch_size", key="eval.profile.batch_size"),
      Opt("repeats", key="eval.profile.repeats"), OUT] + RUN),
    ("fetch", cmd_fetch, "download one input file (teacher, dataset, FID files) unless present",
     [Opt("url", required=True, help="where to download from"), OUT, Opt("what", help="for messages", kwargs={
      "default": "file"}), Opt("sha256", help="pinned hash, checked first"), Opt("sha256_key", help="its config key")]),
    ("import-edm", cmd_import_edm, "convert an EDM snapshot pickle without running code from it",
     [Opt("key", help="entry of the snapshot dict", kwargs={"default": "ema"})]),
    ("table", cmd_render, "render the result tables", [FID, FLOOR, OUT_DIR, Opt("profile", help="profile JSON files",
     kwargs={"nargs": "*"}), Opt("tables", help="row groups", kwargs={"nargs": "+", "default": ["main"], "choices": ["main", "extended"]})]),
    ("ablation-table", cmd_render, "render the ablation tables", [FID, OUT_DIR]),
    ("claims", cmd_render, "the papers' claims against the results (claims.{csv,md,tex})",
     [FID, OUT_DIR, *CLAIMS, Opt("plan", help="the claims plan's JSON (diffdistill claims-plan)")]),
    ("claims-plan", cmd_render, "plan the claims' extra seed sets and training seeds by power", [FID, OUT, *CLAIMS,
     Opt("max_train_seeds", key="claims.max_train_seeds"), Opt("slots", required=True, kwargs={"type": positive_int},
                                                               help="jobs that run side by side")]),
    ("figures", cmd_render, "render the figures (PNG and PDF)", [FID, FLOOR, OUT_DIR, Opt("profile", help="profile JSON")]),
]


def _train_parsers(sub) -> None:
    from .methods import ordered
    p = sub.add_parser("train", help="train a teacher or distil a student (one method each)",
                       description="Train with one method; `diffdistill train METHOD --help` lists its options.")
    methods = p.add_subparsers(dest="method", required=True, metavar="METHOD", parser_class=Parser)
    for m in ordered():
        q = methods.add_parser(m.name, help=m.summary, description=m.summary, formatter_class=HELP)
        add_options(q, m.command_options())
        q.set_defaults(func=cmd_train)


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="diffdistill", description=__doc__.split("\n\n")[0])
    ap.add_argument("--version", action="version", version=f"diffdistill {__version__}")
    ap.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    _train_parsers(sub)
    for name, func, help, opts in COMMANDS:
        p = sub.add_parser(name, help=help, description=help, formatter_class=HELP)
        add_options(p, opts)
        p.set_defaults(func=func)
        if name == "import-edm":
            p.add_argument("pkl", help="EDM snapshot pickle, e.g. edm-cifar10-32x32-uncond-vp.pkl")
            p.add_argument("out", help="output checkpoint (.pt)")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    name = f"diffdistill {args.command}" + (f" {args.method}" if getattr(args, "method", None) else "")
    try:
        if hasattr(args, "threads") or hasattr(args, "device"):  # torch is imported only where a command runs it
            from .runtime import apply_run_options
            apply_run_options(args)
        with outputs(check_paths(vars(args))):  # every output lands with its metadata, or none does
            return args.func(args) or 0
    except (UserError, OSError) as e:  # bad input, or a file the command could not read or write
        if args.debug:
            raise
        print(f"{name}: error: {error_text(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
