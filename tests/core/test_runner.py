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
