"""config/README.md is the schema's reference, and every schema node says only what JSON
schema understands (an unquoted comma in a YAML flow mapping silently makes a key)."""
from conftest import ROOT
from diffdistill import generate
from diffdistill.config import load_schema, reference_markdown, schema_node
from diffdistill.solvers import SOLVERS

KEYWORDS = {"$schema", "$defs", "$ref", "pattern", "type", "description", "default", "enum", "minimum", "maximum",
            "exclusiveMinimum", "exclusiveMaximum", "items", "properties", "additionalProperties", "minItems", "maxItems",
            "required"}


def test_config_readme_is_generated_from_the_schema():
    now, generated = generate.generated(ROOT)[generate.README]
    assert now == generated, f"{generate.README} is out of date: run {generate.COMMAND}"


def test_every_schema_node_has_only_keywords_and_a_description():
    def walk(node, path):
        assert set(node) <= KEYWORDS, (path, set(node) - KEYWORDS)
        if path:
            assert node.get("description"), f"{path} has no description"
        for key, sub in node.get("properties", {}).items():
            walk(sub, f"{path}.{key}".lstrip("."))
        if isinstance(node.get("items"), dict):
            assert set(node["items"]) <= KEYWORDS, (path, set(node["items"]) - KEYWORDS)
    schema = load_schema(resolve=False)  # the file as written: its $refs and $defs too
    walk(schema, "")
    for name, sub in schema.get("$defs", {}).items():
        walk(sub, f"$defs.{name}")


def test_the_solver_names_are_one_definition():
    """Every key that takes a solver names the one definition ($defs.solver, which
    `python -m diffdistill.generate` writes from diffdistill.solvers.SOLVERS), never a copy
    of the names: the deterministic solvers (the consistency sampler is a consistency
    model's recipe, not a config choice). A key that allows only some solvers
    (baselines.reference.solver) lists those."""
    from diffdistill.solvers import STOCHASTIC

    names = [s for s in SOLVERS if s not in STOCHASTIC]
    copies = []

    def walk(node, path):
        if isinstance(node, dict):
            if path != "$defs.solver" and set(node.get("enum", ())) == set(names):
                copies.append(path)
            for key, sub in node.items():
                walk(sub, f"{path}.{key}".lstrip("."))
    schema = load_schema(resolve=False)
    walk(schema, "")
    assert schema["$defs"]["solver"]["enum"] == names
    assert copies == [], f"{copies} copy the solver names: use {{$ref: \"#/$defs/solver\"}}"
    resolved = load_schema()
    for key in ("trajectories.solver", "o2mkd.fast_solver"):
        assert schema_node(key, resolved)["enum"] == names, key
    for key in ("baselines.solvers", "ablations.solver"):
        assert schema_node(key, resolved)["items"]["enum"] == names, key


def test_every_key_appears_in_the_reference():
    text = reference_markdown()

    def keys(node, prefix=""):
        for key, sub in node.get("properties", {}).items():
            yield f"{prefix}{key}"
            yield from keys(sub, f"{prefix}{key}.")
    missing = [k for k in keys(load_schema()) if f"`{k}`" not in text]
    assert missing == []


def test_the_default_config_is_the_link_to_params_yaml():
    """config/config.yaml and params.yaml are one file (Snakemake reads the one, DVC tracks
    the other): a tool that edits in place by writing a new file (sed -i) turns the link
    into a copy, and the two then drift apart silently."""
    link = ROOT / "config/config.yaml"
    assert link.is_symlink() and link.resolve() == (ROOT / "params.yaml").resolve()
