"""Every generated file is what `python -m diffdistill.generate` makes of its source (the
method registry, the solver list, the schema): config/README.md, dvc.yaml's method stages
and the schema's solver names. `--check` names each stale file and writes nothing; without
it the command writes only what changed and keeps dvc.yaml's hand-written part as it is."""
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT
from diffdistill import generate, methods
from diffdistill.errors import UserError

FILES = (generate.SCHEMA, generate.README, generate.DVC)


def test_every_generated_file_is_up_to_date():
    assert generate.stale(ROOT) == [], "\n".join(generate.stale(ROOT))


@pytest.fixture
def repo(tmp_path):
    for path in FILES:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    return tmp_path


def _texts(root) -> dict:
    return {path: (root / path).read_text() for path in FILES}


def test_check_names_each_stale_file_and_writes_nothing_then_the_command_writes_them(repo, capsys):
    schema = (repo / generate.SCHEMA).read_text()
    (repo / generate.SCHEMA).write_text(schema.replace("enum: [euler, heun, ", "enum: [euler, ", 1))
    (repo / generate.README).write_text("stale\n")
    dvc = (repo / generate.DVC).read_text()
    (repo / generate.DVC).write_text(dvc.replace("    cmd: ${run} pd\n", "    cmd: ${run} pd --old\n", 1))
    before = _texts(repo)

    assert generate.main(["--check", "--root", str(repo)]) == 1
    assert capsys.readouterr().out.splitlines() == [f"{p} is out of date: run python -m diffdistill.generate"
                                                    for p in FILES]
    assert _texts(repo) == before

    assert generate.main(["--root", str(repo)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"wrote {p}" for p in FILES]
    assert _texts(repo) == _texts(ROOT)
    assert generate.main(["--check", "--root", str(repo)]) == 0
    assert generate.main(["--root", str(repo)]) == 0
    assert capsys.readouterr().out == "every generated file is up to date\n"


def test_dvc_yaml_keeps_its_hand_written_part_and_takes_a_new_method(repo, monkeypatch):
    """A stage the registry no longer has leaves the generated blocks, a new one joins
    them (stage and folders, in registry order); comments, vars and the other stages stay."""
    text = (repo / generate.DVC).read_text().replace("  featnet:  # FID feature", "  featnet:  # edited by hand; FID feature")
    stages = methods.dvc_stages()
    new = {"cmd": "${run} newkd", "deps": ["results/params/newkd.yaml", "results/teacher", "src/diffdistill"],
           "outs": ["results/students/newkd"]}
    monkeypatch.setattr(methods, "dvc_stages", lambda: {**{k: v for k, v in stages.items() if k != "sfdv"},
                                                        "newkd": new})
    out = generate.dvc_yaml(text)
    assert "edited by hand; FID feature" in out
    parsed, before = yaml.safe_load(out), yaml.safe_load(text)
    assert "sfdv" not in parsed["stages"] and parsed["stages"]["newkd"] == new
    assert list(parsed["stages"]) == [s for s in before["stages"] if s != "sfdv"][:-2] + ["newkd", "evaluate", "report"]
    for name in ("evaluate", "report"):
        deps = parsed["stages"][name]["deps"]
        assert "results/students/newkd" in deps and "results/students/sfdv" not in deps
    assert {k: v for k, v in parsed.items() if k != "stages"} == {k: v for k, v in before.items() if k != "stages"}
    hand = {k: v for k, v in before["stages"].items() if k not in stages and k not in ("evaluate", "report")}
    assert hand and all(parsed["stages"][k] == v for k, v in hand.items())
    assert generate.dvc_yaml(out) == out


def test_a_dvc_yaml_without_the_markers_is_one_error_line(repo, capsys):
    text = (repo / generate.DVC).read_text()
    (repo / generate.DVC).write_text("\n".join(line for line in text.splitlines() if "generated method" not in line)
                                     + "\n")
    with pytest.raises(UserError, match="no block '# BEGIN generated method-stages'"):
        generate.stale(repo)
    assert generate.main(["--check", "--root", str(repo)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_command_imports_no_torch_numpy_or_pandas(repo):
    """It runs where the workflow plans (tests/test_planning.py's guard refuses those imports)."""
    guard = ROOT / "tests/planning_guard"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(guard), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    code = ("import sys; from diffdistill import generate; rc = generate.main(['--check']); "
            "heavy = {'torch', 'numpy', 'pandas'} & set(sys.modules); assert not heavy, heavy; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr[-2000:]
