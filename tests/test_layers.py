"""The package's imports point down its layers only, with no cycles (import-linter's
contracts in pyproject.toml), and the shape stays readable."""
import ast
import subprocess

import pytest

from conftest import ROOT, VENV_BIN, copy_workflow


def test_import_layers_and_no_cycles(cli_env):
    r = subprocess.run([str(VENV_BIN / "lint-imports")], cwd=ROOT, env=cli_env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in r.stdout, r.stdout[-2000:]


def test_no_function_outside_nets_exceeds_60_lines():
    long = []
    for path in sorted((ROOT / "src/diffdistill").rglob("*.py")):
        if "nets" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long


def test_short_files():
    """A file is read in one sitting: none under src/diffdistill/ (networks aside) over 300
    lines, no method's training module over 250 (its loss and update, read alone), a thin
    CLI and short common rules."""
    long = [f"{p.relative_to(ROOT)} ({n} lines)" for p in sorted((ROOT / "src/diffdistill").rglob("*.py"))
            if "nets" not in p.parts and (n := len(p.read_text().splitlines())) > 300]
    long += [f"{p.relative_to(ROOT)} ({n} lines)" for p in sorted((ROOT / "src/diffdistill/methods").glob("*/train.py"))
             if (n := len(p.read_text().splitlines())) > 250]
    assert not long, long
    assert len((ROOT / "src/diffdistill/cli.py").read_text().splitlines()) <= 260
    assert len((ROOT / "workflow/rules/common.smk").read_text().splitlines()) <= 150


@pytest.mark.parametrize("cfg", ["config/config.yaml", "config/test.yaml", "config/cifar10.yaml"])
def test_snakemake_lint_is_clean(cfg, tmp_path, cli_env):
    """`snakemake --lint` (what the Snakemake workflow catalog runs) lists nothing for any shipped config."""
    copy_workflow(tmp_path)
    r = subprocess.run([str(VENV_BIN / "snakemake"), "--lint", "--configfile", cfg], cwd=tmp_path, env=cli_env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "good condition" in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]


def test_rule_files_pass_snakefmt(cli_env):
    """`snakefmt --check` (the catalog's second check) leaves every rule file as it is."""
    r = subprocess.run([str(VENV_BIN / "snakefmt"), "--check", "Snakefile", "workflow/"], cwd=ROOT, env=cli_env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]


def test_training_rules_are_made_from_the_one_training_rule():
    """Every method's training rule is `use rule _train as ... with:` (threads, resources,
    conda, log handling, its flags and shell written once)."""
    for f in sorted((ROOT / "workflow/rules/methods").glob("*.smk")):
        text = f.read_text()
        if "diffdistill train" in text or "use rule _train" in text:
            assert "use rule _train as " in text, f.name
            # the teacher's threads are the config's threads_teacher (it trains while little else can run)
            rule_text = text.split("rule import_teacher")[0].replace('threads: config["threads_teacher"]', "")
            for block in ("threads:", "conda:", "shell:"):
                assert block not in rule_text, (f.name, block)


def test_the_default_target_is_rule_all(tmp_path, cli_env):
    """The top-level Snakefile includes workflow/Snakefile keeping its default target, so a
    command without targets (`snakemake -n`, `--report`) plans rule all."""
    copy_workflow(tmp_path)
    r = subprocess.run([str(VENV_BIN / "snakemake"), "-n", "--configfile", "config/test.yaml"], cwd=tmp_path,
                       env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]
    assert any(line.split()[:2] == ["all", "1"] for line in r.stdout.splitlines()), r.stdout[-2000:]
