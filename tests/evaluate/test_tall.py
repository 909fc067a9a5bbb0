"""Evaluate and generate on a model really trained tall (model.aspect 2, tiny, 8 -> 16 -> 32) in a temp folder:
grids of H x W cells, SWD levels keyed by height, SWD skipped for an 8 x 4 model, PNGs W x H, and a model
of one aspect evaluated at the other stopping with one line. Runs once the tall networks (part A of issue
16) are in: until then there is no tall Generator to train."""
from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pipeline.core import params
from pipeline.core.errors import UserError
from pipeline.evaluate import sampling
from pipeline.evaluate import stage as evaluate
from pipeline.train.checkpoint import load_generator
from tests.helpers.project import ROOT, env_with_project_on_path
from tests.helpers.tiny import make_dataset, tiny_params

ROWS, COLS = 2, 3
TINY_EVAL = {"grid_rows": ROWS, "grid_cols": COLS, "device": "cpu", "fid_images": 8}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """models/res8, res16, res32 trained at model.aspect 2 (8 x 4, 16 x 8, 32 x 16) from letterboxed
    flat-colour squares; the working directory of every test here."""
    from pipeline.train.stage import run as train

    root = tmp_path_factory.mktemp("tall")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        make_dataset(root)
        tp, mpar = tiny_params(train={"final_res": 32}, model={"aspect": 2})
        for res in params.RESOLUTIONS:
            train(res, tp, mpar, models=root / "models", logs=root / "logs", data=root / "data" / "dataset")
        yield root


def run_eval(project, out, final_res=None, aspect=2, **eval_params):
    ep = params.parse("eval", {**TINY_EVAL, **eval_params})
    return evaluate.run(ep, "fullbody", "letterbox", models=project / "models", data=project / "data" / "dataset",
                        out=out, final_res=final_res, aspect=aspect)


def test_the_tall_models_draw_h_by_w(project):
    for res in (8, 16, 32):
        G, got, _ = load_generator(project / "models" / f"res{res}")
        assert got == res and G.aspect == 2
        assert sampling.images_from_seeds(G, [0, 1], res).shape == (2, res, res // 2, 3)


def test_evaluate_a_tall_model(project, tmp_path):
    out = tmp_path / "eval"
    result = run_eval(project, out)
    assert json.loads((out / "metrics.json").read_text()) == result
    assert result["res"] == 32 and list(result["swd_levels"]) == ["32", "16"]   # heights, as the stages name it
    assert result["swd"] == pytest.approx(np.mean(list(result["swd_levels"].values())), abs=1e-3)
    assert result["swd_images"] == 12 and result["swd_real_baseline"] > 0
    for key in ("block4", "block8", "hf", "block4_real", "block8_real", "hf_real"):
        assert np.isfinite(result[key]), key
    # cells 64 px tall and 32 wide at every resolution (8 x 4 enlarged 8x, 16 x 8 4x, 32 x 16 2x)
    grids = out / "grids"
    sizes = {"uncurated.png": (COLS, ROWS), "res8.png": (COLS, ROWS), "res16.png": (COLS, ROWS),
             "res32.png": (COLS, ROWS), "reals.png": (COLS, ROWS), "style_mixing.png": (COLS + 1, ROWS + 1),
             "truncation.png": (len(sampling.TRUNCATION_PSIS), ROWS)}
    assert sorted(p.name for p in grids.iterdir()) == sorted(sizes)
    for name, (cols, rows) in sizes.items():
        assert Image.open(grids / name).size == (cols * 32, rows * 64), name
    G8 = load_generator(project / "models" / "res8")[0]
    cells = np.asarray(Image.open(grids / "res8.png"))[::8, ::8]
    cells = cells.reshape(ROWS, 8, COLS, 4, 3).transpose(0, 2, 1, 3, 4).reshape(ROWS * COLS, 8, 4, 3)
    assert np.array_equal(cells, sampling.images_from_seeds(G8, range(ROWS * COLS), 8))
    reals = evaluate.real_images(project / "data" / "dataset", "fullbody", 32, "letterbox", (255, 255, 255), 2)
    assert reals.shape == (12, 32, 16, 3)


def test_fid_of_a_tall_model(project, tmp_path):
    from pipeline.evaluate import fid

    net = fid.make_tiny_feature_net(tmp_path / "net.pt")
    result = run_eval(project, tmp_path / "eval", inception_weights=str(net))
    assert result["fid"] > 0 and np.isfinite(result["kid"]) and result["fid_images"] == 8


def test_a_model_too_small_for_swd_skips_it_with_the_reason(project, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="evaluate"):
        result = run_eval(project, tmp_path / "eval", final_res=8)
    assert result["res"] == 8
    assert not {"swd", "swd_levels", "swd_images", "swd_real_baseline"} & set(result)
    assert "block4" in result and "hf_real" in result
    assert "SWD skipped: images of 8x4 px are too small for 7x7 SWD patches" in caplog.text
    assert Image.open(tmp_path / "eval" / "grids" / "uncurated.png").size == (COLS * 32, ROWS * 64)


def test_a_tall_model_evaluated_as_square_is_one_line(project, tmp_path):
    with pytest.raises(UserError) as e:
        run_eval(project, tmp_path / "eval", aspect=1)
    message = str(e.value)
    assert "\n" not in message and "res32" in message and "model.aspect 2" in message
    assert not (tmp_path / "eval").exists()                     # stopped before writing anything


def test_generate_writes_pngs_w_by_h_from_the_checkpoints_own_aspect(project, tmp_path):
    """No params: python -m stages.generate draws the checkpoint's shape, here 16 wide and 32 tall."""
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "stages.generate", "--checkpoint", str(project / "models" / "res32"),
                        "--seeds", "0-2", "--grid", "--mix-rows", "5,6", "--mix-cols", "0-2", "--interpolate", "0,2",
                        "--steps", "4", "--device", "cpu", "--out", str(out)], cwd=ROOT, capture_output=True,
                       text=True, env=env_with_project_on_path())
    assert r.returncode == 0, r.stderr
    G = load_generator(project / "models" / "res32")[0]
    want = sampling.images_from_seeds(G, [0, 1, 2], 32)
    for s in range(3):
        png = Image.open(out / f"seed{s:04d}.png")
        assert png.size == (16, 32)                              # PIL: width x height
        assert np.abs(np.asarray(png).astype(int) - want[s]).max() <= 1
    assert Image.open(out / "grid.png").size == (2 * 32, 2 * 64)           # 3 seeds: 2 rows of 2, cells 64 x 32
    assert Image.open(out / "style_mixing.png").size == (4 * 32, 3 * 64)   # (1 + 2 B) x (1 + 3 A)
    strip = np.asarray(Image.open(out / "interpolation_0-2.png"))
    assert strip.shape == (64, 4 * 32, 3)
    assert np.abs(strip[::2, :32:2].astype(int) - want[0]).max() <= 1
    assert np.abs(strip[::2, -32::2].astype(int) - want[2]).max() <= 1
    mixing = np.asarray(Image.open(out / "style_mixing.png"))
    assert (mixing[:64, :32] == 255).all()                      # the blank corner is one tall cell
