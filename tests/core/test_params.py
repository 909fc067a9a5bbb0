"""params.yaml is validated on load: a bad value stops the stage with one line naming the key."""
import subprocess
import sys

import pytest
import yaml

from pipeline.core import params
from pipeline.core.errors import ParamError
from tests.helpers.project import ROOT, env_with_project_on_path


def test_shipped_params_are_valid():
    data = params.load_all(ROOT / "params.yaml")
    for section in params.SECTIONS:
        params.parse(section, data.get(section))


@pytest.mark.parametrize("section,raw,key", [
    ("unpack", {"min_size": "big"}, "unpack.min_size"),
    ("unpack", {"min_size": 0}, "unpack.min_size"),
    ("unpack", {"include": "*.png"}, "unpack.include"),
    ("unpack", {"workers": True}, "unpack.workers"),
    ("flatten", {"mode": "paint"}, "flatten.mode"),
    ("flatten", {"background": "#zzzzzz"}, "flatten.background"),
    ("faces", {"scale_factor": 1.0}, "faces.scale_factor"),
    ("faces", {"colour": 1}, "faces.colour"),
    ("review", {"default": "maybe"}, "review.default"),
    ("train", {"start_res": 12}, "train.start_res"),
    ("train", {"start_res": 64, "final_res": 32}, "train.start_res"),
    ("train", {"schedule": {"8": {"batch": 0, "lr": 0.1, "fade_kimg": 1, "stable_kimg": 1}}}, "train.schedule.8.batch"),
    ("model", {"arch": "stylegan3"}, "model.arch"),
])
def test_bad_values_name_their_key(section, raw, key):
    with pytest.raises(ParamError) as e:
        params.parse(section, raw)
    assert e.value.key == key
    assert str(e.value).startswith(f"params.yaml: {key}:") and "\n" not in str(e.value)


def test_ints_are_accepted_for_floats_and_null_for_strings():
    assert params.parse("faces", {"expand": 3}).expand == 3.0
    assert params.parse("eval", {"inception_weights": None}).inception_weights == ""


def test_stage_exits_with_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"unpack": {"min_size": "big"}}))
    (tmp_path / "data" / "raw").mkdir(parents=True)
    r = subprocess.run([sys.executable, "-m", "stages.unpack"], cwd=tmp_path, capture_output=True, text=True,
                       env=env_with_project_on_path())
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == \
        "unpack: error: params.yaml: unpack.min_size: expected int, got 'big'"
    assert "Traceback" not in r.stderr


def test_broken_yaml_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("unpack: [\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        params.load("unpack", tmp_path / "params.yaml")


def test_r1_gamma_is_a_number_or_auto_the_heuristic_of_stylegan2_ada():
    tp = params.parse("train", {})
    assert tp.r1_gamma == "auto"
    for res, batch in ((8, 16), (32, 16), (256, 64)):
        assert tp.gamma(res, batch) == pytest.approx(0.0002 * res ** 2 / batch)   # Karras et al. 2020
    assert params.parse("train", {"r1_gamma": 10}).gamma(32, 16) == 10.0
    for res, batch in ((8, 16), (32, 16), (256, 4)):        # tall: H x W = res x res/2 pixels
        assert tp.gamma(res, batch, aspect=2) == pytest.approx(0.0002 * res * (res // 2) / batch)
        assert tp.gamma(res, batch, aspect=1) == tp.gamma(res, batch)
    assert params.parse("train", {"r1_gamma": 10}).gamma(32, 16, aspect=2) == 10.0
    for bad in ("lots", -1, True, [1]):
        with pytest.raises(ParamError, match="train.r1_gamma"):
            params.parse("train", {"r1_gamma": bad})


def test_ema_kimg_is_a_number_or_auto_nvlabs_batch_x_10_over_32():
    tp = params.parse("train", {"ema_kimg": "auto"})
    for batch in (16, 32, 64):
        assert tp.ema_half_life(batch) == pytest.approx(batch * 10 / 32 * 1000)
    assert params.parse("train", {"ema_kimg": 2.5}).ema_half_life(64) == 2500.0
    with pytest.raises(ParamError, match="train.ema_kimg"):
        params.parse("train", {"ema_kimg": "often"})
