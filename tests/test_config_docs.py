"""config/README.md is the schema's reference, and every schema node says only what JSON
schema understands (an unquoted comma in a YAML flow mapping silently makes a key)."""
from conftest import ROOT
from diffdistill.config import load_schema, reference_markdown

KEYWORDS = {"$schema", "pattern", "type", "description", "default", "enum", "minimum", "maximum", "exclusiveMinimum",
            "exclusiveMaximum", "items", "properties", "additionalProperties", "minItems", "maxItems", "required"}


def test_config_readme_is_generated_from_the_schema():
    assert (ROOT / "config/README.md").read_text() == reference_markdown(), \
        "regenerate: .venv/bin/python -m diffdistill.config > config/README.md"


def test_every_schema_node_has_only_keywords_and_a_description():
    def walk(node, path):
        assert set(node) <= KEYWORDS, (path, set(node) - KEYWORDS)
        if path:
            assert node.get("description"), f"{path} has no description"
        for key, sub in node.get("properties", {}).items():
            walk(sub, f"{path}.{key}".lstrip("."))
    walk(load_schema(), "")


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
