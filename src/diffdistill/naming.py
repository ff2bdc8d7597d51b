"""Experiment names: settings <-> folder names, in one grammar.

A name is a '-'-joined list of tokens `<tag><value>`, one per setting, in the fixed order
of `FIELDS`: `tmin0.02-lossl2`, `fromteacher-solverdpmpp3m-K4-...`. Values are written
without exponent or trailing zeros (floats), as 0/1 (booleans), or as they are (ints,
words without '-'). `parse` inverts `name` exactly and refuses non-canonical spellings,
so one setting has one folder and identical settings share one job.

Two uses of the grammar:
- an SFD student variant (`results/students/sfd/<variant>/nfe<n>`): `default`, or the
  settings that differ from the default;
- a trajectory cache (`results/trajectories/<cache>/nfe<n>`): every setting that shapes it.
"""
from __future__ import annotations

import re

from .errors import UserError

FIELDS: dict[str, tuple[str, type]] = {
    # key: (tag, type), in canonical order
    "iters": ("it", int),
    "source": ("from", str),
    "solver": ("solver", str),
    "K": ("K", int),
    "final_step": ("final", str),
    "thresholding": ("thr", bool),
    "t_min": ("tmin", float),
    "t_max": ("tmax", float),
    "rho": ("rho", float),
    "t_last": ("tlast", float),
    "afs": ("afs", bool),
    "teacher_afs": ("tafs", bool),
    "loss": ("loss", str),
    "num": ("n", int),
    "seed_start": ("s", int),
    "num_students": ("N", int),
    "init": ("init", str),
    "split": ("split", str),
    "kd": ("kd", str),
    "model_channels": ("ch", int),
    "lr_schedule": ("lrs", str),
    "ema": ("ema", float),
    "train_seed": ("seed", int),
}
SCHEDULE_KEYS = ("t_min", "t_max", "rho")  # a whole schedule (diffdistill.schedules.Schedule)
CACHE_KEYS = ("source", "solver", "K", "final_step", "thresholding", *SCHEDULE_KEYS, "afs", "teacher_afs", "num",
              "seed_start")
OPTIONAL_CACHE_KEYS = ("t_last",)  # named only where set (> 0): a plain schedule's caches keep their names
_WORD = re.compile(r"[a-z0-9_+.]+")


def fmt(value) -> str:
    """A value as it appears in names."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.10f}".rstrip("0").rstrip(".")
    text = str(value)
    if not _WORD.fullmatch(text):
        raise ValueError(f"value {text!r} cannot appear in a folder name (use a-z, 0-9, _, +, .)")
    return text


def _value(text: str, kind: type):
    if kind is bool:
        if text not in ("0", "1"):
            raise ValueError(text)
        return text == "1"
    return kind(text)


def name(settings: dict) -> str:
    """'-'-joined tokens of `settings` (keys of FIELDS) in canonical order."""
    unknown = set(settings) - set(FIELDS)
    if unknown:
        raise ValueError(f"no naming field for {sorted(unknown)}")
    return "-".join(f"{FIELDS[k][0]}{fmt(settings[k])}" for k in FIELDS if k in settings)


def parse(text: str) -> dict:
    """Inverse of `name`; a token that fits no field, or a non-canonical name, is refused."""
    keys, out, start = list(FIELDS), {}, 0
    for token in text.split("-"):
        for i in range(start, len(keys)):
            tag, kind = FIELDS[keys[i]]
            if token.startswith(tag) and len(token) > len(tag):
                try:
                    value = _value(token[len(tag):], kind)
                except ValueError:
                    continue
                out[keys[i]], start = value, i + 1
                break
        else:
            raise UserError(f"folder name '{text}': token '{token}' names no setting")
    if name(out) != text:
        raise UserError(f"folder name '{text}' is not canonical; expected '{name(out)}'")
    return out


def variant(settings: dict, defaults: dict) -> str:
    """`default`, or the name of the settings that differ from `defaults`."""
    return name({k: v for k, v in settings.items() if v != defaults.get(k)}) or "default"


def parse_variant(text: str, defaults: dict) -> dict:
    """The full settings of a variant folder name (the inverse of `variant`)."""
    if text == "default":
        return dict(defaults)
    diff = parse(text)
    unknown = set(diff) - set(defaults)
    if unknown:
        raise UserError(f"variant '{text}' sets {', '.join(sorted(unknown))}, which this method does not vary")
    settings = {**defaults, **diff}
    if variant(settings, defaults) != text:
        raise UserError(f"variant '{text}' is not canonical; expected '{variant(settings, defaults)}'")
    return settings


def cache_name(settings: dict) -> str:
    missing = [k for k in CACHE_KEYS if k not in settings]
    if missing:
        raise ValueError(f"a trajectory cache name needs {missing}")
    return name({k: settings[k] for k in (*CACHE_KEYS, *OPTIONAL_CACHE_KEYS)
                 if k in CACHE_KEYS or settings.get(k)})


TRAJECTORIES = "results/trajectories"


def cache_path(settings: dict, nfe: int, root: str = TRAJECTORIES) -> str:
    """A trajectory cache: the teacher's under results/trajectories; one from a student
    lives with the method that reads it (`root`: its own DVC stage builds it)."""
    return f"{root}/{cache_name(settings)}/nfe{nfe}/traj.pt"


def cache_args(text: str) -> dict:
    """Values of `diffdistill trajectories` flags for a cache folder name (its whole
    schedule included: the folder name is the one channel of the settings)."""
    s = parse_cache(text)
    return {"teacher": source_model(s["source"]), "solver": s["solver"], "K": s["K"], "final_step": s["final_step"],
            "thresholding": s["thresholding"], **{k: s.get(k) for k in (*SCHEDULE_KEYS, *OPTIONAL_CACHE_KEYS)},
            "afs": s["afs"],
            "teacher_afs": s["teacher_afs"], "seeds": f"{s['seed_start']}-{s['seed_start'] + s['num'] - 1}"}


def parse_cache(text: str) -> dict:
    settings = parse(text)
    if tuple(k for k in settings if k not in OPTIONAL_CACHE_KEYS) != CACHE_KEYS:
        raise UserError(f"trajectory folder '{text}' must name exactly {', '.join(CACHE_KEYS)}")
    return settings


def student_dir(method: str, variant_name: str = "default", nfe: int | None = None) -> str:
    base = f"results/students/{method}/{variant_name}"
    return base if nfe is None else f"{base}/nfe{nfe}"


def student_model(method: str, variant_name: str = "default", nfe: int | None = None) -> str:
    return f"{student_dir(method, variant_name, nfe)}/model.pt"


TEACHER = "results/teacher/model.pt"
FEATNET = "results/featnet/model.pt"
REF_STATS = "results/featnet/ref_stats.npz"
# the noise seeds of fresh teacher trajectories (trajectories.cache: false), drawn at random per
# batch: above every configured range (evaluation, pool, curve seeds start far below 2^30)
FRESH_SEEDS = range(2 ** 30, 2 ** 31 - 1)
O2MKD_STUDY = "ablations_o2mkd_study"  # the table of the O2MKD study's rows (learning curves, training seeds)
CONFIG_RECIPE = "config"               # the recipe of a study router trained with the config's settings


def source_name(method: str | None = None, nfe: int | None = None, variant_name: str = "default") -> str:
    """Trajectory source: 'teacher', a default student '<method>nfe<n>', or a student
    variant of one setting '<method>+<variant>+nfe<n>'."""
    if method is None:
        return "teacher"
    if variant_name == "default":
        return f"{method}nfe{nfe}"
    if not re.fullmatch(r"[a-z0-9_.]+", variant_name):
        raise ValueError(f"variant '{variant_name}' cannot name a trajectory source (one setting only)")
    return f"{method}+{variant_name}+nfe{nfe}"


def source_model(source: str) -> str:
    if source == "teacher":
        return TEACHER
    m = re.fullmatch(r"([a-z0-9]+?)(?:\+([a-z0-9_.]+)\+)?nfe(\d+)", source)
    if m is None:
        raise UserError(f"trajectory source '{source}' is neither 'teacher', '<method>nfe<n>' nor "
                        "'<method>+<variant>+nfe<n>'")
    return student_model(m.group(1), m.group(2) or "default", int(m.group(3)))


def router_label(n: int) -> str:
    """The name of an O2MKD router of n students in tables and figures."""
    return "one-to-one KD (N=1)" if n == 1 else f"O2MKD N={n}"
