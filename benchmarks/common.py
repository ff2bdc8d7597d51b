"""Shared by the benchmarks: machine facts, the schedule of a config file, medians of
timed runs, and one JSON + one markdown report per benchmark. Benchmarks measure; they
never pass or fail."""
from __future__ import annotations

import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch


def machine() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "torch": torch.__version__,
            "avx512": " avx512f " in flags, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


ROOT = Path(__file__).resolve().parents[1]


def config_option(ap) -> None:
    """The `--config` option of a benchmark that samples or trains (`config_schedule`)."""
    ap.add_argument("--config", default="config/config.yaml",
                    help="config file whose schedule gives the timestamps (default: %(default)s)")


def validated_config(config_file: str = "config/config.yaml") -> dict:
    """A config file after schema validation (defaults filled in). A relative path not
    found here is read from the repository."""
    import yaml

    from diffdistill.config import check_yaml_text
    from diffdistill.methods import validate

    path = Path(config_file)
    text = (path if path.is_absolute() or path.exists() else ROOT / path).read_text()
    check_yaml_text(text, config_file)
    return validate(yaml.safe_load(text) or {})


def config_schedule(config_file: str = "config/config.yaml"):
    """The noise schedule (`diffdistill.schedules.Schedule`) of a config file after schema
    validation, so a benchmark samples and trains on the grid the pipeline uses."""
    from diffdistill.schedules import Schedule

    return Schedule.from_config(validated_config(config_file))


def sfd_schedule(config_file: str = "config/config.yaml"):
    """The SFD students' schedule in a config file: its `schedule` with `sfd.t_last`
    (their grid and their targets' timestamps)."""
    from diffdistill.methods.sfd.train import SFD

    return SFD.default_schedule(validated_config(config_file))


def schedule_tag(schedule) -> str:
    """A schedule's fields as a folder-name fragment (`t_min0.006-t_max80.0-rho7.0[-t_last..]`)."""
    return "-".join(f"{k}{v}" for k, v in schedule.to_dict().items())


def median_seconds(fn, warmup: int = 1, repeats: int = 5) -> float:
    """Median wall time of `fn()` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def markdown(rows: list[dict], floatfmt: str = "{:.4g}") -> str:
    if not rows:
        return "(no rows)\n"
    cols = list(rows[0])
    cell = lambda v: floatfmt.format(v) if isinstance(v, float) else str(v)  # noqa: E731
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                     + ["| " + " | ".join(cell(r.get(c, "")) for c in cols) + " |" for r in rows]) + "\n"


def write(out: str, name: str, title: str, data: dict, rows: list[dict], notes: str = "") -> None:
    """<out>/<name>.json (everything) and <out>/<name>.md (the table and the headline)."""
    from diffdistill.files import write_json, write_text

    data = {"benchmark": name, "title": title, "machine": machine(), **data, "rows": rows}
    write_json(Path(out) / f"{name}.json", data)
    head = data.get("headline", "")
    write_text(Path(out) / f"{name}.md", f"# {title}\n\n{head}\n\n{markdown(rows)}\n{notes}\n")
    print(f"{name}: {head}", file=sys.stderr)


def run_child(cmd: list[str]) -> None:
    """Run a command to its end (a non-zero exit raises CalledProcessError); when this
    process is interrupted or terminated (`run` turns SIGTERM into an exit), the child is
    terminated and reaped first, so no training outlives the benchmark that started it."""
    proc = subprocess.Popen(cmd)
    try:
        rc = proc.wait()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    if rc:
        raise subprocess.CalledProcessError(rc, cmd)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def run(main) -> None:
    """Run a benchmark's `main`; a missing or unreadable input (for example a model that a
    config without that method never built) is one line on stderr and exit status 2.
    SIGTERM exits through Python's unwinding, so the commands it started stop with it."""
    from diffdistill.errors import UserError, error_text

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        main()
    except (UserError, OSError) as e:
        print(f"benchmark {Path(sys.argv[0]).stem}: error: {error_text(e)}", file=sys.stderr)
        sys.exit(2)
