"""curves.png: the dvclive series of a stage drawn as a plain chart, from the files a real LossLog writes."""
import math

import numpy as np
import pytest
from PIL import Image

from pipeline.train import curves
from pipeline.train.live_log import PLOTTED, LossLog, write_skipped


def _log(folder, steps=20, without=()):
    log = LossLog(folder, resume_step=None)
    for i in range(1, steps + 1):
        values = {"loss_G": 2 + math.sin(i), "loss_D": 0.7 + 0.01 * i, "real_score": 1.0, "fake_score": -1.5,
                  "augment_p": 0.05 * i, "alpha": min(1.0, i / 10), "kimg": 0.016 * i, "img_per_s": 100 + i}
        log.log(2 * i, {k: v for k, v in values.items() if k not in without})
    log.close()


def _panel(img: np.ndarray, index: int) -> np.ndarray:
    head = img.shape[0] - 2 * curves.PANEL_H
    top, left = head + (index // 2) * curves.PANEL_H, (index % 2) * curves.PANEL_W
    return img[top:top + curves.PANEL_H, left:left + curves.PANEL_W]


def _has_colour(panel: np.ndarray, colour) -> bool:
    return bool((panel == np.array(colour, dtype=np.uint8)).all(axis=2).sum() > 20)


def test_every_logged_series_is_drawn_in_its_panel(tmp_path):
    _log(tmp_path / "logs")
    curves.write(tmp_path / "logs", tmp_path / "curves.png", "train@8: from scratch")
    img = np.asarray(Image.open(tmp_path / "curves.png").convert("RGB"))
    assert img.shape[:2] == (2 * curves.PANEL_H + 36, 2 * curves.PANEL_W)
    for i, (_, _, names) in enumerate(curves.PANELS):
        logged = [n for n in names if n in ("loss_G", "loss_D", "real_score", "fake_score", "augment_p",
                                            "alpha", "img_per_s")]
        for n, colour in zip(logged, curves.COLOURS):
            assert _has_colour(_panel(img, i), colour), (i, n)
        for colour in curves.COLOURS[len(logged):]:
            assert not _has_colour(_panel(img, i), colour), i


def test_x_is_the_images_seen_and_missing_series_leave_a_panel_empty(tmp_path):
    _log(tmp_path / "logs", without=("img_per_s",))
    series = curves.read_series(tmp_path / "logs")
    assert series["loss_D"][0] == (2, pytest.approx(0.71)) and "img_per_s" not in series
    img = np.asarray(curves.render(tmp_path / "logs", "t"))
    assert not any(_has_colour(_panel(img, 3), c) for c in curves.COLOURS)
    assert _has_colour(_panel(img, 0), curves.COLOURS[0])


def test_a_skipped_stage_and_an_empty_folder_draw_without_error(tmp_path):
    write_skipped(tmp_path / "skipped", {"res": 64, "trained": False, "reason": "outside ..."})
    assert sorted(p.stem for p in (tmp_path / "skipped" / "plots" / "metrics").glob("*.tsv")) == sorted(PLOTTED)
    assert curves.read_series(tmp_path / "skipped") == {n: [] for n in PLOTTED}
    for folder in ("skipped", "missing"):
        img = np.asarray(curves.render(tmp_path / folder, "t"))
        assert not any(_has_colour(img, c) for c in curves.COLOURS)


def test_a_later_run_clears_the_skipped_record(tmp_path):
    write_skipped(tmp_path / "logs", {"res": 8, "trained": False, "reason": "r"})
    _log(tmp_path / "logs", steps=3)
    assert not (tmp_path / "logs" / "skipped.json").exists()
    assert len(curves.read_series(tmp_path / "logs")["loss_G"]) == 3


@pytest.mark.parametrize("lo,hi", [(0, 1), (0.63, 3.2), (-2.4, 1.3), (1e-4, 3e-4), (5, 5), (0, 0), (-7, -7),
                                   (100, 1e6), (0.9999, 1.0001), (float("nan"), 1)])
def test_ticks_are_round_evenly_spaced_and_enclose_the_data(lo, hi):
    ticks = curves.nice_ticks(lo, hi)
    assert 3 <= len(ticks) <= 12, ticks
    if math.isfinite(lo):
        assert ticks[0] <= lo <= hi <= ticks[-1]
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 5)), step
    labels = [curves.tick_label(t, ticks) for t in ticks]
    assert len(set(labels)) == len(labels) and "-0" not in labels, labels
