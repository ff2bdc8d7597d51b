"""Network registry: checkpoints name a backbone by key, never by import path, and a
wrapped model by its `kind` (an O2MKD router, an SFD-v step-conditioned student), so
any checkpoint loads after importing `diffdistill.precond` alone."""
from __future__ import annotations

import functools

from ..errors import UserError

# name -> (module of this package, class). A network's module is imported when one is
# built; `check_kwargs` reads the class's constructor arguments from the module's source,
# so the workflow checks a config's net_kwargs without importing torch.
NETWORKS = {"unet": ("unet", "UNet"), "songunet": ("songunet", "SongUNet")}


def _known(name: str) -> None:
    if name not in NETWORKS:
        raise UserError(f"unknown network '{name}' (known: {', '.join(sorted(NETWORKS))})")


def build_network(name: str, kwargs: dict):
    import importlib

    _known(name)
    module, cls = NETWORKS[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)(**kwargs)


@functools.lru_cache(maxsize=None)
def constructor_args(name: str) -> tuple[str, ...]:
    """The constructor arguments of network `name`, read from its module's source (a
    top-level class with its own `__init__`)."""
    import ast
    from pathlib import Path

    _known(name)
    module, cls = NETWORKS[name]
    tree = ast.parse((Path(__file__).parent / f"{module}.py").read_text())
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls), None)
    init = next((n for n in getattr(node, "body", []) if isinstance(n, ast.FunctionDef) and n.name == "__init__"),
                None)
    if init is None:
        raise UserError(f"network '{name}': nets/{module}.py defines no class {cls} with its own __init__")
    args = init.args
    return tuple(a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs] if a.arg != "self")


def check_kwargs(name: str, kwargs: dict, key: str = "net_kwargs") -> None:
    """Refuse, in one line, constructor arguments the network `name` does not take."""
    import difflib

    allowed = constructor_args(name)
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
