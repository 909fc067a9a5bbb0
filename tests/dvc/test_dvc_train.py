"""Real `dvc repro` through training in a temporary git repo: the chain, an experiment, a kill and resume."""
import json
import re
import subprocess

import pytest
import torch
from PIL import Image

from pipeline.core.files import read_csv, write_csv
from pipeline.train import checkpoint
from tests.helpers.dvc_project import dvc, env, make_repo, ran_stages
from tests.helpers.killing import repro_killed_at
from tests.helpers.tiny import TINY_MODEL, tiny_schedule

pytestmark = pytest.mark.slow

TINY = {"unpack.workers": 2, "faces.workers": 2, "train.final_res": 16, "train.log_every": 2,
        "train.snapshot_kimg": 0.016, "train.device": "cpu", "train.schedule": tiny_schedule(0.032),
        **{f"model.{k}": v for k, v in TINY_MODEL.items()}}
TRAIN_STAGES = [f"train@{r}" for r in (8, 16, 32, 64, 128, 256)]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """The repo after its first `dvc repro`, and everything that run printed."""
    root = make_repo(tmp_path_factory.mktemp("repo"), TINY)
    r = dvc(root, "repro")
    assert ran_stages(r.stdout)[:4] == ["unpack", "flatten", "faces", "review"]
    assert set(TRAIN_STAGES) <= set(ran_stages(r.stdout))
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "trained"], cwd=root, check=True)
    return root, r.stdout + r.stderr


@pytest.fixture(scope="module")
def repo(first_run):
    return first_run[0]


def test_a_first_run_says_what_it_does_and_nothing_else(first_run):
    _, out = first_run
    assert "is empty." not in out, out[-3000:]        # skipped stages leave their record in each persist folder
    assert "train@8: from scratch (first resolution)" in out and "resuming" not in out
    assert "train@16: grows from 8" in out and "train@32: skipped (above train.final_res)" in out
    assert not re.search(r"0x[0-9a-f]{6,}|\{'|ignored 0 ", out), out[-3000:]


PLOT_KINDS = ("losses", "scores", "augment", "speed")


def test_curves_are_dvc_plots_and_pictures(repo):
    shown = json.loads(dvc(repo, "plots", "show", "--json").stdout)
    assert "errors" not in shown, shown.get("errors")      # every declared file exists, trained or not
    for res in (8, 16, 32, 64, 128, 256):
        for kind in PLOT_KINDS:
            drawn = shown["data"][f"train@{res}-{kind}"]
            assert bool(drawn) == (res <= 16), (res, kind)
        curves = repo / f"models/res{res}/curves.png"
        assert curves.exists() == (res <= 16)
        assert (repo / f"logs/res{res}/skipped.json").exists() == (res > 16)
    assert Image.open(repo / "models/res16/curves.png").size[0] >= 1000


def test_chain_trains_8_and_16_and_skips_the_rest(repo):
    for res in (8, 16):
        state = checkpoint.load(repo / f"models/res{res}/checkpoint.pt")
        assert state["res"] == res and state["images"] > 0
        assert (repo / f"models/res{res}/options.json").exists()
    assert checkpoint.load(repo / "models/res16/checkpoint.pt")["prev_images"] > 0   # grew from res8
    for res in (32, 64, 128, 256):
        assert (repo / f"models/res{res}/skipped.json").exists()
    assert "up to date" in dvc(repo, "status").stdout


def test_progressive_false_reruns_only_training(repo):
    r = dvc(repo, "exp", "run", "-S", "train.progressive=false")
    ran = ran_stages(r.stdout)
    assert ran and all(s.startswith("train@") or s in ("schedule", "evaluate") for s in ran), ran
    assert (repo / "models/res8/skipped.json").exists()
    state = checkpoint.load(repo / "models/res16/checkpoint.pt")
    assert state["prev_images"] == 0                                    # from scratch at 16
    subprocess.run(["git", "checkout", "-q", "."], cwd=repo, check=True)
    dvc(repo, "checkout", "-q")


def test_decisions_about_faces_do_not_rerun_a_full_body_training(repo):
    dvc(repo, "repro")          # settle what earlier tests' experiments left in the persist folders
    faces = [row["id"] for row in read_csv(repo / "data/review/manifest.csv") if row["kind"] == "face"]
    assert len(faces) >= 2
    write_csv(repo / "review/decisions.csv", ["id", "status", "note"],
              [{"id": i, "status": "reject", "note": "not a face"} for i in faces[:2]])
    try:
        ran = ran_stages(dvc(repo, "repro").stdout)
        assert ran == ["review"], ran
        assert "up to date" in dvc(repo, "status").stdout
    finally:
        subprocess.run(["git", "checkout", "-q", "."], cwd=repo, check=True)
        dvc(repo, "checkout", "-q")


def test_raising_final_res_trains_only_the_new_stage_as_one_go_would(repo, tmp_path):
    dvc(repo, "repro")
    before = checkpoint.load(repo / "models/res16/checkpoint.pt")
    try:
        ran = ran_stages(dvc(repo, "exp", "run", "-S", "train.final_res=32").stdout)
        # train@64 re-runs too, as its input models/res32 is new, and skips again at once
        assert ran == ["schedule", "train@32", "train@64", "evaluate"], ran
        assert (repo / "models/res64/skipped.json").exists()
        stepped = checkpoint.load(repo / "models/res32/checkpoint.pt")
        assert stepped["prev_images"] == before["prev_images"] + before["images"]          # grew from res16
        # lowering it again re-runs none of the stages below
        ran = ran_stages(dvc(repo, "exp", "run", "-S", "train.final_res=16").stdout)
        assert "train@32" in ran and set(ran) <= {"schedule", "train@32", "train@64", "evaluate"}, ran
        assert (repo / "models/res32/skipped.json").exists()
    finally:
        subprocess.run(["git", "checkout", "-q", "."], cwd=repo, check=True)
        dvc(repo, "checkout", "-q")
    one_go = make_repo(tmp_path / "one_go", {**TINY, "train.final_res": 32})
    dvc(one_go, "repro", "train@32")
    direct = checkpoint.load(one_go / "models/res32/checkpoint.pt")
    for key in ("G", "D", "G_ema"):
        for name, value in direct[key].items():
            assert torch.equal(value, stepped[key][name]), (key, name)
    assert direct["images"] == stepped["images"] and direct["prev_images"] == stepped["prev_images"]


# Each kill lands at a moment the code names (pipeline.core.killpoints), in this order: after a snapshot,
# inside the next snapshot's write (before its rename), in the middle of a step, after a later
# snapshot, and once train@8 has written models/res8 but not yet exited (DVC then sees it as failed).
KILLS = ["snapshot_written:1", "checkpoint_write:1", "mid_step:3", "snapshot_written:2", "outputs_written"]


def test_killed_training_resumes_every_time(tmp_path):
    root = make_repo(tmp_path / "repo", {**TINY, "train.final_res": 8, "train.schedule": tiny_schedule(0.4)})
    dvc(root, "repro", "review")
    snaps = root / "models/snapshots/res8"
    outputs = []
    for i, point in enumerate(KILLS):
        outputs.append(repro_killed_at(root, point, env(), tmp_path / f"kill{i}"))
    assert len(outputs) == 5
    # The kill inside a write left only a temporary file: the next run resumed from the snapshot before.
    assert "resuming from" in outputs[2] and outputs[2].count("resuming from") == 1
    assert "000000000016.pt" in outputs[2], outputs[2][-2000:]
    assert "train@8: resuming at 16 of 800 images" in outputs[2] and "from scratch" not in outputs[2]
    # After the kill at the very end, the finished state is still there ...
    finished = checkpoint.snapshots(snaps, _only_key(snaps))
    assert finished and checkpoint.load(finished[0])["images"] == 800     # 0.4 + 0.4 kimg at 8x8
    seconds = checkpoint.load(finished[0])["train_seconds"]
    r = dvc(root, "repro")
    log = r.stdout + r.stderr
    # ... and the re-run restores it instead of training the stage again (a retrained stage would
    # have measured its own training time).
    assert "holds the finished training; writing its outputs without training" in log, log[-3000:]
    assert "from scratch" not in log
    assert checkpoint.load(root / "models/res8/checkpoint.pt")["train_seconds"] == seconds
    state = checkpoint.load(root / "models/res8/checkpoint.pt")
    assert state["images"] == 800
    steps = [int(row["step"]) for row in _tsv(root / "logs/res8/plots/metrics/loss_G.tsv")]
    log_every = 2
    expected = list(range(log_every, state["step"] + 1, log_every))
    assert steps == expected                                  # every step once, in order
    assert "up to date" in dvc(root, "status").stdout
    assert [p.name for p in snaps.glob("snapshot-*.pt")] == [finished[0].name]   # pruned to the final one


def _only_key(folder):
    keys = {p.name.split("-")[1] for p in folder.glob("snapshot-*.pt")}
    assert len(keys) == 1, keys
    return keys.pop()


def _tsv(path):
    lines = path.read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, ln.split("\t"))) for ln in lines[1:] if ln]
