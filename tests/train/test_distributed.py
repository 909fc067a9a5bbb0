"""Multi-process training as torchrun starts it: two CPU processes, the gloo backend."""
import subprocess
import sys

import pytest
import yaml

from pipeline.train import checkpoint
from tests.helpers.project import env_with_project_on_path
from tests.helpers.tiny import TINY_MODEL, make_dataset, tiny_train

pytestmark = pytest.mark.slow


def test_two_processes_train_one_model(tmp_path):
    make_dataset(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": tiny_train(final_res=8), "model": TINY_MODEL}))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "stages.train", "--res", "8"], cwd=tmp_path, capture_output=True, text=True,
                       env=env_with_project_on_path(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "x2" in r.stderr and "all 2 processes hold the same weights" in r.stderr
    state = checkpoint.load(tmp_path / "models/res8/checkpoint.pt")
    assert state["images"] >= 96 and state["options"]["world"] == 2
    assert r.stderr.count("wrote models/res8") == 1                  # rank 0 alone writes


def test_two_processes_train_one_tall_model(tmp_path):
    from tests.train.test_tall import _tall_dataset

    _tall_dataset(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": tiny_train(final_res=8, augment="ada"),
                                                          "model": {**TINY_MODEL, "aspect": 2}}))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "stages.train", "--res", "8"], cwd=tmp_path, capture_output=True, text=True,
                       env=env_with_project_on_path(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "all 2 processes hold the same weights" in r.stderr
    G, res, opts = checkpoint.load_generator(tmp_path / "models/res8")
    assert (G.aspect, opts["aspect"], opts["world"]) == (2, 2, 2)
