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

This module imports nothing beyond the standard library at its top: the client side runs
before every command.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import time

ENV = "DIFFDISTILL_FORKSERVER"
# variables the libraries read while they load (or that shape the interpreter): a command
# whose values differ from the server's runs in a process of its own
IMPORT_TIME_ENV = ("OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "GOTO_", "VECLIB_", "NUMEXPR_", "TORCH",
                   "PYTORCH_", "CUDA_", "NVIDIA_", "MPL", "PYTHON", "LD_", "MALLOC_", "CUBLAS_", "CUDNN_",
                   "LANG", "LC_", "TZ")
# what Snakemake sets in a job's environment to the job's threads: a workflow's server has
# them at 1, as its single-threaded jobs do
THREAD_ENV = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
DISTRIBUTED_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID")
_INT = struct.Struct("!i")
READY_TIMEOUT = 30.0  # seconds a multi-threaded command waits for the server to load before it measures the load
HANDSHAKE_TIMEOUT = 60.0  # seconds for the server to fork a child (or refuse) before the command runs here
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _import_env(env) -> dict:
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_ENV)}


def _recv_exact(conn, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _package_dir() -> str:
    return os.path.dirname(os.path.abspath(__file__))


# --- the client: every `diffdistill` command, before anything else loads -------------------

def _send(conn, argv, ignored) -> bytes:
    """Send the command (its argv, folder, environment, umask, ignored signals, import path
    and standard streams); the child's pid as the server answers (0: refused; b"": none)."""
    umask = os.umask(0)
    os.umask(umask)
    request = json.dumps({"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ), "umask": umask,
                          "ignored": ignored, "path": sys.path, "executable": sys.executable,
                          "package": _package_dir()}).encode()
    streams, opened = [], []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            streams.append(fd)
        except OSError:  # a closed standard stream: the child gets /dev/null there
            opened.append(os.open(os.devnull, os.O_RDWR))
            streams.append(opened[-1])
    try:
        socket.send_fds(conn, [_INT.pack(len(request))], streams)
        conn.sendall(request)
        return _recv_exact(conn, _INT.size)
    except OSError:
        return b""
    finally:
        for fd in opened:
            os.close(fd)


def run_through_server(argv, threads: int):
    """The exit status of `argv` run by the server named in DIFFDISTILL_FORKSERVER, or None
    when the command must run in this process (no server, a refusal, several threads)."""
    path = os.environ.get(ENV)
    if not path or threads > 1 or any(k in os.environ for k in DISTRIBUTED_ENV):
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(HANDSHAKE_TIMEOUT)  # a stopped server: the command runs here
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        return None
    ignored = [int(s) for s in FORWARDED if signal.getsignal(s) is signal.SIG_IGN]
    pid = _send(conn, argv, ignored)
    if len(pid) < _INT.size or _INT.unpack(pid)[0] <= 0:
        conn.close()
        return None  # refused, or the server stopped before the child started: run here
    conn.settimeout(None)
    received = []

    def forward(signum, frame):
        received.append(signum)
        try:
            conn.sendall(_INT.pack(signum))
        except OSError:
            pass
    for sig in set(FORWARDED) - set(ignored):  # ignored here: ignored by the child too
        signal.signal(sig, forward)
    try:
        status = _recv_exact(conn, _INT.size)
    except OSError:
        status = b""
    if len(status) == _INT.size:
        return _INT.unpack(status)[0]
    if received:  # the child ended by the signal it was passed: so does this process
        signal.signal(received[-1], signal.SIG_DFL)
        os.kill(os.getpid(), received[-1])
    print(f"diffdistill: the command's process (pid {_INT.unpack(pid)[0]}) ended without an exit status "
          "(killed?)", file=sys.stderr)
    return 1


def wait_until_ready(timeout: float = READY_TIMEOUT) -> None:
    """Wait (up to `timeout` s) for the server named in DIFFDISTILL_FORKSERVER to finish
    loading (its socket appears; its folder goes when it stops)."""
    path = os.environ.get(ENV)
    deadline = time.monotonic() + timeout
    while path and not os.path.exists(path) and os.path.isdir(os.path.dirname(path)) \
            and time.monotonic() < deadline:
        time.sleep(0.1)


# --- the server ------------------------------------------------------------------------------

PRELOAD = ("torch", "numpy", "scipy.linalg", "pandas", "yaml", "matplotlib", "diffdistill.cli")


def preload() -> dict:
    """Import what commands import, and every diffdistill module; their files' mtimes (a
    module edited later refuses the fork: its child would run the old code)."""
    import importlib
    import pkgutil

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    import diffdistill

    for info in pkgutil.walk_packages(diffdistill.__path__, "diffdistill."):
        if info.name.rpartition(".")[2] in ("__main__", "forkserver"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception:  # a module of an optional extra (clean-fid, ...): imported where used
            pass
    return _module_times()


def _module_times() -> dict:
    """mtimes of the loaded diffdistill modules, their folders (a module added) and the
    package's data files (the config schema)."""
    paths = {module.__file__ for name, module in list(sys.modules.items())
             if name.startswith("diffdistill") and getattr(module, "__file__", None)}
    paths |= {os.path.dirname(p) for p in paths}
    schemas = os.path.join(_package_dir(), "schemas")
    paths |= {os.path.join(schemas, f) for f in (os.listdir(schemas) if os.path.isdir(schemas) else [])}
    return {p: _mtime(p) for p in paths}


def serve(path: str, parent: int) -> None:
    """Preload, then fork a child per connection on `path` until the process `parent` (the
    Snakemake run) ends, the socket is removed, or SIGTERM."""
    began = time.time()
    times = preload()
    server_env = _import_env(os.environ)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".new")
    listener.listen(128)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')}: server {os.getpid()} of process {parent}, ready in "
          f"{time.time() - began:.1f} s", file=sys.stderr, flush=True)
    os.rename(path + ".new", path)  # appears listening, or not at all
    listener.settimeout(1.0)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while os.getppid() == parent and os.path.exists(path):
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            if os.fork() == 0:
                listener.close()
                _child(conn, times, server_env)  # never returns
            conn.close()
    finally:  # its socket, and the folder start() made for it once empty
        for remove, name in ((os.unlink, path), (os.rmdir, os.path.dirname(path))):
            try:
                remove(name)
            except OSError:
                pass


def _refusal(request, times, server_env) -> str | None:
    if request["executable"] != sys.executable or request["package"] != _package_dir():
        return "another interpreter or package"
    env = _import_env(request["env"])
    if env != server_env:
        return "other import-time variables: " + ", ".join(sorted(k for k in env.keys() | server_env.keys()
                                                                  if env.get(k) != server_env.get(k)))
    edited = [p for p in times if _mtime(p) != times[p]]
    if edited:
        return f"{os.path.basename(edited[0])} edited since the server started"
    return None


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _child(conn, times, server_env) -> None:
    try:  # until the command runs, any failure is a refusal: the command runs in its own process
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        head, fds, _, _ = socket.recv_fds(conn, _INT.size, 3)
        head += _recv_exact(conn, _INT.size - len(head))
        request = json.loads(_recv_exact(conn, _INT.unpack(head)[0]))
        refusal = _refusal(request, times, server_env) or ("not 3 streams" if len(fds) != 3 else None)
        command = " ".join(["diffdistill", *request["argv"][1:]])
        print(f"refused ({refusal}): {command}" if refusal else f"pid {os.getpid()}: {command}",
              file=sys.stderr, flush=True)  # the server's log
        if not refusal:
            _become(request, fds)
    except BaseException:
        import traceback
        traceback.print_exc()  # the server's log
        refusal = "failed"
    if refusal:
        try:
            conn.sendall(_INT.pack(0))
        finally:
            os._exit(0)
    code = 1
    try:
        conn.sendall(_INT.pack(os.getpid()))
        _watch(conn)
        code = _run(request["argv"])
        conn.sendall(_INT.pack(code))
    finally:
        os._exit(code)


def _become(request, fds) -> None:
    """This process as the command's: its folder, environment, umask, ignored signals, argv,
    import path and (last) streams."""
    import io
    import tempfile

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    tempfile.tempdir = None  # TMPDIR, as the command's environment says
    os.umask(request["umask"])
    for sig in request["ignored"]:
        signal.signal(sig, signal.SIG_IGN)
    sys.argv = request["argv"]
    sys.path[:] = request["path"]  # where the command's later imports look, as in its own process
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    unbuffered = bool(request["env"].get("PYTHONUNBUFFERED"))  # python -u: no buffer under the text layer
    for name, fd in (("stdout", 1), ("stderr", 2)):
        old, raw = getattr(sys, name), io.FileIO(fd, "w", closefd=False)
        stream = io.TextIOWrapper(raw if unbuffered else io.BufferedWriter(raw), encoding=old.encoding,
                                  errors=old.errors, line_buffering=name == "stderr" or os.isatty(fd),
                                  write_through=unbuffered)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)),
                                                 encoding=sys.stdin.encoding, errors=sys.stdin.errors)


def _watch(conn) -> None:
    """A thread that raises in this process each signal the command received, and stops it
    when the command is gone (the connection closed)."""
    import threading

    def loop():
        while True:
            data = _recv_exact(conn, _INT.size)
            if len(data) < _INT.size:  # the command is gone (even if it ignored SIGTERM): so is this
                os.kill(os.getpid(), signal.SIGKILL)
                return
            os.kill(os.getpid(), _INT.unpack(data)[0])

    threading.Thread(target=loop, daemon=True).start()


def _run(argv) -> int:
    """The command's exit status, as `python -m diffdistill ARGV` would end."""
    import atexit

    from .cli import main

    try:
        code = main(argv[1:])
    except SystemExit as e:
        code = e.code
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return code


# --- the workflow's side: start and stop -----------------------------------------------------

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


if __name__ == "__main__":
    if not getattr(sys.flags, "safe_path", False):
        del sys.path[0]  # `-m` put the folder it started in first: nothing loads from there
    serve(sys.argv[1], int(sys.argv[2]))
