"""Real `dvc repro` of the data stages in a temporary git repo: outputs, and what re-runs after a change."""
import pytest

from pipeline.core.files import read_csv
from pipeline.review.manifest import Decision, write_decisions
from tests.helpers.dvc_project import dvc, make_repo, ran_stages

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = make_repo(tmp_path_factory.mktemp("repo"), {"unpack.workers": 2, "faces.workers": 2})
    r = dvc(root, "repro", "review")
    assert ran_stages(r.stdout) == ["unpack", "flatten", "faces", "review"]
    return root


def test_outputs_on_the_sample(repo):
    assert len(read_csv(repo / "data/extracted/index.csv")) == 22
    assert len(read_csv(repo / "data/flat/index.csv")) == 22
    faces = read_csv(repo / "data/faces/index.csv")
    assert 14 <= len(faces) <= 22
    manifest = read_csv(repo / "data/review/manifest.csv")
    assert len(manifest) == 22 + len(faces)
    assert {r["kind"] for r in manifest} == {"fullbody", "face"}
    kept = read_csv(repo / "data/dataset/fullbody/index.csv")
    assert len(kept) == sum(r["kind"] == "fullbody" and r["status"] == "keep" for r in manifest)


def test_a_decision_reruns_only_review(repo):
    manifest = read_csv(repo / "data/review/manifest.csv")
    victim = next(r for r in manifest if r["kind"] == "fullbody")
    write_decisions(repo / "review/decisions.csv", {victim["id"]: Decision("reject", "not a character")})
    r = dvc(repo, "repro", "review")
    assert ran_stages(r.stdout) == ["review"]
    kept = {row["id"] for row in read_csv(repo / "data/dataset/fullbody/index.csv")}
    assert victim["id"] not in kept
    assert "up to date" in dvc(repo, "status", "review").stdout


def test_a_faces_param_reruns_faces_and_review_only(repo):
    text = (repo / "params.yaml").read_text().replace("expand: 2.0", "expand: 2.5")
    (repo / "params.yaml").write_text(text)
    r = dvc(repo, "repro", "review")
    assert ran_stages(r.stdout) == ["faces", "review"]
