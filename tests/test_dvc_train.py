"""Real `dvc repro` through training in a temporary git repo: the chain, an experiment, a kill and resume."""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import checkpoint
from tests.dvc_project import dvc, env, make_repo, ran_stages
from tests.tiny import TINY_MODEL, tiny_schedule

pytestmark = pytest.mark.slow

TINY = {"unpack.workers": 2, "faces.workers": 2, "train.final_res": 16, "train.log_every": 2,
        "train.snapshot_kimg": 0.016, "train.device": "cpu", "train.schedule": tiny_schedule(0.032),
        **{f"model.{k}": v for k, v in TINY_MODEL.items()}}
TRAIN_STAGES = [f"train@{r}" for r in (8, 16, 32, 64, 128, 256)]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = make_repo(tmp_path_factory.mktemp("repo"), TINY)
    r = dvc(root, "repro")
    assert ran_stages(r.stdout)[:4] == ["unpack", "flatten", "faces", "review"]
    assert set(TRAIN_STAGES) <= set(ran_stages(r.stdout))
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "trained"], cwd=root, check=True)
    return root


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
    assert ran and all(s.startswith("train@") or s == "evaluate" for s in ran), ran
    assert (repo / "models/res8/skipped.json").exists()
    state = checkpoint.load(repo / "models/res16/checkpoint.pt")
    assert state["prev_images"] == 0                                    # from scratch at 16
    subprocess.run(["git", "checkout", "-q", "."], cwd=repo, check=True)
    dvc(repo, "checkout", "-q")


def _train_pids(res: int) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"stages.train" in cmd and str(res).encode() in cmd:
                pids.append(int(proc.name))
    return pids


def kill_training_at_random(root: Path, res: int, rng: random.Random, timeout: float = 300) -> bool:
    """Start `dvc repro`, SIGKILL its training process at a random moment once it trains (it has
    written a snapshot in this run); True if it was killed."""
    snaps = root / "models" / "snapshots" / f"res{res}"
    before = {p.name for p in snaps.glob("snapshot-*.pt")}
    p = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=root, env=env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, killed, seen_at = time.time() + timeout, False, None
    delay = rng.uniform(0.0, 1.5)
    while time.time() < deadline and p.poll() is None and not killed:
        pids = _train_pids(res)
        if seen_at is None and {p.name for p in snaps.glob("snapshot-*.pt")} - before:
            seen_at = time.time()
        if seen_at is not None and time.time() - seen_at >= delay:
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
                killed = True
        time.sleep(0.02)
    out, _ = p.communicate(timeout=timeout)
    if killed:
        assert p.returncode != 0, out                  # dvc repro reports the killed stage as failed
    return killed


def test_killed_training_resumes_every_time(tmp_path):
    root = make_repo(tmp_path, {**TINY, "train.final_res": 8, "train.schedule": tiny_schedule(0.4)})
    dvc(root, "repro", "review")
    rng = random.Random(0)
    kills = sum(kill_training_at_random(root, 8, rng) for _ in range(5))
    assert kills == 5
    r = dvc(root, "repro")
    assert "resuming from" in r.stdout + r.stderr
    state = checkpoint.load(root / "models/res8/checkpoint.pt")
    assert state["images"] >= 800
    steps = [int(row["step"]) for row in _tsv(root / "logs/res8/plots/metrics/loss_G.tsv")]
    log_every = 2
    expected = list(range(log_every, state["step"] + 1, log_every))
    assert steps[: len(expected)] == expected and steps[-1] == state["step"]   # every step once, in order
    assert "up to date" in dvc(root, "status").stdout


def _tsv(path):
    lines = path.read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, ln.split("\t"))) for ln in lines[1:] if ln]
