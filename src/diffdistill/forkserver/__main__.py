"""The server's process: `python -m diffdistill.forkserver SOCKET PID`, as `start` runs it."""
import sys

from .server import serve

if __name__ == "__main__":
    if not getattr(sys.flags, "safe_path", False):
        del sys.path[0]  # `-m` put the folder it started in first: nothing loads from there
    serve(sys.argv[1], int(sys.argv[2]))
