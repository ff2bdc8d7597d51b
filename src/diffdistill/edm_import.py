"""Safe import of NVlabs/edm snapshot pickles into diffdistill's plain checkpoint format.

EDM writes snapshots with `pickle.dump({'ema': net, ...})`, where every network class is
wrapped by `torch_utils.persistence`: each object pickles as a call
`_reconstruct_persistent_obj(meta)` whose `meta` carries the *source code of the
defining module* (`module_src`), the class name and the object's `__dict__` (`state`).
Loading such a file with `pickle.load` executes that source, and a crafted file can run
anything through `__reduce__`.

This importer never does that. A restricted `pickle.Unpickler` resolves only a short list
of globals:

- tensors (`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`, torch dtypes); the
  storage bytes behind `torch.storage._load_from_bytes` are decoded by
  `torch.load(weights_only=True)` instead of EDM-era torch's unrestricted `torch.load`,
- plain containers (`collections.OrderedDict`, `builtins.set`), numpy scalars/arrays of
  non-object dtypes (EDM stores a few numpy floats among the init kwargs),
- EDM's persistence call and torch container modules, both turned into inert records
  (`module_src` is dropped unread).

Anything else is refused with a `UserError` naming the global. From the records we map
`VPPrecond`/`EDMPrecond` around `SongUNet` to our spec, collect parameters and persistent
buffers by their EDM names, load them with strict=True, save with `save_denoiser` and
check the result with `load_denoiser`.
"""
from __future__ import annotations

import inspect
import io
import math
import pickle
import warnings
from pathlib import Path

from .io import UserError, declared_storages, gib, sha256, write_meta, written

# --------------------------------------------------------------------------- inert records


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


# --------------------------------------------------------------------------- record -> spec

# Our precond name and the attributes (with EDM's defaults) it takes from EDM's object.
_PRECONDS = {
    "VPPrecond": ("vp", {"beta_d": 19.9, "beta_min": 0.1, "M": 1000, "epsilon_t": 1e-5}),
    "EDMPrecond": ("edm", {"sigma_data": 0.5, "sigma_min": 0.0, "sigma_max": math.inf}),
}
_BACKBONES = {"SongUNet": "songunet"}


def _plain(value):
    """numpy scalars -> Python numbers, tuples -> lists, dict subclasses -> dict."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _record_kwargs(record, what):
    kwargs = record.init_kwargs
    args = record.init_args
    if kwargs is None:
        raise UserError(f"the {what} '{record.class_name}' in the pickle carries no init_kwargs")
    if args:
        raise UserError(f"the {what} '{record.class_name}' was built with positional arguments; "
                        "only keyword construction is supported")
    return _plain(dict(kwargs))


def _flatten_state(record, prefix, out):
    """Collect parameters and persistent buffers by their module path, like state_dict()."""
    import torch

    if not isinstance(record, (PersistentRecord, ModuleRecord)):
        raise UserError(f"unexpected object {type(record).__name__} at '{prefix or '<root>'}' "
                        "where a network module was expected")
    state = record.state
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for group in ("_parameters", "_buffers"):
        for name, tensor in (state.get(group) or {}).items():
            if tensor is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise UserError(f"'{prefix}{name}' in the pickle is not a tensor")
            out[prefix + name] = tensor.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            _flatten_state(child, f"{prefix}{name}.", out)
    return out


def spec_from_record(record) -> dict:
    """Map an EDM precond record (around a SongUNet) to a diffdistill denoiser spec."""
    from .nets.songunet import SongUNet

    if not isinstance(record, PersistentRecord):
        raise UserError(f"expected an EDM network object, found {type(record).__name__}")
    if record.class_name not in _PRECONDS:
        raise UserError(f"unknown EDM class '{record.class_name}' "
                        f"(supported: {', '.join(_PRECONDS)} around {', '.join(_BACKBONES)})")
    precond, defaults = _PRECONDS[record.class_name]
    outer = record.init_kwargs or {}
    precond_kwargs = {}
    for name, default in defaults.items():  # attributes are set by EDM's constructor
        value = record.state.get(name, outer.get(name, default))
        precond_kwargs[name] = float(value) if name != "M" else int(value)

    inner = (record.state.get("_modules") or {}).get("model")
    if not isinstance(inner, PersistentRecord):
        raise UserError(f"EDM '{record.class_name}' in the pickle has no backbone record 'model'")
    if inner.class_name not in _BACKBONES:
        raise UserError(f"unknown EDM backbone class '{inner.class_name}' "
                        f"(supported: {', '.join(_BACKBONES)})")
    net_kwargs = _record_kwargs(inner, "backbone")
    allowed = set(inspect.signature(SongUNet.__init__).parameters) - {"self"}
    unknown = sorted(set(net_kwargs) - allowed)
    if unknown:
        raise UserError(f"EDM {inner.class_name} uses arguments this SongUNet lacks: "
                        f"{', '.join(unknown)}")
    return {"net": _BACKBONES[inner.class_name], "net_kwargs": net_kwargs,
            "precond": precond, "precond_kwargs": precond_kwargs}


# --------------------------------------------------------------------------- import


def check_fits(spec: dict, tensors: dict) -> None:
    """Before the network is built: its tensors (made on the meta device, no memory) must
    have the shapes the snapshot holds, and the real network must fit in memory; an
    edited kwarg (say model_channels 4096) would otherwise allocate tens of GB first."""
    import torch

    from .io import check_memory
    from .nets import build_network

    with torch.device("meta"):  # the backbone; the precond wrapper holds it as `model`
        shell = build_network(spec["net"], dict(spec["net_kwargs"]))
    expected = {f"model.{k}": v for k, v in shell.state_dict().items()}
    missing = [k for k in expected if k not in tensors]
    if missing:
        raise UserError(f"EDM weights do not match the network of their own kwargs: missing {missing[:5]}")
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise UserError(f"EDM weights do not fit the network built from their own kwargs: '{k}' is "
                            f"{tuple(tensors[k].shape)} in the snapshot, {tuple(v.shape)} by its kwargs")
    check_memory(2 * sum(v.numel() * 4 for v in expected.values()), "the network the snapshot's kwargs describe")


def import_edm_pickle(pkl_path, out_path, key: str = "ema") -> dict:
    """Convert EDM snapshot `pkl_path` (entry `key`) into a diffdistill checkpoint.

    Returns a summary {spec, source_sha256, num_tensors, num_params, use_fp16}.
    """
    from .precond import build_denoiser, load_denoiser, save_denoiser

    obj = safe_load_pickle(pkl_path)
    if not isinstance(obj, dict):
        raise UserError(f"{pkl_path} holds a {type(obj).__name__}, not an EDM snapshot dict")
    if key not in obj:
        keys = ", ".join(map(repr, obj)) or "none"
        raise UserError(f"{pkl_path} has no '{key}' entry (keys: {keys})")
    record = obj[key]
    spec = spec_from_record(record)
    tensors = _flatten_state(record, "", {})

    check_fits(spec, tensors)
    model = build_denoiser(spec)
    try:
        result = model.load_state_dict(tensors, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise UserError(f"EDM weights do not fit the network built from their own kwargs: "
                        f"{str(e).splitlines()[-1].strip()}") from None
    if result.missing_keys or result.unexpected_keys:
        raise UserError(f"EDM weights do not match the network: missing "
                        f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")

    sha = sha256(pkl_path)
    save_denoiser(out_path, model, spec,
                  imported_from={"format": "edm-pickle", "path": str(pkl_path), "key": key,
                                 "class_name": record.class_name, "sha256": sha})
    reloaded, _ = load_denoiser(written(out_path))  # the checkpoint must round-trip on its own
    del reloaded
    return {"spec": spec, "source_sha256": sha, "num_tensors": len(tensors),
            "num_params": sum(p.numel() for p in model.parameters()),
            "use_fp16": bool(record.state.get("use_fp16", False))}


EDM_LICENCE = ("NVIDIA's EDM weights are CC BY-NC-SA 4.0 (NVlabs/edm, LICENSE.txt): non-commercial, share-alike; "
               "students distilled from them are derived works under the same licence (diffdistill's code is "
               "Apache-2.0)")


def import_edm_to_file(pkl_path, out_path, key: str = "ema", args: dict | None = None) -> dict:
    """`import_edm_pickle`, plus the checkpoint's metadata sidecar."""
    summary = import_edm_pickle(pkl_path, out_path, key=key)
    write_meta(out_path, args or {}, None, command="import-edm", licence=EDM_LICENCE, **summary)
    spec = summary["spec"]
    print(f"imported {pkl_path} [{key}] -> {out_path}: {spec['precond']} / {spec['net']}, "
          f"{summary['num_params']} parameters")
    print(f"licence: {EDM_LICENCE}")
    return summary
