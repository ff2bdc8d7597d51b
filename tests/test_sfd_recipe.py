"""benchmarks/sfd_recipe: every variant's training command is one that `diffdistill train
sfd` accepts, and carries the setting the variant changes."""
import argparse
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))
from benchmarks import sfd_recipe  # noqa: E402
from diffdistill.cli import build_parser  # noqa: E402
from diffdistill.schedules import Schedule  # noqa: E402

BASE = sfd_recipe.base_recipe(sfd_recipe.validated_config())  # the recipe every variant changes
SCHEDULE = Schedule(t_min=0.02, t_max=80.0, rho=5.0, t_last=0.5)  # not the CLI's defaults: from the config
ARGS = argparse.Namespace(threads=1, curve_seed_start=2000000, sets=5, n=300, schedule=SCHEDULE)


@pytest.mark.parametrize("name", list(sfd_recipe.VARIANTS))
def test_each_variant_trains_with_flags_the_cli_accepts(name, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sfd_recipe, "diffdistill", lambda *argv, threads: calls.append([str(a) for a in argv]))
    v = {**BASE, **sfd_recipe.VARIANTS[name]}
    sfd_recipe.train(tmp_path, name, 3, v, ARGS)
    train = calls[-1]
    assert train[:2] == ["train", "sfd"], calls
    parsed = build_parser().parse_args(train)  # an unknown flag or a bad value exits here
    # the config's schedule, not the CLI's
    assert (parsed.t_min, parsed.rho, parsed.t_last) == (SCHEDULE.t_min, SCHEDULE.rho, SCHEDULE.t_last)
    for key, value in sfd_recipe.VARIANTS[name].items():
        attr = {"num": "pool", "cache": "trajectories"}.get(key, key)
        got = getattr(parsed, attr, None)
        if key == "cache":
            assert (got is not None) == value, (name, got)
        elif key == "curve_every":
            assert (parsed.curve_out is None) == (value == 0), (name, parsed.curve_out)
        else:
            assert got == value, (name, key, got, value)
    if v["cache"]:  # the pool's trajectory cache is built first, for the pool's seeds
        assert calls[0][0] == "trajectories" and f"100000-{100000 + v['num'] - 1}" in calls[0]
        cache = build_parser().parse_args(calls[0])
        assert (cache.t_min, cache.rho, cache.t_last) == (SCHEDULE.t_min, SCHEDULE.rho, SCHEDULE.t_last)



def test_a_terminated_benchmark_stops_the_command_it_started(tmp_path):
    """SIGTERM to a benchmark (pkill, a scheduler's cancel) ends the training it started:
    the child is terminated and reaped, not left running beside other work."""
    import os
    import signal
    import subprocess
    import time

    script = ("import sys; sys.path.insert(0, sys.argv[1]); from benchmarks.common import run, run_child; "
              "run(lambda: run_child(['sleep', '60']))")
    bench = subprocess.Popen([sys.executable, "-c", script, str(ROOT)])
    for _ in range(100):
        kids = subprocess.run(["pgrep", "-P", str(bench.pid)], capture_output=True, text=True).stdout.split()
        if kids:
            break
        time.sleep(0.1)
    assert kids, "the benchmark never started its child"
    bench.send_signal(signal.SIGTERM)
    assert bench.wait(timeout=30) == 128 + signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(int(kids[0]), 0)
