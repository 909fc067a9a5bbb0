"""Real `dvc repro` through `evaluate`, then an experiment and the commands that compare two runs."""
import json
import subprocess
import sys

import pytest
from PIL import Image

from pipeline.train import checkpoint
from tests.helpers.dvc_project import dvc, env, make_repo, ran_stages
from tests.helpers.tiny import TINY_MODEL, tiny_schedule

pytestmark = pytest.mark.slow

TINY = {"unpack.workers": 2, "faces.workers": 2, "train.final_res": 16, "train.log_every": 2,
        "train.snapshot_kimg": 0.016, "train.device": "cpu", "train.schedule": tiny_schedule(0.032),
        **{f"model.{k}": v for k, v in TINY_MODEL.items()},
        "eval.grid_rows": 2, "eval.grid_cols": 3, "eval.device": "cpu"}
METRICS = ["swd", "swd_levels", "swd_real_baseline", "swd_images", "block4", "block8", "hf", "block4_real",
           "block8_real", "hf_real", "images_seen", "train_seconds",
           "img_per_s", "params_G", "params_D"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The sample pipeline run once with tiny params (8 -> 16), committed as the baseline."""
    root = make_repo(tmp_path_factory.mktemp("repo"), TINY)
    r = dvc(root, "repro")
    assert ran_stages(r.stdout)[-1] == "evaluate", r.stdout
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "baseline run"], cwd=root, check=True)
    return root


def test_repro_fills_eval(repo):
    metrics = json.loads((repo / "eval/metrics.json").read_text())
    assert all(k in metrics for k in METRICS) and "fid" not in metrics
    assert metrics["swd_images"] == 22 and metrics["res"] == 16            # the sample's 22 full-body images
    assert sorted(p.name for p in (repo / "eval/grids").iterdir()) == [
        "reals.png", "res16.png", "res8.png", "style_mixing.png", "truncation.png", "uncurated.png"]
    assert "up to date" in dvc(repo, "status").stdout
    # the stage's command alone does what dvc ran: same metrics, byte for byte
    before = (repo / "eval/metrics.json").read_bytes()
    r = subprocess.run([sys.executable, "-m", "stages.evaluate"], cwd=repo, env=env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "too few to rank runs" in r.stderr
    assert (repo / "eval/metrics.json").read_bytes() == before


def test_a_second_repro_is_up_to_date_and_a_change_reruns_only_its_stages(repo):
    # Python writes bytecode beside the modules a stage imports (unless PYTHONDONTWRITEBYTECODE is set,
    # as on some machines): write it for sure; .dvcignore keeps it out of the folders' hashes.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "pipeline"], cwd=repo, check=True,
                   env={**env(), "PYTHONDONTWRITEBYTECODE": ""})
    assert list((repo / "pipeline").rglob("__pycache__/*.pyc"))
    r = dvc(repo, "repro")
    assert ran_stages(r.stdout) == [] and "is cached" not in r.stdout, r.stdout
    module = repo / "pipeline/evaluate/metrics.py"
    original = module.read_text()
    module.write_text(original + "\n# touched\n")
    try:
        assert ran_stages(dvc(repo, "repro").stdout) == ["evaluate"]
    finally:
        module.write_text(original)
        dvc(repo, "repro")
    assert "up to date" in dvc(repo, "status").stdout


def test_experiment_then_compare_two_runs(repo, tmp_path):
    r = dvc(repo, "exp", "run", "-S", "train.progressive=false")
    assert ran_stages(r.stdout)[-1] == "evaluate"
    # the workspace now holds the experiment; HEAD the baseline
    diff = json.loads(dvc(repo, "metrics", "diff", "--all", "--json").stdout)["eval/metrics.json"]
    for key in ("swd", "swd_levels.16", "swd_real_baseline", "swd_images", "images_seen", "train_seconds",
                "img_per_s", "params_G", "params_D"):
        assert {"old", "new"} <= set(diff[key]), key
    assert diff["swd"]["old"] != diff["swd"]["new"]
    assert diff["images_seen"]["old"] == diff["images_seen"]["new"]     # from scratch sees as many images
    table = dvc(repo, "metrics", "diff").stdout
    assert "swd" in table and "HEAD" in table and "workspace" in table

    shown = dvc(repo, "exp", "show", "--csv").stdout
    header, *rows = shown.strip().splitlines()
    assert "swd" in header.split(",") and "train.progressive" in header.split(",") and len(rows) >= 2

    out = tmp_path / "plots"
    dvc(repo, "plots", "diff", "HEAD", "-o", str(out))
    html = (out / "index.html").read_text()
    for name in ("uncurated.png", "style_mixing.png", "truncation.png", "res16.png", "reals.png"):
        assert html.count(name) >= 2, name          # a baseline image and a workspace image
    assert "res8.png" in html                     # only the progressive baseline grew through 8
    assert not (repo / "eval/grids/res8.png").exists()


def test_a_tall_experiment_trains_evaluates_and_draws_tall(repo, tmp_path):
    """`dvc exp run -S model.aspect=2`: every train stage and evaluate re-run; the model is 16 tall x 8 wide."""
    subprocess.run(["git", "checkout", "-q", "."], cwd=repo, check=True)      # back to the square baseline
    dvc(repo, "checkout", "-q")
    try:
        ran = ran_stages(dvc(repo, "exp", "run", "-S", "model.aspect=2").stdout)
        assert {"train@8", "train@16", "evaluate"} <= set(ran) and "review" not in ran, ran
        state = checkpoint.load(repo / "models/res16/checkpoint.pt")
        assert state["aspect"] == 2 and state["res"] == 16
        metrics = json.loads((repo / "eval/metrics.json").read_text())
        assert list(metrics["swd_levels"]) == ["16"]          # 16x8: the short side is 8, no level below
        uncurated = Image.open(repo / "eval/grids/uncurated.png")
        assert uncurated.width < uncurated.height             # 2 rows x 3 columns of tall cells (square: wider)
        out = tmp_path / "drawn"
        r = subprocess.run([sys.executable, "-m", "stages.generate", "--checkpoint", "models/res16", "--seeds", "0-1",
                            "--out", str(out)], cwd=repo, env=env(), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert [Image.open(p).size for p in sorted(out.glob("*.png"))] == [(8, 16), (8, 16)]
        # The tall model evaluated with params.yaml saying square: one line, nothing written
        subprocess.run(["git", "checkout", "-q", "params.yaml"], cwd=repo, check=True)
        before = (repo / "eval/metrics.json").read_bytes()
        r = subprocess.run([sys.executable, "-m", "stages.evaluate"], cwd=repo, env=env(), capture_output=True,
                           text=True)
        assert r.returncode == 1 and "was trained at model.aspect 2" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and (repo / "eval/metrics.json").read_bytes() == before
    finally:
        subprocess.run(["git", "checkout", "-q", "."], cwd=repo, check=True)
        dvc(repo, "checkout", "-q")
