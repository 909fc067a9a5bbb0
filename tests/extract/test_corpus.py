"""Hostile inputs (>= 200) mixed with good ones: every data stage finishes, keeps every good output,
and lists every bad input in its skip report with a reason."""
import os
from pathlib import Path

import pytest

from pipeline.core.files import read_csv
from pipeline.core.params import FacesParams, FlattenParams, ReviewParams, UnpackParams
from pipeline.extract import faces, flatten, unpack
from pipeline.review import stage as review_stage
from tests.helpers.corpus import write_bad, write_good
from tests.helpers.project import CASCADE

pytestmark = pytest.mark.slow


def run_all(root: Path) -> None:
    cwd = os.getcwd()
    os.chdir(root)
    try:
        unpack.run(UnpackParams(workers=2, decode_timeout=600))   # no input here hangs: a limit no healthy decode reaches
        flatten.run(FlattenParams())
        faces.run(FacesParams(workers=2, cascade=str(CASCADE)))
        (root / "review").mkdir(exist_ok=True)
        review_stage.run(ReviewParams())
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    good, mixed = tmp_path_factory.mktemp("good"), tmp_path_factory.mktemp("mixed")
    for root in (good, mixed):
        write_good(root / "data" / "raw")
    expect = write_bad(mixed / "data" / "raw")
    for root in (good, mixed):
        run_all(root)
    return good, mixed, expect


def rows(root, rel):
    return read_csv(root / rel)


def test_corpus_is_big_enough(runs):
    _, _, expect = runs
    assert len(expect) >= 200


def test_good_outputs_are_all_kept_unchanged(runs):
    good, mixed, _ = runs
    for rel in ("data/extracted/index.csv", "data/flat/index.csv", "data/faces/index.csv"):
        folder = Path(rel).parent
        g = [r for r in rows(good, rel) if not r["source"].startswith("bad/")]
        m = [r for r in rows(mixed, rel) if not r["source"].startswith("bad/")]
        assert g == m, rel
        assert g, rel
        for r in g:
            assert (good / folder / r["path"]).read_bytes() == (mixed / folder / r["path"]).read_bytes()
    gm = [r for r in rows(good, "data/review/manifest.csv")]
    mm = {r["id"]: r for r in rows(mixed, "data/review/manifest.csv")}
    for r in gm:
        assert mm[r["id"]]["status"] == r["status"] or mm[r["id"]]["reason"] in ("duplicate", "near_duplicate")


def test_every_bad_input_is_reported_with_a_reason(runs):
    _, mixed, expect = runs
    skipped = rows(mixed, "data/extracted/skipped.csv")
    extracted = rows(mixed, "data/extracted/index.csv")
    missing = []
    for source, what in expect.items():
        if what == "skip":
            hits = [s for s in skipped if s["source"] == source or s["source"].startswith(source + "!")]
            if not hits or not all(s["reason"].strip() and "\n" not in s["reason"] for s in hits):
                missing.append(source)
            assert not any(r["source"] == source or r["source"].startswith(source + "!") for r in extracted), source
        else:
            found = any(r["source"] == source or r["source"].startswith(source + "!") for r in extracted)
            if what == "any":
                found = found or any(s["source"] == source for s in skipped)
            if not found:
                missing.append(source)
    assert not missing, f"{len(missing)} input(s) not accounted for: {missing[:10]}"
    for stage in ("flat", "faces"):
        assert rows(mixed, f"data/{stage}/skipped.csv") == []     # nothing bad reaches the later stages


def test_nothing_is_written_outside_the_output_folders(runs):
    _, mixed, _ = runs
    out = (mixed / "data" / "extracted").resolve()
    for r in rows(mixed, "data/extracted/index.csv"):
        path = (out / r["path"]).resolve()
        assert path.is_relative_to(out) and path.exists(), r["path"]
        assert "\x00" not in r["path"] and ".." not in Path(r["path"]).parts
    allowed = {"data", "review", ".cache"}
    assert {p.name for p in mixed.iterdir()} <= allowed
    assert not list(mixed.parent.glob("evil*"))
    traversal = [r for r in rows(mixed, "data/extracted/index.csv") if r["source"].startswith("bad/traversal/")]
    assert len(traversal) == 8 and len({r["path"] for r in traversal}) == 8
