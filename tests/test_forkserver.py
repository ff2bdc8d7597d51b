"""diffdistill.forkserver: a command forked from the server computes what it computes in a
process of its own, ends the same way, receives the signals its command receives, and a
command the server must not fork (other import-time variables) runs on its own."""
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from conftest import VENV_BIN, save_tiny_teacher
from diffdistill import forkserver
from diffdistill.forkserver import client

LONG_TRAINING = ["train", "teacher", "--iters", "100000", "--ckpt-every", "100000", "--batch-size", "8",
                 "--net-kwargs", '{"model_channels": 16, "num_blocks": 1}', "--threads", "1"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, _no_scontrol):
    """(socket, log, environment of its commands): a server of this file's own, with a log."""
    from conftest import _subprocess_env

    env = _subprocess_env(_no_scontrol)
    log = tmp_path_factory.mktemp("server") / "forkserver.log"
    path = forkserver.start(env, log=str(log))
    assert _wait_for(lambda: os.path.exists(path), timeout=120), log.read_text()
    yield path, log, {**env, forkserver.ENV: path}
    forkserver.stop(path)


def _wait_for(predicate, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _forked_pid(log, command: str) -> int:
    assert _wait_for(lambda: any(line.endswith(command) and line.startswith("pid ")
                                 for line in log.read_text().splitlines()))
    line = next(line for line in log.read_text().splitlines() if line.endswith(command))
    return int(line.split(":")[0].split()[1])


def test_a_forked_command_computes_and_ends_as_one_on_its_own(tmp_path, server):
    _, log, env = server
    save_tiny_teacher(tmp_path / "teacher.pt")
    own_env = {k: v for k, v in env.items() if k != forkserver.ENV}
    results = {}
    for name, e in (("forked", env), ("own", own_env)):
        out = tmp_path / f"{name}.npz"
        p = subprocess.Popen([str(VENV_BIN / "diffdistill"), "sample", "--model", str(tmp_path / "teacher.pt"),
                              "--solver", "euler", "--nfe", "3", "--afs", "true", "--grid", "edm", "--seeds", "0-15",
                              "--batch-size", "8", "--out", str(out), "--threads", "1", "--quiet"],
                             env=e, stderr=subprocess.PIPE, text=True)
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        meta = json.loads(out.with_name(out.name + ".meta.json").read_text())
        results[name] = np.load(out)["images"], meta["pid"] == p.pid
    assert np.array_equal(results["forked"][0], results["own"][0])
    assert results["forked"][1] is False and results["own"][1] is True  # the forked one ran in the server's child
    assert "diffdistill sample --model" in log.read_text()

    bad = ["sample", "--model", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.npz")]
    ends = [subprocess.run([str(VENV_BIN / "diffdistill"), *bad], env=e, capture_output=True, text=True)
            for e in (env, own_env)]
    assert any(line.startswith("pid ") and line.endswith(f": diffdistill {' '.join(bad)}")  # forked, not refused
               for line in log.read_text().splitlines())
    assert ends[0].returncode == ends[1].returncode == 2
    assert ends[0].stderr == ends[1].stderr and ends[0].stderr.count("\n") == 1
    assert not (tmp_path / "x.npz").exists()


def test_other_import_time_variables_run_the_command_on_its_own(tmp_path, server):
    _, log, env = server
    p = subprocess.Popen([str(VENV_BIN / "diffdistill"), "--version"], env={**env, "OMP_NUM_THREADS": "3"},
                         stdout=subprocess.PIPE, text=True)
    assert p.communicate(timeout=60)[0].startswith("diffdistill ") and p.returncode == 0
    assert _wait_for(lambda: "refused (other import-time variables: OMP_NUM_THREADS): diffdistill --version"
                     in log.read_text())


def test_ctrl_c_reaches_the_forked_command_and_a_killed_command_stops_its_fork(tmp_path, server):
    _, log, env = server
    procs = {}
    try:
        for how in ("int", "kill"):
            argv = [*LONG_TRAINING, "--out", str(tmp_path / how / "model.pt")]
            # Ctrl-C's default action restored: a shell's background job (CI's) starts with it ignored
            procs[how] = subprocess.Popen([str(VENV_BIN / "diffdistill"), *argv], env=env, stderr=subprocess.PIPE,
                                          text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
            procs[how].child = _forked_pid(log, " ".join(["diffdistill", *argv]))
        time.sleep(2)  # training
        procs["int"].send_signal(signal.SIGINT)
        _, err = procs["int"].communicate(timeout=60)
        assert procs["int"].returncode == 130 and err.rstrip().endswith("diffdistill train teacher: interrupted"), err
        procs["kill"].send_signal(signal.SIGKILL)
        procs["kill"].wait(timeout=60)
        assert _wait_for(lambda: all(_gone(p.child) for p in procs.values()), timeout=30)
        assert not any((tmp_path / how / "model.pt").exists() for how in procs)
    finally:
        for p in procs.values():  # nothing left training when an assertion fails
            p.kill()
            if getattr(p, "child", None) and not _gone(p.child):
                os.kill(p.child, signal.SIGKILL)


def test_the_server_ends_with_the_process_that_started_it(tmp_path, cli_env):
    log = tmp_path / "log"
    starter = ("import os, sys, time; from diffdistill import forkserver; "
               "p = forkserver.start(log=sys.argv[1]); "
               "[time.sleep(0.05) for _ in range(2400) if not os.path.exists(p)]; print(p)")
    path = subprocess.run([str(VENV_BIN / "python"), "-c", starter, str(log)], env=cli_env, capture_output=True,
                          text=True, timeout=180).stdout.strip()
    server = int(log.read_text().split("server ")[1].split()[0])
    assert _wait_for(lambda: _gone(server) and not os.path.exists(path), timeout=30)
    forkserver.stop(path)  # its folder
    assert not os.path.exists(os.path.dirname(path))


def test_a_server_starts_for_two_single_threaded_jobs_or_more():
    from types import SimpleNamespace as NS

    def job(rule, threads=1):
        return NS(threads=threads, rule=NS(name=rule))

    assert forkserver.worth_starting([job("sample"), job("fid")])
    assert not forkserver.worth_starting([job("sample"), job("all")])  # one command: the server costs as much
    assert not forkserver.worth_starting([job("sample"), job("train_teacher", threads=2), job("profile", 2)])


def test_a_multithreaded_command_measures_the_load_once_the_server_has_loaded(tmp_path, monkeypatch):
    folder = tmp_path / "server"
    folder.mkdir()
    monkeypatch.setenv(forkserver.ENV, str(folder / "socket"))
    t = time.monotonic()
    client.wait_until_ready(timeout=0.5)
    assert time.monotonic() - t >= 0.5  # loading: it waits
    (folder / "socket").touch()
    t = time.monotonic()
    client.wait_until_ready(timeout=5)
    assert time.monotonic() - t < 1  # ready
    (folder / "socket").unlink()
    folder.rmdir()
    t = time.monotonic()
    client.wait_until_ready(timeout=5)
    assert time.monotonic() - t < 1  # stopped
