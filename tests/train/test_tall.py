"""model.aspect 2 in training: data brought to 1:2, tall stages that grow, resume and learn, the aspect
recorded in options.json and the checkpoint, and one clear line when a model is used at the other shape."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.core.errors import UserError
from pipeline.core.files import write_csv
from pipeline.train import checkpoint
from pipeline.train.dataset import ImageSource, pack, pack_array, to_aspect
from pipeline.train.schedule import stage_plan
from pipeline.train.stage import run as train
from pipeline.train.trainer import Runtime, Trainer
from tests.helpers.tiny import make_dataset, tiny_params

CPU = torch.device("cpu")
RED, WHITE = (200, 30, 30), (255, 255, 255)


def _solid(w, h):
    return Image.new("RGB", (w, h), RED)


def _red(img):
    return np.all(np.asarray(img) == RED, axis=2)


@pytest.mark.parametrize("size, padded, box", [
    ((40, 40), (40, 80), (0, 20, 40, 60)),      # square: bands above and below
    ((60, 30), (60, 120), (0, 45, 60, 75)),     # wide: much more above and below
    ((20, 40), (20, 40), (0, 0, 20, 40)),       # already 1:2: untouched
    ((30, 40), (30, 60), (0, 10, 30, 50)),      # between: still above and below
    ((10, 40), (20, 40), (5, 0, 15, 40)),       # taller than 1:2: bands left and right
])
def test_letterbox_to_1_2_pads_with_the_background_where_the_image_is_short(size, padded, box):
    out = to_aspect(_solid(*size), "letterbox", 2, WHITE)
    assert out.size == padded
    red = _red(out)
    left, top, right, bottom = box
    assert red[top:bottom, left:right].all() and red.sum() == size[0] * size[1]   # every pixel kept, centred
    assert np.all(np.asarray(out)[~red] == WHITE)


@pytest.mark.parametrize("size, cropped", [((40, 40), (20, 40)), ((60, 30), (15, 30)), ((20, 40), (20, 40)),
                                           ((10, 40), (10, 20))])
def test_crop_to_1_2_keeps_the_centre(size, cropped):
    w, h = size
    ramp = Image.fromarray(np.tile(np.arange(w, dtype=np.uint8)[None, :, None], (h, 1, 3)))
    ramp.putpixel((w // 2, h // 2), (255, 0, 0))
    out = to_aspect(ramp, "crop", 2)
    assert out.size == cropped
    cw, ch = cropped
    assert np.asarray(out)[0, 0, 1] == (w - cw) // 2         # the columns of the middle
    marks = np.argwhere(np.all(np.asarray(out) == (255, 0, 0), axis=2))
    assert marks.tolist() == [[h // 2 - (h - ch) // 2, w // 2 - (w - cw) // 2]]      # the centre stays


def test_square_fit_is_as_before():
    assert to_aspect(_solid(60, 30), "letterbox", 1).size == (60, 60)
    assert to_aspect(_solid(60, 30), "crop", 1).size == (30, 30)


def test_packed_arrays_are_tall_and_their_cache_names_carry_the_shape(tmp_path):
    folder = make_dataset(tmp_path, n=3)
    tall = pack(folder, 16, "letterbox", cache=tmp_path / "cache", aspect=2)
    square = pack(folder, 16, "letterbox", cache=tmp_path / "cache", aspect=1)
    assert tall != square and tall.name.endswith("-16x8.npy") and square.name.endswith("-16x16.npy")
    arr = np.load(tall)
    assert arr.shape == (3, 16, 8, 3)
    # square images: white bands above and below (Lanczos rings a little next to the picture)
    assert (arr[:, :3] >= 250).all() and (arr[:, -3:] >= 250).all() and (arr[:, 6:10, :, 1] < 120).all()
    assert pack_array([folder / "img0.png"], 32, "crop", aspect=2).shape == (1, 32, 16, 3)
    src = ImageSource(arr, CPU)
    assert src.batch(4, torch.Generator().manual_seed(0)).shape == (4, 3, 16, 8)


def _tall_dataset(root, n=12):
    """data/dataset/fullbody of 1:2 flat-colour images (20 x 40 px)."""
    folder = root / "data" / "dataset" / "fullbody"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        c = np.array(((220, 40, 40), (200, 60, 30), (240, 90, 60))[i % 3], dtype=np.float32)
        Image.fromarray(np.clip(c + rng.normal(0, 6, (40, 20, 3)), 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
        rows.append({"path": f"{i}.png", "id": f"fb-{i}", "source": "t", "asset": f"a{i}", "width": 20, "height": 40})
    write_csv(folder / "index.csv", list(rows[0]), rows)
    return folder


def _run(root, res, tp, mp):
    return train(res, tp, mp, models=root / "models", logs=root / "logs", data=root / "data" / "dataset")


@pytest.mark.parametrize("arch", ["stylegan", "stylegan2"])
def test_tall_stages_grow_record_their_aspect_and_round_trip(tmp_path, arch):
    _tall_dataset(tmp_path)
    tp, mp = tiny_params(train={"final_res": 16}, model={"arch": arch, "aspect": 2})
    for res in (8, 16):
        assert _run(tmp_path, res, tp, mp)["trained"]
    folder = tmp_path / "models" / "res16"
    assert json.loads((folder / "options.json").read_text())["aspect"] == 2
    state = checkpoint.load(folder / "checkpoint.pt")
    assert state["aspect"] == 2 and state["prev_images"] > 0                     # grown from res8
    with Image.open(folder / "samples.png") as im:
        assert im.height == 2 * im.width                                           # a 4 x 4 grid of tall cells
    G, res, _ = checkpoint.load_generator(folder)
    assert (G.aspect, res) == (2, 16)
    z = torch.randn(3, 32, generator=torch.Generator().manual_seed(0))
    again = Trainer(stage_plan(16, tp), tp, mp, Runtime(CPU)).G_ema
    again.load_state_dict(state["G_ema"])
    with torch.no_grad():
        img = G(z, 16, noise_mode="const")
        assert img.shape == (3, 3, 16, 8)
        assert torch.equal(img, again.eval()(z, 16, noise_mode="const"))          # same pixels after the trip
    # growing a square stage from the tall res16 (params.yaml changed back to 1) is one line
    tp32, mp_square = tiny_params(train={"final_res": 32}, model={"arch": arch, "aspect": 1})
    with pytest.raises(UserError, match=r"^models/res16 was trained at model.aspect 2 \(tall\); params.yaml says 1: "
                                        r"set model.aspect to 2 or retrain$"):
        _run(tmp_path, 32, tp32, mp_square)


def test_a_tall_snapshot_resumes_bit_for_bit_and_is_refused_as_square(tmp_path):
    from tests.train.test_training import assert_same_state

    folder = _tall_dataset(tmp_path)
    src = ImageSource(pack(folder, 8, "letterbox", cache=tmp_path / "cache", aspect=2), CPU)
    tp, mp = tiny_params(train={"r1_interval": 2, "augment": "ada"}, model={"arch": "stylegan2", "aspect": 2})

    def make(m=mp):
        return Trainer(stage_plan(8, tp), tp, m, Runtime(CPU))

    straight = make()
    for _ in range(4):
        straight.step(src)
    first = make()
    for _ in range(2):
        first.step(src)
    checkpoint.save(tmp_path / "snap.pt", first.state_dict())
    resumed = make()
    resumed.load_state_dict(checkpoint.load(tmp_path / "snap.pt"))
    for _ in range(2):
        resumed.step(src)
    a, b = straight.state_dict(), resumed.state_dict()
    a.pop("train_seconds"), b.pop("train_seconds")
    assert_same_state(a, b)
    _, square = tiny_params(model={"arch": "stylegan2", "aspect": 1})
    with pytest.raises(UserError, match=r"^that snapshot was trained at model.aspect 2 \(tall\); params.yaml says 1"):
        make(square).load_state_dict(checkpoint.load(tmp_path / "snap.pt"))


def test_checkpoints_from_before_aspect_are_square(tmp_path):
    make_dataset(tmp_path)
    tp, mp = tiny_params(train={"final_res": 8})
    _run(tmp_path, 8, tp, mp)
    path = tmp_path / "models/res8/checkpoint.pt"
    state = checkpoint.load(path)
    assert state["aspect"] == 1
    del state["aspect"]
    checkpoint.save(path, state)
    G, _, _ = checkpoint.load_generator(path)
    assert G.aspect == 1 and G(torch.randn(2, 32), 8).shape == (2, 3, 8, 8)
    checkpoint.check_aspect(checkpoint.aspect_of(state), 1, "models/res8")     # no error
    with pytest.raises(UserError, match=r"^models/res8 was trained at model.aspect 1 \(square\); params.yaml says 2"):
        checkpoint.check_aspect(checkpoint.aspect_of(state), 2, "models/res8")


def test_tall_from_scratch_at_the_final_resolution(tmp_path):
    _tall_dataset(tmp_path)
    tp, mp = tiny_params(train={"final_res": 16, "progressive": False, "scratch_kimg": 0.032},
                         model={"aspect": 2})
    assert not _run(tmp_path, 8, tp, mp)["trained"]
    assert _run(tmp_path, 16, tp, mp)["trained"]
    G, res, _ = checkpoint.load_generator(tmp_path / "models/res16")
    assert G(torch.randn(2, 32), res).shape == (2, 3, 16, 8)


def test_faces_at_aspect_2_is_one_clear_error(tmp_path):
    make_dataset(tmp_path, kind="faces")
    tp, mp = tiny_params(train={"dataset": "faces"}, model={"aspect": 2})
    with pytest.raises(UserError, match=r"^train.dataset faces needs model.aspect 1: face crops are square"):
        _run(tmp_path, 8, tp, mp)
    assert not (tmp_path / "models").exists()           # before anything is written


def test_auto_r1_gamma_of_a_tall_stage_counts_its_pixels():
    from pipeline.train.schedule import StagePlan

    tp, mp = tiny_params(train={"final_res": 16, "r1_gamma": "auto"}, model={"aspect": 2})
    for res, batch in ((8, 8), (16, 4)):
        t = Trainer(StagePlan(res, True, "test", None, 0.0, 0.1, batch, 0.002), tp, mp, Runtime(CPU))
        assert t.r1_gamma == pytest.approx(0.0002 * res * (res // 2) / batch)


def test_learns_the_colour_of_tall_flat_images(tmp_path):
    """A short run on 1:2 flat reddish images moves the generated colours towards the data's."""
    folder = _tall_dataset(tmp_path)
    src = ImageSource(pack(folder, 8, "letterbox", cache=tmp_path / "cache", aspect=2), CPU)
    target = src.images.float().mean(dim=(0, 2, 3)) / 127.5 - 1
    tp, mp = tiny_params(train={"augment": "none", "r1_gamma": 1.0, "r1_interval": 2, "schedule": {
        str(r): {"batch": 8, "lr": 0.003, "fade_kimg": 2, "stable_kimg": 2} for r in (8, 16, 32, 64, 128, 256)}},
        model={"aspect": 2})
    t = Trainer(stage_plan(8, tp), tp, mp, Runtime(CPU))
    z = torch.randn(64, 32, generator=torch.Generator().manual_seed(1))

    def distance():
        with torch.no_grad():
            img = t.G(z, 8, noise_mode="const")
            assert img.shape == (64, 3, 8, 4)
            return (img.mean(dim=(0, 2, 3)) - target).abs().mean().item()

    start = distance()
    for _ in range(150):
        t.step(src)
    end = distance()
    assert end < 0.5 * start and end < 0.15, (start, end)
