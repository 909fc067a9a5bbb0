"""Favourites: kept through the API, surviving a restart, another checkpoint's listed as such, exported at
x1 and x4, and redrawn with the same pixels by `python -m stages.generate --favourites`."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pipeline.core.errors import UserError
from pipeline.studio import favourites
from tests.helpers.project import ROOT, env_with_project_on_path


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def test_kept_favourites_survive_a_restart_and_another_model_lists_them_as_its_own_not(models, serve, tmp_path):
    file = tmp_path / "studio" / "favourites.json"
    first = serve(models / "res16", file)
    status, fav, _ = first.call("POST", "/api/favourites", body={"seed": 9, "psi": 0.6, "mix_seed": 3,
                                                                 "band": "middle", "noise": "const"})
    assert status == 200 and fav["id"] == 1 and fav["this_model"]
    assert first.call("POST", "/api/favourites", body={"seed": 2})[1]["id"] == 2
    status, body, _ = first.call("POST", "/api/favourites", body={"seed": 2, "band": "coarse"})
    assert status == 400 and "go together" in body["error"]
    saved = json.loads(file.read_text())["favourites"]
    assert [f["id"] for f in saved] == [1, 2] and saved[0]["sha256"] == first.engine.sha256
    assert {k: saved[0][k] for k in ("seed", "psi", "mix_seed", "band", "noise")} == \
        {"seed": 9, "psi": 0.6, "mix_seed": 3, "band": "middle", "noise": "const"}
    first.close()

    again = serve(models / "res16", file)
    listed = again.get("/api/favourites")[1]["favourites"]
    assert [(f["id"], f["this_model"]) for f in listed] == [(1, True), (2, True)]
    small = pixels(again.get("/api/export?id=1")[1])
    assert np.abs(small - pixels(again.get("/api/mix?a=9&b=3&band=middle&psi=0.6")[1])).max() == 0
    big = pixels(again.get("/api/export?id=1&scale=4")[1])
    assert big.shape == (64, 64, 3) and np.array_equal(big[::4, ::4], small) and np.array_equal(big[3::4, 3::4], small)
    assert again.get("/api/export?id=1&scale=3")[0] == 400
    assert again.get("/api/export?id=99")[0] == 404
    assert again.call("POST", "/api/favourites/delete", body={"id": 2})[0] == 200
    assert [f["id"] for f in json.loads(file.read_text())["favourites"]] == [1]

    other = serve(models / "res8", file)
    listed = other.get("/api/favourites")[1]["favourites"]
    assert [(f["id"], f["this_model"]) for f in listed] == [(1, False)]
    status, body, _ = other.get("/api/export?id=1")
    assert status == 409 and "another checkpoint" in body["error"]


def test_generate_favourites_redraws_the_same_pixels_and_skips_another_models(models, serve, tmp_path):
    file = tmp_path / "favourites.json"
    studio = serve(models / "res16", file)
    studio.call("POST", "/api/favourites", body={"seed": 5, "psi": 0.8, "mix_seed": 12, "band": "coarse"})
    studio.call("POST", "/api/favourites", body={"seed": 6, "noise": "random"})
    exported = {fid: (pixels(studio.get(f"/api/export?id={fid}")[1]),
                      pixels(studio.get(f"/api/export?id={fid}&scale=4")[1])) for fid in (1, 2)}
    data = json.loads(file.read_text())
    data["favourites"].append({**data["favourites"][0], "id": 3, "sha256": "ab" * 32, "checkpoint": "models/res64"})
    file.write_text(json.dumps(data))

    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "stages.generate", "--checkpoint", str(models / "res16"),
                        "--favourites", str(file), "--device", "cpu", "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, env=env_with_project_on_path())
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["favourite-1-x4.png", "favourite-1.png",
                                                     "favourite-2-x4.png", "favourite-2.png"]
    for fid, (small, big) in exported.items():
        assert np.abs(pixels((out / f"favourite-{fid}.png").read_bytes()) - small).max() <= 1
        assert np.abs(pixels((out / f"favourite-{fid}-x4.png").read_bytes()) - big).max() <= 1
    skipped = [line for line in r.stderr.splitlines() if "favourite 3" in line]
    assert len(skipped) == 1 and "another checkpoint" in skipped[0] and "models/res64" in skipped[0]


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"),
    ("[]", 'expected {"favourites"'),
    ('{"favourites": [{"id": 1, "sha256": "x", "seed": 1}]}', "sha256"),
    ('{"favourites": [{"id": 0, "sha256": "%s", "seed": 1}]}' % ("a" * 64), "id"),
    ('{"favourites": [{"id": 1, "sha256": "%s", "seed": -1}]}' % ("a" * 64), "seed"),
    ('{"favourites": [{"id": 1, "sha256": "%s", "seed": 1, "band": "fine"}]}' % ("a" * 64), "go together"),
])
def test_a_broken_file_is_one_line_naming_it(tmp_path, text, message):
    path = tmp_path / "favourites.json"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as e:
        favourites.load(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_the_tracked_file_reads_and_favourites_never_go_under_models(in_tmp):
    assert isinstance(favourites.load(ROOT / "studio" / "favourites.json"), list)
    with pytest.raises(UserError, match="models/"):
        favourites.Favourites(in_tmp / "models" / "res32" / "favourites.json")
