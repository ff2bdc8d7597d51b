"""What a command (`client`) and the server share: the size and count fields of their
messages, reading them whole, and the package folder both compare."""
from __future__ import annotations

import os
import struct

INT = struct.Struct("!i")  # a request's length, the child's pid, a signal, an exit status


def recv_exact(conn, n: int) -> bytes:
    """`n` bytes from `conn`, or fewer where it closed first."""
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def package_dir() -> str:
    """diffdistill's folder: a command of another checkout is refused."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
