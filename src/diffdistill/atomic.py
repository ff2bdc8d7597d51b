"""Atomic output files and folders, and the checks of an output path.

Every result file is written to a temporary name in its own folder and renamed into
place, so a crash never leaves a half-written output. The temporary name is
`.<name>.<random>.tmp`; the next write of the same output removes any such leftover of a
killed process. Files and folders get the permissions the umask gives (not mkstemp's
0600), so shared results folders and a shared DVC cache work.

Each output gets a sibling `<name>.meta.json` with the arguments actually used, seed,
versions, git revision and wall time; tables read numbers from these, never from logs.
Inside `outputs(...)` (the CLI wraps every command in it) a command's declared outputs
and their sidecars are renamed into place together when the command succeeds, and none
of them when it fails: an output never lands without its metadata.

Nothing here destroys what a command did not write: an output must be a regular file
or not exist yet (a device, FIFO or folder in its place is refused; a symlink is
replaced, never the file it points to), and an output folder is replaced only when it
holds nothing but what an earlier diffdistill command wrote there (its manifest says
what that was).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sweep_stale(path: Path) -> None:
    """Remove temporaries of earlier, killed writes of `path` (`.<name>.*.tmp`)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def check_output(path: str | os.PathLike) -> Path:
    """An output is a regular file, a symlink (replaced, not followed) or nothing yet."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    except NotADirectoryError:
        raise UserError(f"cannot write {path}: a file is in the way of its folder") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"output {path} is an existing folder; give a file name")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        kind = ("a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a file")
        raise UserError(f"output {path} is {kind}, not a regular file: refusing to replace it")
    return path


def check_writable(path: str | os.PathLike) -> Path:
    """Fail now, in one line, if `path` cannot be written later (before the work starts):
    it must be a regular file or not exist (`check_output`), its folder is made and a
    probe file is created in it and removed."""
    path = check_output(path)
    _mkdirs(path.parent)
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(probe)
    return path


def _mkdirs(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"cannot create folder {path}: a file is in the way") from None
    except OSError as e:
        raise UserError(f"cannot create folder {path}: {e.strerror or e}") from None


class _Outputs:
    """The outputs of one command whose writes land together (see `outputs`)."""

    def __init__(self, paths):
        self.keys = {path_entry(p) for p in paths}
        self.pending: dict[Path, Path] = {}  # entry -> temporary holding its new content

    def holds(self, path: Path) -> bool:
        return path_entry(path) in self.keys


_OUTPUTS: list[_Outputs] = []


def path_entry(path) -> Path:
    """A path as a folder entry: its folder resolved, its own name kept (a symlink is
    the link, not its target)."""
    path = Path(path)
    return Path(os.path.realpath(path.parent)) / path.name


@contextlib.contextmanager
def outputs(paths) -> Iterator[None]:
    """Writes of `paths` (and their `.meta.json` sidecars) inside this block go to
    temporaries, and are renamed into place together when the block ends without error;
    on an error every temporary is removed and no output is touched."""
    paths = [Path(p) for p in paths if p]
    tx = _Outputs(paths + [meta_path(p) for p in paths])
    _OUTPUTS.append(tx)
    try:
        yield
        landed = []
        try:
            for path, tmp in tx.pending.items():  # the outputs first, their sidecars after them
                os.replace(tmp, path)
                landed.append(path)
        except BaseException:
            for path in landed:  # all or nothing: what this command just renamed goes again
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
    finally:
        _OUTPUTS.remove(tx)
        for tmp in tx.pending.values():  # what did not land (renamed temporaries are gone already)
            with contextlib.suppress(OSError):
                tmp.unlink()


def written(path) -> Path:
    """Where the content just written to `path` is now: its temporary while `outputs`
    holds it back, else `path` itself."""
    for tx in _OUTPUTS:
        if path_entry(path) in tx.pending:
            return tx.pending[path_entry(path)]
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` on success (at the
    end of the enclosing `outputs` block when that holds `path`)."""
    path = check_output(path)
    _mkdirs(path.parent)
    _sweep_stale(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    tmp = Path(tmp)
    tx = next((t for t in reversed(_OUTPUTS) if t.holds(path)), None)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        if tx is None:
            os.replace(tmp, path)
        else:
            old = tx.pending.pop(path_entry(path), None)  # written twice: the last write counts
            if old is not None:
                old.unlink(missing_ok=True)
            tx.pending[path_entry(path)] = tmp
            tmp = None
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


MANIFEST = ".diffdistill-outputs"  # in every output folder: the files the command wrote there


def _files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir() or p.is_symlink()}


def check_out_dir(path: str | os.PathLike) -> Path:
    """An output folder may be replaced only when it is new, empty, or holds exactly
    what a diffdistill command wrote there (its manifest); never `.`, `/`, the home
    folder, or a folder that holds the working directory."""
    path = Path(path)
    where = Path(os.path.realpath(path))
    cwd = Path(os.path.realpath(os.getcwd()))
    home = Path(os.path.realpath(os.path.expanduser("~")))
    if where == cwd or where in cwd.parents or where == home or where == Path(where.anchor):
        raise UserError(f"output folder {path} is the working folder, the home folder, / or a folder above "
                        "the working folder: give a folder of its own (it is replaced as a whole)")
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise UserError(f"output folder {path} is an existing file or link, not a folder")
    if path.is_dir():
        have = _files_under(path)
        if have:
            mf = path / MANIFEST
            try:
                listed = set(json.loads(mf.read_text())["files"]) | {MANIFEST}
            except (OSError, ValueError, KeyError, TypeError):
                listed = set()
            foreign = sorted(have - listed)
            if not mf.is_file() or foreign:
                shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                raise UserError(f"output folder {path} holds files diffdistill did not write ({shown}): "
                                "refusing to replace it; give a new or empty folder")
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, command: str | None = None) -> Iterator[Path]:
    """Yield a temporary folder next to `path`; it replaces `path` as a whole on success
    (a crash leaves the previous folder, or none, never a half-written one). `path` must
    pass `check_out_dir`; the new folder's manifest lists the files written into it and
    the `command` that wrote them. A folder another command wrote is never replaced:
    `table` after `figures` into one folder would delete the figures."""
    path = check_out_dir(path)
    if command and (path / MANIFEST).is_file():
        try:
            before = json.loads((path / MANIFEST).read_text()).get("command")
        except (OSError, ValueError, AttributeError):
            before = None
        if before and before != command:
            raise UserError(f"output folder {path} holds what 'diffdistill {before}' wrote; '{command}' would replace "
                            "it as a whole: give each command its own --out-dir")
    _mkdirs(path.parent)
    _sweep_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        (tmp / MANIFEST).write_text(json.dumps({"files": sorted(_files_under(tmp)), "command": command},
                                               indent=1) + "\n")
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; files inside follow the umask
        if path.exists():
            check_out_dir(path)  # still only what a command wrote
            old = path.with_name(f".{path.name}.{os.getpid()}.old.tmp")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


OUTPUT_OPTIONS = ("out", "png", "floor_out", "curve_out", "features_out")  # the command-line options that name output files


def check_paths(args: dict, output_names=OUTPUT_OPTIONS) -> list[str]:
    """The output files of a command's `args` (the values of `output_names`), refused in
    one line before any work when one is not a regular file (a device, FIFO or folder),
    is also an input (any other string argument that names a path), or is named twice
    (metadata sidecars included); an output folder (`out_dir`) must pass `check_out_dir`
    and hold none of the inputs."""
    outs = [str(args[n]) for n in output_names if args.get(n)]
    out_dir = args.get("out_dir")
    inputs = [x for k, v in args.items() if k not in (*output_names, "out_dir")
              for x in (v if isinstance(v, (list, tuple)) else [v]) if isinstance(x, str) and x]
    seen: dict = {}
    for o in outs:
        check_output(o)
        for p in (o, meta_path(o)):
            if path_entry(p) in seen:
                raise UserError(f"output {p} is named twice ({seen[path_entry(p)]} and {o}): give each output "
                                "its own file")
            seen[path_entry(p)] = o
    inputs = [v for v in inputs if os.path.lexists(v)]
    for v in inputs:
        for key in {path_entry(v), Path(os.path.realpath(v))}:
            if key in seen:
                raise UserError(f"output {seen[key]} is also an input of this command: refusing to overwrite {v}")
    if out_dir:
        check_out_dir(out_dir)
        where = Path(os.path.realpath(out_dir))
        for v in inputs:
            if where in Path(os.path.realpath(v)).parents:
                raise UserError(f"input {v} lies inside the output folder {out_dir}, which is replaced as a whole")
    return outs


def meta_path(path) -> Path:
    """`<name>.meta.json` beside a file; `<folder>/meta.json` inside an existing folder."""
    path = Path(path)
    return path / "meta.json" if path.is_dir() else path.with_name(path.name + ".meta.json")
