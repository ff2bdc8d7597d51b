"""Every `diffdistill` command's side, before anything else loads: have the server named
in DIFFDISTILL_FORKSERVER run the command, or say that it runs in this process."""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time

from . import ENV
from .protocol import INT, package_dir, recv_exact

DISTRIBUTED_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID")
READY_TIMEOUT = 30.0  # seconds a multi-threaded command waits for the server to load before it measures the load
HANDSHAKE_TIMEOUT = 60.0  # seconds for the server to fork a child (or refuse) before the command runs here
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


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
    if len(pid) < INT.size or INT.unpack(pid)[0] <= 0:
        conn.close()
        return None  # refused, or the server stopped before the child started: run here
    conn.settimeout(None)
    received = []

    def forward(signum, frame):
        received.append(signum)
        try:
            conn.sendall(INT.pack(signum))
        except OSError:
            pass
    for sig in set(FORWARDED) - set(ignored):  # ignored here: ignored by the child too
        signal.signal(sig, forward)
    try:
        status = recv_exact(conn, INT.size)
    except OSError:
        status = b""
    if len(status) == INT.size:
        return INT.unpack(status)[0]
    if received:  # the child ended by the signal it was passed: so does this process
        signal.signal(received[-1], signal.SIG_DFL)
        os.kill(os.getpid(), received[-1])
    print(f"diffdistill: the command's process (pid {INT.unpack(pid)[0]}) ended without an exit status "
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


def _send(conn, argv, ignored) -> bytes:
    """Send the command (its argv, folder, environment, umask, ignored signals, import path
    and standard streams); the child's pid as the server answers (0: refused; b"": none)."""
    umask = os.umask(0)
    os.umask(umask)
    request = json.dumps({"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ), "umask": umask,
                          "ignored": ignored, "path": sys.path, "executable": sys.executable,
                          "package": package_dir()}).encode()
    streams, opened = [], []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            streams.append(fd)
        except OSError:  # a closed standard stream: the child gets /dev/null there
            opened.append(os.open(os.devnull, os.O_RDWR))
            streams.append(opened[-1])
    try:
        socket.send_fds(conn, [INT.pack(len(request))], streams)
        conn.sendall(request)
        return recv_exact(conn, INT.size)
    except OSError:
        return b""
    finally:
        for fd in opened:
            os.close(fd)
