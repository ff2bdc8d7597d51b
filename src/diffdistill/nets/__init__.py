"""Network registry: checkpoints name a backbone by key, never by import path, and a
wrapped model by its `kind` (an O2MKD router, an SFD-v step-conditioned student), so
any checkpoint loads after importing `diffdistill.precond` alone."""
from __future__ import annotations

from ..io import UserError

_REGISTRY: dict = {}


def register(name: str):
    def deco(cls):
        _REGISTRY[name] = cls
        return cls
    return deco


def _populate() -> None:
    if _REGISTRY:
        return
    from .unet import UNet
    _REGISTRY["unet"] = UNet
    try:  # EDM-compatible DDPM++ backbone (CIFAR-10 setting)
        from .songunet import SongUNet
        _REGISTRY["songunet"] = SongUNet
    except ImportError:
        pass


def build_network(name: str, kwargs: dict):
    _populate()
    if name not in _REGISTRY:
        raise UserError(f"unknown network '{name}' (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name](**kwargs)


def check_kwargs(name: str, kwargs: dict, key: str = "net_kwargs") -> None:
    """Refuse, in one line, constructor arguments the network `name` does not take."""
    import difflib
    import inspect

    _populate()
    if name not in _REGISTRY:
        raise UserError(f"unknown network '{name}' (known: {', '.join(sorted(_REGISTRY))})")
    allowed = [p for p in inspect.signature(_REGISTRY[name].__init__).parameters if p != "self"]
    for k in kwargs:
        if k not in allowed:
            guess = difflib.get_close_matches(k, allowed, n=1)
            hint = f"; did you mean '{guess[0]}'?" if guess else f" (it takes: {', '.join(allowed)})"
            raise UserError(f"config key '{key}.{k}': network '{name}' has no argument '{k}'{hint}")


KINDS = ("router", "stepcond")  # wrapped model kinds: the module of each is nets/<kind>.py


def build_kind(spec: dict, build):
    """The module of a spec with a `kind`; `build` makes the plain denoisers inside it."""
    if spec["kind"] not in KINDS:
        raise UserError(f"unknown model kind '{spec['kind']}' (known: {', '.join(KINDS)})")
    if spec["kind"] == "router":
        from .router import build_router
        return build_router(spec, build)
    from .stepcond import build_step_conditioned
    return build_step_conditioned(spec, build)


def available() -> list[str]:
    _populate()
    return sorted(_REGISTRY)
