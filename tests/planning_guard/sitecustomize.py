"""Loaded by Python at start-up when this folder is on PYTHONPATH (tests/test_planning.py):
every `import` statement of diffdistill's own code that names torch, numpy, pandas or
another heavy library fails, naming the module that asked, whether or not the library is
already loaded. Snakemake's own imports (it uses pandas) go through, so a dry run shows
whether the workflow's planning needs them. (It sees import statements, not
importlib.import_module calls; diffdistill uses those for its own modules only.)"""
import builtins

HEAVY = {"torch", "numpy", "pandas", "matplotlib", "scipy", "PIL", "sklearn", "cleanfid", "tqdm", "tensorboard"}
_import = builtins.__import__


def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if level == 0 and name.split(".")[0] in HEAVY and importer.split(".")[0] == "diffdistill":
        raise ImportError(f"planning guard: {importer} imports {name}")
    return _import(name, globals, locals, fromlist, level)


builtins.__import__ = guarded_import
