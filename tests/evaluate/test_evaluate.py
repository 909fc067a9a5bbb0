"""The evaluate stage and the sampling behind it, on a model really trained (tiny, 8 -> 16) in a temp folder."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.core import params
from pipeline.core.errors import UserError
from pipeline.evaluate import fid, sampling
from pipeline.evaluate import stage as evaluate
from pipeline.evaluate.artefacts import artefacts
from pipeline.train.checkpoint import load_generator
from tests.helpers.tiny import train_tiny

ROWS, COLS = 2, 3
TINY_EVAL = {"grid_rows": ROWS, "grid_cols": COLS, "device": "cpu", "fid_images": 16}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A folder laid out like the project, the working directory of every test in this module."""
    root = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        train_tiny(root)
        yield root


@pytest.fixture(scope="module")
def evaluated(project):
    ep = params.parse("eval", TINY_EVAL)
    return evaluate.run(ep, "fullbody", "letterbox", models=project / "models", data=project / "data" / "dataset",
                        out=project / "eval")


@pytest.fixture(scope="module")
def G16(project):
    return load_generator(project / "models" / "res16")[0]


def test_metrics_hold_the_interface_keys_and_the_whole_runs_figures(project, evaluated):
    written = json.loads((project / "eval" / "metrics.json").read_text())
    assert written == evaluated
    for key in ("swd", "swd_levels", "swd_real_baseline", "swd_images", "images_seen", "train_seconds",
                "img_per_s", "params_G", "params_D"):
        assert key in written, key
    assert "fid" not in written and "kid" not in written            # no Inception weights configured
    assert written["res"] == 16 and list(written["swd_levels"]) == ["16"]
    assert written["swd"] == pytest.approx(written["swd_levels"]["16"]) and written["swd"] > 0
    # 12 reals, swd_images 256: all 12 per side; the baseline compares two disjoint halves of 6
    assert written["swd_images"] == 12 and written["swd_baseline_images"] == 6
    assert written["swd_real_baseline"] > 0
    # the artefact figures are those of the same fakes and reals the SWD compared
    G, res, _ = load_generator(project / "models/res16")
    ep = params.parse("eval", TINY_EVAL)
    fakes = sampling.images_from_seeds(G, range(ep.seed, ep.seed + 12), 16, psi=ep.truncation, noise="random",
                                       noise_seed=ep.seed)
    assert {k: written[k] for k in ("block4", "block8", "hf")} == artefacts(fakes)
    assert all(written[f"{k}_real"] > 0 for k in ("block4", "block8", "hf"))
    stats16 = json.loads((project / "models/res16/stats.json").read_text())
    stats8 = json.loads((project / "models/res8/stats.json").read_text())
    assert written["images_seen"] == stats8["images_seen"] + stats16["images_seen"] == stats16["total_images"]
    assert written["train_seconds"] == pytest.approx(stats16["total_train_seconds"])
    assert written["params_G"] == stats16["params_G"] and written["params_D"] == stats16["params_D"]


def test_grids_have_the_documented_sizes(project, evaluated):
    folder = project / "eval" / "grids"
    assert sorted(p.name for p in folder.iterdir()) == ["reals.png", "res16.png", "res8.png", "style_mixing.png",
                                                         "truncation.png", "uncurated.png"]
    cell = 64      # 8 px and 16 px images are enlarged to 64 px cells
    sizes = {"uncurated.png": (COLS, ROWS), "res8.png": (COLS, ROWS), "res16.png": (COLS, ROWS),
             "reals.png": (COLS, ROWS),
             "style_mixing.png": (COLS + 1, ROWS + 1), "truncation.png": (len(sampling.TRUNCATION_PSIS), ROWS)}
    for name, (cols, rows) in sizes.items():
        assert Image.open(folder / name).size == (cols * cell, rows * cell), name
    assert sampling.TRUNCATION_PSIS[0] == -1 and sampling.TRUNCATION_PSIS[-1] == 1


def test_grid_cells_are_the_seeds_images_enlarged(project, evaluated):
    """res8.png shows the res8 model's images of seeds 0 .. ROWS*COLS-1, row-major, each pixel 8x8."""
    G8, res, _ = load_generator(project / "models" / "res8")
    assert res == 8
    want = sampling.images_from_seeds(G8, range(ROWS * COLS), 8)
    got = np.asarray(Image.open(project / "eval" / "grids" / "res8.png"))
    cells = got[::8, ::8].reshape(ROWS, 8, COLS, 8, 3).transpose(0, 2, 1, 3, 4).reshape(ROWS * COLS, 8, 8, 3)
    assert np.array_equal(cells, want)
    assert np.array_equal(np.asarray(Image.open(project / "eval" / "grids" / "uncurated.png")),
                          np.asarray(Image.open(project / "eval" / "grids" / "res16.png")))


def test_reals_grid_shows_the_reals_as_training_packed_them(project, evaluated):
    """reals.png: ROWS*COLS of the reals at the final model's 16 px, letterboxed as training packed them,
    each pixel 4x4 as in the fakes' grids; every cell one distinct real image."""
    packed = evaluate.real_images(project / "data" / "dataset", "fullbody", 16, "letterbox", (255, 255, 255))
    got = np.asarray(Image.open(project / "eval" / "grids" / "reals.png"))
    cells = got[::4, ::4].reshape(ROWS, 16, COLS, 16, 3).transpose(0, 2, 1, 3, 4).reshape(ROWS * COLS, 16, 16, 3)
    found = [next(i for i, real in enumerate(packed) if np.array_equal(real, cell)) for cell in cells]
    assert found == sorted(set(found)) and len(found) == ROWS * COLS


def test_style_mixing_with_one_seed_on_both_sides_reproduces_it(G16):
    for band in sampling.BANDS:
        img = np.asarray(sampling.style_mixing_grid(G16, 16, [5], [5], band, min_cell=16))
        corner, top, left, body = img[:16, :16], img[:16, 16:], img[16:, :16], img[16:, 16:]
        assert (corner == 255).all()
        assert np.array_equal(top, left) and np.array_equal(body, top), band


def test_style_mixing_takes_the_band_from_the_rows(G16):
    a, b = [1, 2], [7]
    ws = sampling.mixing_ws(G16, 16, a, b, "coarse")
    ws_a, ws_b = sampling.ws_from_seeds(G16, a), sampling.ws_from_seeds(G16, b)
    assert ws.shape == (2, *ws_a.shape[1:])
    assert torch.equal(ws[:, :4], ws_b[:, :4].expand(2, -1, -1)) and torch.equal(ws[:, 4:], ws_a[:, 4:])
    img = np.asarray(sampling.style_mixing_grid(G16, 16, a, b, "coarse", min_cell=16)).astype(int)
    assert np.abs(img[16:, 16:32] - img[:16, 16:32]).mean() > 1       # the cell is not A unchanged
    assert sampling.band_slice(G16, 16, "fine") == slice(6, 6)          # no 64 px styles in a 16 px model


def test_truncation_grid_columns(G16):
    seeds = [3, 4]
    img = np.asarray(sampling.truncation_grid(G16, 16, seeds, psis=(0.0, 1.0), min_cell=16))
    assert img.shape == (2 * 16, 2 * 16, 3)
    assert np.array_equal(img[:16, :16], img[16:, :16])                  # psi 0: every seed is the average
    psi1 = img[:, 16:].reshape(2, 16, 16, 3).astype(int)                 # psi 1: the seeds' own images
    assert np.abs(psi1 - sampling.images_from_seeds(G16, seeds, 16)).max() <= 1
    assert np.abs(psi1 - img[:, :16].reshape(2, 16, 16, 3)).mean() > 5


@pytest.mark.parametrize("text,want", [("0-7", list(range(8))), ("1,5,9", [1, 5, 9]),
                                       ("0-3,10", [0, 1, 2, 3, 10]), (" 4 ", [4])])
def test_parse_seeds(text, want):
    assert sampling.parse_seeds(text) == want


@pytest.mark.parametrize("text", ["", "a", "3-1", "1,,2", "-2", "1-2-3", "0-999999"])
def test_parse_seeds_rejects_bad_input(text):
    with pytest.raises(UserError, match="--seeds"):
        sampling.parse_seeds(text)


def test_seed_images_do_not_depend_on_the_batch(G16):
    one = sampling.images_from_seeds(G16, [2, 3, 4], 16, batch=1)
    three = sampling.images_from_seeds(G16, [2, 3, 4], 16, batch=3)
    alone = sampling.images_from_seeds(G16, [4], 16)
    # float rounding may differ with the batch shape, by one grey level at most
    assert np.abs(one.astype(int) - three).max() <= 1 and np.abs(alone.astype(int) - three[2:]).max() <= 1
    assert np.abs(one.astype(int) - sampling.images_from_seeds(G16, [5, 6, 7], 16)).mean() > 5


def test_fid_and_kid_with_a_feature_net(project, tmp_path):
    net = fid.make_tiny_feature_net(tmp_path / "feature_net.pt")
    ep = params.parse("eval", {**TINY_EVAL, "inception_weights": str(net)})
    result = evaluate.run(ep, "fullbody", "letterbox", models=project / "models",
                          data=project / "data" / "dataset", out=tmp_path / "eval")
    assert result["fid"] > 0 and np.isfinite(result["kid"])
    assert result["fid_images"] == 16 and result["fid_reals"] == 12
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["fid"] == result["fid"]


def test_missing_inception_weights_is_one_line_naming_the_param(project, tmp_path):
    ep = params.parse("eval", {**TINY_EVAL, "inception_weights": str(tmp_path / "nowhere.pt")})
    with pytest.raises(UserError, match="eval.inception_weights") as e:
        evaluate.run(ep, "fullbody", "letterbox", models=project / "models",
                     data=project / "data" / "dataset", out=tmp_path / "eval")
    assert "\n" not in str(e.value)


def test_few_images_warn_and_swd_images_is_capped(project, tmp_path, caplog):
    ep = params.parse("eval", {**TINY_EVAL, "swd_images": 4})
    with caplog.at_level(logging.WARNING, logger="evaluate"):
        result = evaluate.run(ep, "fullbody", "letterbox", models=project / "models",
                              data=project / "data" / "dataset", out=tmp_path / "eval")
    assert result["swd_images"] == 4 and result["swd_baseline_images"] == 4
    assert "too few to rank runs" in caplog.text and "real-vs-real noise" in caplog.text


def test_same_seed_same_metrics(project, evaluated, tmp_path):
    ep = params.parse("eval", TINY_EVAL)
    again = evaluate.run(ep, "fullbody", "letterbox", models=project / "models",
                         data=project / "data" / "dataset", out=tmp_path / "eval")
    assert again == evaluated
    other = evaluate.run(params.parse("eval", {**TINY_EVAL, "seed": 1}), "fullbody", "letterbox",
                         models=project / "models", data=project / "data" / "dataset", out=tmp_path / "eval1")
    assert other["swd"] != evaluated["swd"]


def test_no_trained_model_is_a_user_error(tmp_path):
    (tmp_path / "models" / "res8").mkdir(parents=True)
    (tmp_path / "models" / "res8" / "skipped.json").write_text("{}")
    with pytest.raises(UserError, match="no trained model"):
        evaluate.run(params.parse("eval", TINY_EVAL), "fullbody", "letterbox", models=tmp_path / "models",
                     data=tmp_path / "data" / "dataset", out=tmp_path / "eval")


def test_a_square_model_evaluated_at_aspect_2_is_one_line(project, tmp_path):
    ep = params.parse("eval", TINY_EVAL)
    with pytest.raises(UserError) as e:
        evaluate.run(ep, "fullbody", "letterbox", models=project / "models", data=project / "data" / "dataset",
                     out=tmp_path / "eval", aspect=2)
    message = str(e.value)
    assert "\n" not in message and "res16" in message and "model.aspect 1" in message and "says 2" in message
    assert not (tmp_path / "eval").exists()                     # stopped before writing anything
