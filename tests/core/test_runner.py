"""How stages end: one line for user errors and a full disk, never a traceback."""
import errno

import pytest

from pipeline.core.errors import UserError
from pipeline.core.runner import run_stage


def test_user_error_is_one_line(capsys):
    def body():
        raise UserError("data/raw/ is empty")
    with pytest.raises(SystemExit) as e:
        run_stage("unpack", body)
    assert e.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == "unpack: error: data/raw/ is empty"


def test_disk_full_is_one_line(capsys):
    def body():
        raise OSError(errno.ENOSPC, "No space left on device", "data/flat/x.png")
    with pytest.raises(SystemExit) as e:
        run_stage("flatten", body)
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == "flatten: error: disk full while writing data/flat/x.png; free space and re-run"


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    from pipeline.core.files import atomic_write

    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as f:
            f.write("half of the new")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.parametrize("stage", ["unpack", "flatten", "faces", "review", "evaluate"])
def test_help_prints_help_and_runs_nothing(stage, tmp_path):
    import subprocess
    import sys

    from tests.helpers.project import env_with_project_on_path

    r = subprocess.run([sys.executable, "-m", f"stages.{stage}", "--help"], cwd=tmp_path, capture_output=True,
                       text=True, env=env_with_project_on_path())
    assert r.returncode == 0 and r.stdout.startswith(f"Usage: python -m stages.{stage}"), r.stdout + r.stderr
    assert list(tmp_path.iterdir()) == []                       # no output folder, no log, nothing


def test_a_bad_key_anywhere_fails_the_first_stage_before_it_does_anything(tmp_path, monkeypatch, capsys):
    import yaml

    from tests.helpers.project import ROOT

    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["eval"]["grid_rows"] = "abc"                            # read only by evaluate, after training
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    ran = []
    with pytest.raises(SystemExit) as e:
        run_stage("unpack", lambda: ran.append(1))
    assert e.value.code == 1 and ran == []
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "unpack: error: params.yaml: eval.grid_rows: expected int, got 'abc'"
    data["extra"] = {}
    data["eval"]["grid_rows"] = 4
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(SystemExit):
        run_stage("unpack", lambda: ran.append(1))
    assert "params.yaml: extra: unknown section" in capsys.readouterr().err and ran == []
