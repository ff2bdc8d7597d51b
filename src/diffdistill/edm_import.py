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
import math

from .atomic import written
from .errors import UserError
from .provenance import sha256, write_meta
from .safe_pickle import ModuleRecord, PersistentRecord, safe_load_pickle

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

    from .memory import check_memory
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
