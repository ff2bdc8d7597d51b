"""The server's side: preload torch and diffdistill, then fork a child per command; the
child refuses the command (it then runs in its own process) when anything fixed at import
time differs from the server's, or becomes the command's process and runs it."""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time

from .protocol import INT, package_dir, recv_exact

# variables the libraries read while they load (or that shape the interpreter): a command
# whose values differ from the server's runs in a process of its own
IMPORT_TIME_ENV = ("OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "GOTO_", "VECLIB_", "NUMEXPR_", "TORCH",
                   "PYTORCH_", "CUDA_", "NVIDIA_", "MPL", "PYTHON", "LD_", "MALLOC_", "CUBLAS_", "CUDNN_",
                   "LANG", "LC_", "TZ")
PRELOAD = ("torch", "numpy", "scipy.linalg", "pandas", "yaml", "matplotlib", "diffdistill.cli")


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
        if info.name.rpartition(".")[2] == "__main__" or _own(info.name):
            continue
        try:
            importlib.import_module(info.name)
        except Exception:  # a module of an optional extra (clean-fid, ...): imported where used
            pass
    return _module_times()


def _own(name: str) -> bool:
    """Whether module `name` is this package's (diffdistill.forkserver): the server runs
    them, a command's child does not, so they are neither preloaded nor watched."""
    return name == __package__ or name.startswith(__package__ + ".")


def _module_times() -> dict:
    """mtimes of the loaded diffdistill modules, their folders (a module added) and the
    package's data files (the config schema)."""
    paths = {module.__file__ for name, module in list(sys.modules.items())
             if name.startswith("diffdistill") and not _own(name) and getattr(module, "__file__", None)}
    paths |= {os.path.dirname(p) for p in paths}
    schemas = os.path.join(package_dir(), "schemas")
    paths |= {os.path.join(schemas, f) for f in (os.listdir(schemas) if os.path.isdir(schemas) else [])}
    return {p: _mtime(p) for p in paths}


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _import_env(env) -> dict:
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_ENV)}


# --- a child: one command ------------------------------------------------------------------

def _child(conn, times, server_env) -> None:
    try:  # until the command runs, any failure is a refusal: the command runs in its own process
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        head, fds, _, _ = socket.recv_fds(conn, INT.size, 3)
        head += recv_exact(conn, INT.size - len(head))
        request = json.loads(recv_exact(conn, INT.unpack(head)[0]))
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
            conn.sendall(INT.pack(0))
        finally:
            os._exit(0)
    code = 1
    try:
        conn.sendall(INT.pack(os.getpid()))
        _watch(conn)
        code = _run(request["argv"])
        conn.sendall(INT.pack(code))
    finally:
        os._exit(code)


def _refusal(request, times, server_env) -> str | None:
    if request["executable"] != sys.executable or request["package"] != package_dir():
        return "another interpreter or package"
    env = _import_env(request["env"])
    if env != server_env:
        return "other import-time variables: " + ", ".join(sorted(k for k in env.keys() | server_env.keys()
                                                                  if env.get(k) != server_env.get(k)))
    edited = [p for p in times if _mtime(p) != times[p]]
    if edited:
        return f"{os.path.basename(edited[0])} edited since the server started"
    return None


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
            data = recv_exact(conn, INT.size)
            if len(data) < INT.size:  # the command is gone (even if it ignored SIGTERM): so is this
                os.kill(os.getpid(), signal.SIGKILL)
                return
            os.kill(os.getpid(), INT.unpack(data)[0])

    threading.Thread(target=loop, daemon=True).start()


def _run(argv) -> int:
    """The command's exit status, as `python -m diffdistill ARGV` would end."""
    import atexit

    from ..cli import main

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
