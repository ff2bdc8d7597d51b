"""The memory check: refuse, before allocating, work larger than the memory available."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError


def gib(nbytes: float) -> str:
    if nbytes < 2 ** 20:
        return f"{int(nbytes)} bytes"
    return f"{nbytes / 2 ** 30:.1f} GiB" if nbytes >= 2 ** 28 else f"{nbytes / 2 ** 20:.0f} MiB"


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable), or the machine's physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(nbytes: float, what: str) -> None:
    """Refuse, before allocating, work whose estimate exceeds the memory available."""
    avail = available_memory()
    if nbytes > avail:
        raise UserError(f"{what} needs about {gib(nbytes)} of memory and {gib(avail)} is available: "
                        "make it smaller")
