"""`python -m pipeline.bench quality`: trains on a folder of real images, writes its fakes and a grid,
ends with one JSON line holding the figures and every flag, and gives the same figures on a rerun."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from pipeline.core.files import write_csv
from tests.helpers.project import IMAGES, ROOT, env_with_project_on_path

pytestmark = pytest.mark.slow

FLAGS = {"res": "16", "arch": "stylegan2", "cbase": "256", "cmax": "32", "z-dim": "32", "map-layers": "2",
         "batch": "8", "lr": "0.0025", "gamma": "auto", "pl-weight": "2", "mixing": "0.9", "ema-kimg": "10",
         "augment": "none", "kimg": "0.064", "fakes": "12", "seed": "3", "threads": "1"}
FIGURES = ["swd", "swd_levels", "swd_real_baseline", "block4", "block8", "hf", "block4_real", "block8_real",
           "hf_real", "reals"]


def quality(images, out, **overrides):
    flags = {**FLAGS, **overrides}
    args = ["--images", str(images), "--out", str(out)] + [a for k, v in flags.items() for a in (f"--{k}", v)]
    return subprocess.run([sys.executable, "-m", "pipeline.bench", "quality", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env_with_project_on_path(), timeout=900)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The sample's images in nested folders (searched recursively) and one file that is not an image."""
    root = tmp_path_factory.mktemp("art")
    for i, src in enumerate(sorted(IMAGES.glob("*.[jp][pn]g"))[:10]):
        (root / f"set{i % 2}").mkdir(exist_ok=True)
        shutil.copy(src, root / f"set{i % 2}" / src.name)
    (root / "notes.txt").write_text("not an image")
    return root


def test_writes_fakes_grid_and_a_json_line_with_every_flag(images, tmp_path):
    r = quality(images, tmp_path / "a")
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    for key in FIGURES + ["s_per_kimg"]:
        assert key in result, key
    for flag, value in FLAGS.items():
        assert str(result[flag.replace("-", "_")]) in (value, str(float(value)) if value[0].isdigit() else value)
    assert result["reals"] == 10 and result["gamma_value"] == pytest.approx(0.0002 * 16 * 16 / 8)
    assert list(result["swd_levels"]) == ["16"] and result["swd"] > 0 and result["swd_real_baseline"] > 0
    fakes = sorted((tmp_path / "a" / "fakes").glob("*.png"))
    assert len(fakes) == 12 and Image.open(fakes[0]).size == (16, 16)
    assert Image.open(tmp_path / "a" / "grid.png").size[0] > 16
    assert "quality@16" in r.stderr                                          # progress goes to stderr
    # Same seed, CPU, one thread: the same figures again.
    again = quality(images, tmp_path / "b")
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads(again.stdout.strip().splitlines()[-1])
    assert {k: second[k] for k in FIGURES} == {k: result[k] for k in FIGURES}


def test_tall_fakes_grid_and_figures_at_aspect_2(images, tmp_path):
    r = quality(images, tmp_path / "tall", aspect="2", kimg="0.032", fakes="8")
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert (result["aspect"], result["fit"], result["height"], result["width"]) == (2, "letterbox", 16, 8)
    assert result["gamma_value"] == pytest.approx(0.0002 * 16 * 8 / 8)          # H x W, not res^2
    assert list(result["swd_levels"]) == ["16"] and result["swd"] > 0         # keyed by the height
    fakes = sorted((tmp_path / "tall" / "fakes").glob("*.png"))
    assert len(fakes) == 8 and Image.open(fakes[0]).size == (8, 16)           # 8 wide, 16 tall
    with Image.open(tmp_path / "tall" / "grid.png") as grid:
        assert grid.height == 2 * grid.width                                     # 8 x 8 tall cells
    cropped = quality(images, tmp_path / "crop", aspect="2", fit="crop", kimg="0.016", fakes="4")
    assert cropped.returncode == 0, cropped.stderr[-3000:]
    assert json.loads(cropped.stdout.strip().splitlines()[-1])["fit"] == "crop"


def test_an_index_csv_chooses_the_images(images, tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()
    chosen = sorted(p for p in images.rglob("*") if p.suffix in (".png", ".jpg"))[:4]
    for p in chosen:
        shutil.copy(p, folder / p.name)
    shutil.copy(chosen[0], folder / "not-listed.png")
    write_csv(folder / "index.csv", ["path"], [{"path": p.name} for p in chosen])
    r = quality(folder, tmp_path / "out", fakes="4")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["reals"] == 4


def test_no_images_and_bad_flags_are_one_clear_line(tmp_path):
    (tmp_path / "empty").mkdir()
    r = quality(tmp_path / "empty", tmp_path / "out")
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("Error: --images")
    assert "Traceback" not in r.stderr
    r = quality(tmp_path / "empty", tmp_path / "out", gamma="lots")
    assert r.returncode == 2 and "Invalid value for '--gamma'" in r.stderr and "Usage:" in r.stderr
    r = quality(tmp_path / "empty", tmp_path / "out", augment="sometimes")
    assert r.returncode == 2 and "Usage:" in r.stderr
