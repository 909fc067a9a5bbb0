"""Real `dvc repro` of unpack on the sample: its decode cache survives DVC, a killed run decodes only what
it had not finished, and what comes out is byte for byte what a cold run writes."""
import re
import shutil

import pytest

from pipeline.core.files import read_csv
from tests.helpers.corpus import image_bytes
from tests.helpers.dvc_project import dvc, env, make_repo, ran_stages
from tests.helpers.killing import repro_killed_at

pytestmark = pytest.mark.slow

UNITS = 22                      # Unity files in the sample APK, one image each
KILLED_AFTER = 5                # units cached before the kill


def tree(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def cache_line(r) -> tuple[int, int]:
    """(decoded, reused) from the stage's log, which must say so before its `done in` line."""
    log = r.stdout + r.stderr
    found = re.findall(r"decoded (\d+) input\(s\), reused (\d+) from the cache", log)
    assert len(found) == 1, log[-3000:]
    assert log.index("from the cache") < log.index("unpack: done in"), log[-3000:]
    return int(found[0][0]), int(found[0][1])


def test_a_killed_unpack_resumes_and_the_cache_survives_dvc(tmp_path):
    from PIL import Image

    root = make_repo(tmp_path / "repo", {"unpack.workers": 2})
    repro_killed_at(root, f"unit_cached:{KILLED_AFTER}", env(), tmp_path / "kills")
    assert len(list((root / ".cache/unpack").glob("??/*"))) == KILLED_AFTER
    r = dvc(root, "repro", "unpack")
    assert ran_stages(r.stdout) == ["unpack"]
    assert cache_line(r) == (UNITS - KILLED_AFTER, KILLED_AFTER)
    resumed = tree(root / "data/extracted")

    shutil.rmtree(root / ".cache/unpack")                  # how the README says to clear it
    r = dvc(root, "repro", "-f", "unpack")
    assert cache_line(r) == (UNITS, 0)
    assert tree(root / "data/extracted") == resumed
    assert "up to date" in dvc(root, "status", "unpack").stdout

    (root / "data/raw/extra.png").write_bytes(image_bytes(Image.new("RGB", (96, 128), (200, 30, 90))))
    r = dvc(root, "repro", "unpack")
    assert ran_stages(r.stdout) == ["unpack"] and cache_line(r) == (1, UNITS)
    rows = read_csv(root / "data/extracted/index.csv")
    assert [row["source"] for row in rows].count("extra.png") == 1 and len(rows) == UNITS + 1
