"""The folder tree shows the data flow: pipeline/ is one subpackage per part, imports point down
pipeline.LAYERS, dvc.yaml names the code each stage runs, and tests/ mirrors pipeline/."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import pipeline
from tests.helpers import imports
from tests.helpers.project import ROOT

PACKAGE = ROOT / "pipeline"


def test_imports_point_down_the_layers_and_form_no_cycle():
    assert imports.violations(PACKAGE, pipeline.LAYERS) == []


def test_every_subpackage_is_listed_small_and_documented():
    subpackages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert subpackages == sorted(pipeline.LAYERS)
    for name in pipeline.LAYERS:
        init = PACKAGE / name / "__init__.py"
        tree = compile(init.read_text(), str(init), "exec", flags=0x400, dont_inherit=True)  # ast only
        body = tree.body
        assert body and isinstance(body[0].value.value, str), f"{init} needs a docstring saying what it owns"
        assert len(body) == 1, f"{init} holds only its docstring (importing it must cost nothing)"
        modules = [p for p in (PACKAGE / name).glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
        assert len(modules) <= 10, f"pipeline/{name}/ holds {len(modules)} modules: split it"


@pytest.fixture
def copy(tmp_path):
    dest = tmp_path / "pipeline"
    shutil.copytree(PACKAGE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _inject(path: Path, line: str) -> None:
    path.write_text(line + "\n" + path.read_text())


def test_an_upward_import_is_caught(copy):
    _inject(copy / "extract/images.py", "from pipeline.train import trainer")
    found = imports.violations(copy, pipeline.LAYERS)
    assert found == ["pipeline.extract.images imports pipeline.train.trainer: train comes after extract in "
                     "pipeline.LAYERS"]


def test_a_lazy_relative_upward_import_is_caught(copy):
    path = copy / "gan/losses.py"
    path.write_text(path.read_text() + "\n\ndef _late():\n    from ..evaluate import metrics\n")
    assert any("pipeline.gan.losses imports pipeline.evaluate.metrics" in v
               for v in imports.violations(copy, pipeline.LAYERS))


def test_a_cycle_is_caught(copy):
    _inject(copy / "core/killpoints.py", "from pipeline.core import runner")   # runner imports killpoints
    assert imports.violations(copy, pipeline.LAYERS) == [
        "import cycle: pipeline.core.killpoints -> pipeline.core.runner -> pipeline.core.killpoints"]


def test_stages_and_stray_modules_are_caught(copy):
    _inject(copy / "train/schedule.py", "import stages.train")
    (copy / "helpers.py").write_text("")
    found = imports.violations(copy, pipeline.LAYERS)
    assert "pipeline.train.schedule imports stages: pipeline never imports the stages" in found
    assert "pipeline/helpers.py: the top level holds only __init__.py and subpackages" in found


def _stage_deps() -> dict[str, list[str]]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    deps = {name: stage["deps"] for name, stage in stages.items() if "cmd" in stage}
    deps["train"] = stages["train"]["do"]["deps"]
    return deps


@pytest.mark.parametrize("stage", ["unpack", "flatten", "faces", "review", "train", "evaluate"])
def test_each_stage_depends_on_all_the_code_it_runs(stage):
    """Every module a stage imports, directly or not, lies in a folder or file its deps name."""
    g = imports.graph(PACKAGE)
    direct = {m for m in imports.imports_of(PACKAGE, ROOT / "stages" / f"{stage}.py") if m in g}
    deps = _stage_deps()[stage]
    assert f"stages/{stage}.py" in deps
    for module in sorted(imports.closure(g, direct)):
        rel = module.replace(".", "/")
        if (ROOT / rel).is_dir():
            continue                          # a package's __init__: a docstring only (tested above)
        path = f"{rel}.py"
        assert any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps), \
            f"{stage} runs {path}, which its deps in dvc.yaml do not cover"


def test_tests_mirror_the_package():
    for name in pipeline.LAYERS:
        assert list((ROOT / "tests" / name).glob("test_*.py")), f"tests/{name}/ is missing"
    assert not list((ROOT / "tests").glob("test_*.py")) or [p.name for p in (ROOT / "tests").glob("test_*.py")] \
        == ["test_layout.py"]


def test_every_path_the_readme_names_exists():
    text = (ROOT / "README.md").read_text()
    paths = set(re.findall(r"`((?:pipeline|stages|tests)/[A-Za-z0-9_./]+)`", text))
    assert paths, "the README names no paths?"
    missing = [p for p in sorted(paths) if "<" not in p and not (ROOT / p.rstrip("/")).exists()]
    assert missing == []


def test_a_non_editable_install_ships_the_pages_and_every_subpackage(tmp_path):
    pytest.importorskip("setuptools", minversion="68")
    source, target = tmp_path / "source", tmp_path / "site"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):                        # a build writes into its source
        shutil.copy(ROOT / name, source / name)
    for name in ("pipeline", "stages"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--no-cache-dir", "--target", str(target), str(source)], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in pipeline.LAYERS:
        assert (target / "pipeline" / name / "__init__.py").exists(), name
    # Both pages' files are found where the installed servers look for them, not in this checkout.
    pages = {"review": ["actions.js", "detail.js", "index.html", "review.css", "review.js"],
             "studio": ["index.html", "studio.css", "studio.js"]}
    for page, expected in pages.items():
        code = (f"import pipeline.{page}.server as s; print(s.STATIC); "
                "print(sorted(p.name for p in s.STATIC.iterdir()))")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(target)})
        assert r.returncode == 0, r.stderr[-2000:]
        where, files = r.stdout.splitlines()
        assert Path(where).is_relative_to(target), page
        assert files == str(expected), page


def test_temp_repos_skip_only_what_training_wrote():
    from tests.helpers.dvc_project import _not_copied

    names = ["res8", "res256", "snapshots", "lbpcascade_animeface.xml", "resample.py", "__pycache__"]
    assert _not_copied(str(ROOT / "models"), names) == {"res8", "res256", "snapshots", "__pycache__"}
    assert _not_copied(str(ROOT / "pipeline" / "train"), ["resample.py", "res8", "x.pyc"]) == {"x.pyc"}
