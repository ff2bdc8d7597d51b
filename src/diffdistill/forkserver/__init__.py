"""Local jobs without torch's start-up: a server that has imported torch and diffdistill
once forks a child for each `diffdistill` command.

A short job of the workflow (sampling one row, scoring it) spends most of its time in
`import torch` (about 3 s on a laptop CPU, more than the job's own work). For a local
Snakemake run, the workflow starts one server (`onstart`, unless the config's
`forkserver` is false) and puts its socket in DIFFDISTILL_FORKSERVER. Each `diffdistill`
command then sends its arguments, working folder, environment, umask, import path and
standard streams to the server, which forks a child that runs the command exactly as a new process would:
the same code, the same arguments, the same files. The command waits for the child's exit
status and passes on the signals it receives (Ctrl-C, SIGTERM); a child whose command has
gone stops.

A command runs in a process of its own instead (no server, no difference in what it
computes) when the socket is missing or refuses it, which the child does when anything
fixed at import time differs from the server's: the interpreter, the package's folder or
any of its modules' files (edited since the server started), or an environment variable
that the libraries read as they load (OMP_*, MKL_*, PYTORCH_*, ...). Commands on several
threads or under torchrun also run on their own: OpenMP's wait policy (diffdistill's
__main__) and the process group are set before torch loads.

This module is the workflow's side (start and stop a server); `client` is every
`diffdistill` command's (before anything else loads), `server` the server's (preload,
fork, and each child becoming its command; `python -m diffdistill.forkserver` runs it),
`protocol` what the two share.

No module of this package imports beyond the standard library at its top: the client
side (and this module, which loads first) runs before every command.
"""
from __future__ import annotations

import os
import sys

ENV = "DIFFDISTILL_FORKSERVER"
# what Snakemake sets in a job's environment to the job's threads: a workflow's server has
# them at 1, as its single-threaded jobs do
THREAD_ENV = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def worth_starting(jobs) -> bool:
    """Whether a server pays for its start (about one command's): two or more of Snakemake's
    `jobs` to run on one thread."""
    return sum(job.threads == 1 and job.rule.name != "all" for job in jobs) >= 2


def start(env: dict | None = None, log: str | None = None) -> str:
    """Start a server for this process's jobs: its socket's path (the jobs find it in
    DIFFDISTILL_FORKSERVER, which the caller sets). The server ends with this process. `env`: the
    server's environment (default: this one, with the thread variables Snakemake gives a job
    of one thread); commands whose import-time variables differ from it run on their own.
    `log` (appended to): a line per command, forked or refused and why."""
    import subprocess
    import tempfile

    folder = tempfile.mkdtemp(prefix="diffdistill-fork-")
    path = os.path.join(folder, "socket")
    env = {**os.environ, **dict.fromkeys(THREAD_ENV, "1")} if env is None else env
    if log:
        os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
    with open(log or os.devnull, "a") as err:
        subprocess.Popen([sys.executable, "-m", "diffdistill.forkserver", path, str(os.getpid())], env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    return path


def stop(path: str) -> None:
    """End the server of `path` (it sees its socket gone within a second) and remove the
    folder start() made for it."""
    os.environ.pop(ENV, None)
    for remove, name in ((os.unlink, path), (os.unlink, path + ".new"), (os.rmdir, os.path.dirname(path))):
        try:
            remove(name)
        except OSError:
            pass
