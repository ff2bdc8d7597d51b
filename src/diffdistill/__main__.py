"""The `diffdistill` command (and `python -m diffdistill`): process-wide settings that must
come before torch loads, then the CLI (diffdistill.cli).

OpenMP's wait policy. A job given several threads (`--threads N`, N > 1) that starts while
other processes keep cores busy gets OMP_WAIT_POLICY=PASSIVE: its threads sleep at
barriers instead of spinning while their partner waits for a core, which otherwise slows
it down many times over (benchmarks/contention.py). On a quiet machine OpenMP's default
(spinning) is kept: on small networks it is much faster. The policy changes no number; a
value already in the environment always wins. The load is measured once the run's fork
server has loaded (diffdistill.forkserver): its loading is not other work that lasts.
"""
import os
import sys
import time

from .forkserver.client import run_through_server, wait_until_ready

BUSY_CORES = 0.5  # other processes' load (in cores) from which a multi-threaded job sleep-waits


def requested_threads(argv) -> int:
    for i, arg in enumerate(argv):
        value = argv[i + 1] if arg == "--threads" and i + 1 < len(argv) else arg.partition("--threads=")[2]
        if value:
            try:
                return int(value)
            except ValueError:
                return 1
    return 1


def others_busy_cores(interval: float = 0.1) -> float:
    """Cores kept busy by other processes over `interval` seconds, from /proc/stat (this
    process sleeps meanwhile); 0 where that cannot be read."""
    def snapshot():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v) - v[3] - v[4], sum(v)  # all but idle and iowait; all

    try:
        busy0, total0 = snapshot()
        time.sleep(interval)
        busy1, total1 = snapshot()
    except (OSError, ValueError, IndexError):
        return 0.0
    return (os.cpu_count() or 1) * (busy1 - busy0) / max(total1 - total0, 1)


def main() -> int:
    threads = requested_threads(sys.argv[1:])
    code = run_through_server(sys.argv, threads)  # a local workflow run's server (diffdistill.forkserver)
    if code is not None:
        return code
    if "OMP_WAIT_POLICY" not in os.environ and threads > 1:
        wait_until_ready()  # the run's server loading is not load that lasts
        if others_busy_cores() >= BUSY_CORES:
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    from .cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
