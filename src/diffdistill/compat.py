"""Let clean-fid import without torchvision.

clean-fid (0.1.35) imports torchvision at module level, but only to *name* things:

* ``cleanfid/utils.py``: ``import torchvision``; ``torchvision.transforms.ToTensor()`` is
  called only when its folder/zip ``ResizeDataset`` is built (run time, a path we do
  not use: our images come as arrays).
* ``cleanfid/inception_pytorch.py``: ``import torchvision``; class statements subclass
  ``torchvision.models.inception.InceptionA/C/E`` (import time); ``inception_v3`` is
  called only for the ``legacy_pytorch`` mode (run time); and
  ``from torchvision.models.utils import load_state_dict_from_url`` sits in a
  ``try/except ImportError`` that falls back to ``torch.utils.model_zoo``.

torchvision is deliberately not a dependency of this project (it pins a torch build of
its own), so importing this module installs, only when ``import torchvision`` fails, a
stand-in ``torchvision`` in ``sys.modules`` with exactly those names. The FID paths we
use (``legacy_tensorflow`` / ``clean`` TorchScript Inception, custom extractors,
``frechet_distance``) never touch it. Anything of it that *is* used at run time raises
:class:`TorchvisionUnavailable` saying so, instead of failing somewhere obscure.

Design choices:

* The stand-in is a plain module, not a package (no ``__path__``), so imports of any
  other submodule (``from torchvision.ops import roi_align``, as torch._inductor probes)
  fail with the ordinary ``ModuleNotFoundError`` and "is torchvision there?" probes that
  catch ``ImportError`` keep answering "no".
* Unknown attributes raise ``AttributeError`` (so ``hasattr`` and
  ``from torchvision import x`` behave normally), with a message naming the stand-in.
* ``__spec__`` is set (a loader-less spec) because ``importlib.util.find_spec`` raises
  ``ValueError`` for a ``sys.modules`` entry whose ``__spec__`` is None. The price: a
  ``find_spec("torchvision")`` probe now says "present"; such code then meets the errors
  above. The marker attribute ``__diffdistill_stub__`` identifies the stand-in.
* A real torchvision that is installed but fails with something other than
  ``ImportError`` is left to fail loudly: masking a broken install would be worse.
"""
from __future__ import annotations

import importlib.machinery
import sys
import types

STUB_MARKER = "__diffdistill_stub__"


class TorchvisionUnavailable(RuntimeError):
    """A torchvision feature was used, but only diffdistill's stand-in is installed."""


def _unavailable(what: str) -> TorchvisionUnavailable:
    return TorchvisionUnavailable(
        f"{what} needs torchvision, which is not installed (diffdistill put a stand-in in "
        "its place so clean-fid can import); use FID mode 'legacy_tensorflow' or 'clean', "
        "or a custom feature extractor")


def _raising_function(qualname: str):
    def fn(*args, **kwargs):
        raise _unavailable(qualname)
    fn.__name__ = qualname.rsplit(".", 1)[-1]
    fn.__qualname__ = fn.__name__
    fn.__module__ = qualname.rsplit(".", 1)[0]
    return fn


def _raising_class(qualname: str):
    """A class that may be subclassed (clean-fid does) but never instantiated."""
    module, name = qualname.rsplit(".", 1)

    def __init__(self, *args, **kwargs):
        raise _unavailable(qualname)

    return type(name, (), {"__init__": __init__, "__module__": module})


def _module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name, f"diffdistill stand-in for {name} (torchvision is not installed)")
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None, origin="diffdistill.compat")
    setattr(mod, STUB_MARKER, True)
    for k, v in attrs.items():
        setattr(mod, k, v)

    def __getattr__(attr):
        if attr.startswith("__"):
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        raise AttributeError(f"{name}.{attr} is not available: torchvision is not installed "
                             "(diffdistill.compat stand-in)")
    mod.__getattr__ = __getattr__
    return mod


def _build_stub() -> dict[str, types.ModuleType]:
    inception = _module(
        "torchvision.models.inception",
        **{c: _raising_class(f"torchvision.models.inception.{c}")
           for c in ("Inception3", "InceptionA", "InceptionB", "InceptionC", "InceptionD",
                     "InceptionE", "InceptionAux", "BasicConv2d")},
        inception_v3=_raising_function("torchvision.models.inception.inception_v3"))
    models = _module("torchvision.models", inception=inception,
                     inception_v3=inception.inception_v3)
    transforms = _module("torchvision.transforms",
                         ToTensor=_raising_class("torchvision.transforms.ToTensor"))
    # a version string that clean-fid's `tuple(map(int, ...))` rejects -> its (0,) fallback
    root = _module("torchvision", models=models, transforms=transforms,
                   __version__="0.0.0+diffdistill.stub")
    return {m.__name__: m for m in (root, models, inception, transforms)}


def is_stub(module) -> bool:
    """True if `module` is diffdistill's torchvision stand-in."""
    return bool(getattr(module, STUB_MARKER, False))


def install_torchvision_stub() -> bool:
    """Put the stand-in in sys.modules unless a real torchvision imports; True if installed."""
    if is_stub(sys.modules.get("torchvision")):
        return True
    try:
        import torchvision  # noqa: F401
        return False
    except ImportError:
        pass
    for name, mod in _build_stub().items():
        sys.modules.setdefault(name, mod)
    return True


TORCHVISION_STUBBED = install_torchvision_stub()
