"""Safe unpickling: nothing in a file runs code when it is read.

Two readers share this module. `torch_load` reads diffdistill's own checkpoints
(torch.save zips of tensors and plain containers; `weights_only`), after checking that
no tensor declares more bytes than the file holds. `safe_load_pickle` reads EDM's network
pickles (classes with code in them) into inert records: `RestrictedUnpickler` resolves
only the names it knows (tensors, storages, numpy arrays, EDM's module classes as
records) and refuses every other global.
"""
from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

from .errors import UserError
from .memory import gib


def torch_load(path) -> Any:
    """Load a plain checkpoint (tensors and containers only: no code runs)."""
    import torch

    if not Path(path).is_file():
        raise UserError(f"file not found: {path}")
    check_declared_sizes(path)
    try:
        with warnings.catch_warnings():  # torch's own warning would come before our one line
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupted, or a pickle carrying code
        msg = str(e)
        if "weights_only" in msg or "Unsupported global" in msg:
            raise UserError(f"refusing {path}: it holds Python objects other than tensors and plain "
                            "containers (loading them could run code)") from None
        raise UserError(f"cannot load {path}: {type(e).__name__}: {msg.splitlines()[0] if msg else ''}") from None


_ITEMSIZE = {"DoubleStorage": 8, "LongStorage": 8, "ComplexDoubleStorage": 16, "FloatStorage": 4, "IntStorage": 4,
             "ComplexFloatStorage": 8, "HalfStorage": 2, "BFloat16Storage": 2, "ShortStorage": 2}


class _Stub:
    """Stands in for every object of a pickle being measured: nothing is resolved or run."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


class _SizeScanner(pickle.Unpickler):
    """Reads a torch pickle's storage declarations (persistent ids) without building anything."""

    def __init__(self, f):
        super().__init__(f)
        self.storages: dict[str, int] = {}

    def find_class(self, module, name):
        return type(name, (_Stub,), {})

    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            kind = getattr(pid[1], "__name__", "")
            try:
                self.storages[str(pid[2])] = int(pid[4]) * _ITEMSIZE.get(kind, 1)
            except (TypeError, ValueError):
                pass
        return _Stub()


def declared_storages(f) -> dict[str, int]:
    """{storage key: declared bytes} of one pickle in the stream `f` (torch's format)."""
    scan = _SizeScanner(f)
    try:
        scan.load()
    except Exception:  # noqa: BLE001 - a malformed pickle is the loader's to report
        pass
    return scan.storages


def check_declared_sizes(path) -> None:
    """Refuse a torch checkpoint (zip) whose tensors declare more bytes than the file
    holds, before torch allocates them."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            return
        prefix = pkl[: -len("data.pkl")]
        with z.open(pkl) as f:
            declared = declared_storages(f)
        for key, nbytes in declared.items():
            try:
                have = z.getinfo(f"{prefix}data/{key}").file_size
            except KeyError:
                raise UserError(f"cannot load {path}: tensor storage {key} is missing from the file") from None
            if nbytes > have:
                raise UserError(f"cannot load {path}: a tensor declares {gib(nbytes)} but the file holds "
                                f"{gib(have)} for it (corrupted or crafted)")




class PersistentRecord:
    """What EDM's `_reconstruct_persistent_obj(meta)` describes, without running anything."""

    class_name = None  # class defaults, in case a crafted pickle bypasses __init__
    state: dict = {}

    def __init__(self, meta):
        if not isinstance(meta, dict):
            raise UserError("malformed EDM persistence record: its meta is not a dict")
        self.type = meta.get("type")
        self.version = meta.get("version")
        self.class_name = meta.get("class_name")
        src = meta.get("module_src")
        self.module_src_chars = len(src) if isinstance(src, str) else None  # never executed
        state = meta.get("state")
        if not isinstance(self.class_name, str) or not isinstance(state, dict):
            raise UserError("malformed EDM persistence record: needs a class_name and a state dict")
        if self.type != "class":
            raise UserError(f"unsupported EDM persistence record type {self.type!r} "
                            f"(class {self.class_name!r})")
        self.state = state

    def __setstate__(self, state):
        raise UserError("malformed EDM persistence record: unexpected extra state")

    @property
    def init_kwargs(self):
        return self.state.get("_init_kwargs")

    @property
    def init_args(self):
        return self.state.get("_init_args")

    def __repr__(self):
        return f"PersistentRecord({self.class_name})"


class ModuleRecord:
    """State of a plain torch container module (ModuleDict, ModuleList, Sequential)."""

    class_name = "Module"
    state: dict = {}

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise UserError(f"malformed {self.class_name} record in the pickle")
        self.state = state

    def __repr__(self):
        return f"ModuleRecord({self.class_name})"


class _EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict (a dict subclass): plain dict semantics."""


_CONTAINERS = ("ModuleDict", "ModuleList", "Sequential")
_CONTAINER_RECORDS = {name: type(f"{name}Record", (ModuleRecord,), {"class_name": name})
                      for name in _CONTAINERS}

# --------------------------------------------------------------------------- unpickler


def _safe_load_storage(data):
    """Replacement for torch.storage._load_from_bytes, which calls torch.load unsafely."""
    import torch

    if not isinstance(data, (bytes, bytearray)):
        raise UserError("malformed tensor storage in the pickle")
    stream = io.BytesIO(bytes(data))  # torch's legacy format: magic, protocol, sys info, then the object
    declared = [declared_storages(stream) for _ in range(4)][-1]
    if sum(declared.values()) > len(data):
        raise UserError(f"a tensor storage in the pickle declares {gib(sum(declared.values()))} but holds "
                        f"{gib(len(data))} (corrupted or crafted)")
    try:
        return torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"cannot decode a tensor storage: {type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}") from None


def _safe_numpy_dtype(*args):
    import numpy as np

    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise UserError("refusing a numpy object dtype in the pickle (it could hold code)")
    return dtype


def _safe_numpy_scalar(dtype, *args):
    import numpy as np

    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UserError("refusing a numpy scalar of object dtype in the pickle")
    return _numpy_multiarray().scalar(dtype, *args)


def _numpy_multiarray():
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return multiarray


def _safe_numpy_reconstruct(subtype, shape, dtype):
    import numpy as np

    if subtype is not np.ndarray:
        raise UserError("refusing a numpy array subclass in the pickle")
    return _numpy_multiarray()._reconstruct(subtype, shape, dtype)


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves tensors, containers and EDM records only; refuses every other global."""

    def find_class(self, module, name):
        import torch

        key = (module, name)
        if key == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
            return PersistentRecord
        if module == "torch.nn.modules.container" and name in _CONTAINER_RECORDS:
            return _CONTAINER_RECORDS[name]
        if key in (("dnnlib.util", "EasyDict"), ("dnnlib", "EasyDict")):
            return _EasyDict
        if key == ("torch._utils", "_rebuild_tensor_v2"):
            return torch._utils._rebuild_tensor_v2
        if key == ("torch._utils", "_rebuild_parameter"):
            return torch._utils._rebuild_parameter
        if key == ("torch.storage", "_load_from_bytes"):
            return _safe_load_storage
        if key == ("collections", "OrderedDict"):
            import collections
            return collections.OrderedDict
        if key in (("builtins", "set"), ("builtins", "frozenset")):
            return set if name == "set" else frozenset
        if module == "torch":
            obj = getattr(torch, name, None)
            # Storage classes are deliberately absent: plain pickles carry storages as
            # torch.storage._load_from_bytes(bytes), and a bare class would allow huge allocations.
            if isinstance(obj, torch.dtype) or obj is torch.Size or obj is torch.device:
                return obj
        if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            if name == "scalar":
                return _safe_numpy_scalar
            if name == "_reconstruct":
                return _safe_numpy_reconstruct
        if key == ("numpy", "dtype"):
            return _safe_numpy_dtype
        if key == ("numpy", "ndarray"):
            import numpy as np
            return np.ndarray
        raise UserError(f"refusing to load global '{module}.{name}' from the pickle: only "
                        "tensors, plain containers and EDM network records are allowed")


def safe_load_pickle(path):
    """Unpickle `path` with RestrictedUnpickler; every failure becomes a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        if head.startswith(b"PK"):
            raise UserError(f"{path} is not a pickle (it looks like a torch.save zip archive; "
                            "diffdistill checkpoints are read with load_denoiser)")
        try:
            with warnings.catch_warnings():  # EDM-era pickles hold (deprecated) TypedStorages
                warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
                return RestrictedUnpickler(f).load()
        except UserError:
            raise
        except Exception as e:
            msg = str(e).splitlines()[0] if str(e) else ""
            raise UserError(f"{path} is not a readable pickle ({type(e).__name__}: {msg})") from None
