"""`python -m stages.generate` on a model really trained (tiny, 8 -> 16) in a temp folder."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pipeline.core.errors import UserError
from pipeline.evaluate import sampling
from pipeline.train.checkpoint import load_generator
from tests.helpers.project import ROOT, env_with_project_on_path
from tests.helpers.tiny import tiny_models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tiny_models(tmp_path_factory)


def generate(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stages.generate", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env_with_project_on_path())


def test_writes_images_grid_mixing_and_interpolation(models, tmp_path):
    out = tmp_path / "out"
    r = generate("--checkpoint", models / "res16", "--seeds", "0-3,10", "--trunc", "0.7", "--out", out, "--grid",
                 "--mix-rows", "20,21", "--mix-cols", "0-2", "--interpolate", "0,10", "--steps", "5",
                 "--device", "cpu", "--batch", "2")
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["grid.png", "interpolation_0-10.png", "seed0000.png", "seed0001.png", "seed0002.png",
                     "seed0003.png", "seed0010.png", "style_mixing.png"]
    G, res, _ = load_generator(models / "res16")
    want = sampling.images_from_seeds(G, [0, 1, 2, 3, 10], 16, psi=0.7)
    for s, img in zip([0, 1, 2, 3, 10], want):
        got = np.asarray(Image.open(out / f"seed{s:04d}.png"))
        assert got.shape == (16, 16, 3) and np.abs(got.astype(int) - img).max() <= 1
    assert Image.open(out / "grid.png").size == (3 * 64, 2 * 64)           # 5 seeds: 2 rows of 3
    assert Image.open(out / "style_mixing.png").size == (4 * 64, 3 * 64)   # (1 + 2 B) x (1 + 3 A)
    strip = np.asarray(Image.open(out / "interpolation_0-10.png"))
    assert strip.shape == (64, 5 * 64, 3)
    # the strip starts at seed 0 and ends at seed 10
    assert np.abs(strip[::4, :64:4].astype(int) - np.asarray(Image.open(out / "seed0000.png"))).max() <= 1
    assert np.abs(strip[::4, -64::4].astype(int) - np.asarray(Image.open(out / "seed0010.png"))).max() <= 1


def test_a_checkpoint_file_and_random_noise_seeded_per_image(models, tmp_path):
    """Random noise depends on an image's own seed, not on the others asked for with it."""
    sampling.generate(models / "res8" / "checkpoint.pt", seeds="2-4", out=tmp_path / "a", noise="random",
                      device="cpu")
    sampling.generate(models / "res8" / "checkpoint.pt", seeds="4", out=tmp_path / "b", noise="random",
                      device="cpu")
    a, b = (np.asarray(Image.open(tmp_path / d / "seed0004.png")) for d in "ab")
    assert a.shape == (8, 8, 3) and np.array_equal(a, b)
    const = np.asarray(sampling.images_from_seeds(load_generator(models / "res8")[0], [4], 8)[0])
    assert not np.array_equal(a, const)


@pytest.mark.parametrize("args,message", [
    (["--seeds", "7-1"], "runs backwards"),
    (["--seeds", "1;2"], "not a list of seeds"),
    (["--interpolate", "1,2,3"], "two seeds"),
    (["--mix-rows", "1-2"], "go together"),
    (["--grid"], "--grid needs --seeds"),
    ([], "nothing to do"),
])
def test_bad_arguments_are_one_line_errors(models, tmp_path, args, message):
    with pytest.raises(UserError, match=message):
        sampling.generate(models / "res16", out=tmp_path, **_kwargs(args))


def _kwargs(args: list[str]) -> dict:
    names = {"--seeds": "seeds", "--interpolate": "interpolate", "--mix-rows": "mix_rows"}
    kw = {names[k]: v for k, v in zip(args[::2], args[1::2]) if k in names}
    return {**kw, "grid": "--grid" in args}


def test_missing_or_skipped_checkpoint_from_the_command_line(models, tmp_path):
    skipped = models / "res32"
    assert (skipped / "skipped.json").exists()
    for path, message in ((tmp_path / "nowhere", "not found"), (skipped, "holds no model")):
        r = generate("--checkpoint", path, "--seeds", "0-1", "--out", tmp_path / "o")
        assert r.returncode == 1
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("generate: error:") and message in lines[0], r.stderr
    r = generate("--checkpoint", models / "res16", "--seeds", "0-x", "--out", tmp_path / "o")
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "generate: error: --seeds: '0-x' is not a list of seeds (examples: 0-7, 1,5,9, 0-3,10)"]
    assert not (tmp_path / "o").exists()
