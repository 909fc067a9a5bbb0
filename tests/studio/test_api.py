"""The studio's fixed API over real HTTP on a really trained tiny model: defaults, ranges, bad values,
the same pixels as `python -m stages.generate`, and the web layer's checks through this page."""
from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.helpers.project import ROOT, env_with_project_on_path


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


@pytest.fixture
def studio(models, serve):
    return serve(models / "res16")


def png_of(studio, path) -> np.ndarray:
    status, body, ctype = studio.get(path)
    assert (status, ctype) == (200, "image/png"), body
    return pixels(body)


def test_defaults_shapes_and_model_info(studio):
    img = png_of(studio, "/api/image?seed=5")
    assert img.shape == (16, 16, 3)
    assert np.array_equal(img, png_of(studio, "/api/image?seed=5&psi=1&noise=const"))   # the defaults
    assert not np.array_equal(img, png_of(studio, "/api/image?seed=6"))
    assert not np.array_equal(img, png_of(studio, "/api/image?seed=5&psi=0.5"))
    assert png_of(studio, "/api/interpolate?a=1&b=2").shape == (16, 8 * 16, 3)          # steps 8
    assert png_of(studio, "/api/interpolate?a=1&b=2&steps=3").shape == (16, 3 * 16, 3)
    assert png_of(studio, "/api/mix?a=1&b=2&band=coarse").shape == (16, 16, 3)
    assert png_of(studio, f"/api/image?seed={2**32 - 1}&psi=-2").shape == (16, 16, 3)   # the range's ends
    assert png_of(studio, "/api/interpolate?a=0&b=0&steps=64&psi=2").shape == (16, 64 * 16, 3)
    status, info, _ = studio.get("/api/model")
    assert status == 200 and info["res"] == 16 and (info["height"], info["width"]) == (16, 16)
    assert info["bands"] == {"coarse": True, "middle": True, "fine": False}   # fine starts at 64 px
    assert len(info["sha256"]) == 64


@pytest.mark.parametrize("path, key", [
    ("/api/image", "seed"), ("/api/image?seed=-1", "seed"), (f"/api/image?seed={2**32}", "seed"),
    ("/api/image?seed=1.5", "seed"), ("/api/image?seed=abc", "seed"), ("/api/image?seed=" + "9" * 40, "seed"),
    ("/api/image?seed=1&psi=2.01", "psi"), ("/api/image?seed=1&psi=-3", "psi"), ("/api/image?seed=1&psi=nan", "psi"),
    ("/api/image?seed=1&psi=x", "psi"), ("/api/image?seed=1&noise=loud", "noise"),
    ("/api/mix?a=1&b=2", "band"), ("/api/mix?a=1&b=2&band=all", "band"), ("/api/mix?b=2&band=fine", "a"),
    ("/api/mix?a=1&band=fine", "b"), ("/api/interpolate?a=1&b=2&steps=1", "steps"),
    ("/api/interpolate?a=1&b=2&steps=65", "steps"), ("/api/interpolate?a=1", "b"),
])
def test_bad_values_are_400_with_a_json_error_naming_the_key(studio, path, key):
    status, body, ctype = studio.get(path)
    assert status == 400 and ctype == "application/json" and body["error"].startswith(key), body


def test_the_server_survives_bad_requests(studio):
    for path in ["/api/image?seed=%00", "/api/image?seed=1&seed=x", "/api/mix?a=1&b=2&band=%ff", "/%2e%2e/x",
                 "/api/image?" + "x" * 5000]:
        assert 400 <= studio.get(path)[0] < 500, path
    assert studio.call("POST", "/api/favourites", body=b"{not json", headers={
        "Content-Type": "application/json"})[0] == 400
    assert studio.call("POST", "/api/favourites", body={"seed": "x"})[0] == 400
    assert png_of(studio, "/api/image?seed=1").shape == (16, 16, 3)


def test_only_the_pages_files_are_served_and_no_path_reaches_the_disk(studio):
    assert studio.get("/")[0] == 200 and b"Design studio" in studio.get("/")[1]
    assert studio.get("/static/studio.js")[2].startswith("text/javascript")
    for path in ["/static/server.py", "/static/../server.py", "/static/%2e%2e/engine.py", "/index.html",
                 "/etc/passwd", "//etc/passwd", "/api/image/../../engine.py", "/studio/favourites.json"]:
        status, body, _ = studio.get(path)
        assert status == 404 and "error" in body, path
    assert studio.call("POST", "/api/image?seed=1")[0] == 405


def test_loopback_host_and_origin_checks(studio):
    port = studio.server.server_address[1]
    status, body, _ = studio.get("/api/image?seed=1", headers={"Host": f"evil.example:{port}"})
    assert status == 403 and "local addresses" in body["error"]
    status, body, _ = studio.call("POST", "/api/favourites", body={"seed": 1},
                                  headers={"Origin": "http://evil.example"})
    assert status == 403 and not studio.server.favourites.path.exists()
    status, _, _ = studio.get("/api/image?seed=1", headers={"Origin": f"http://127.0.0.1:{port}",
                                                             "Host": f"127.0.0.1:{port}"})
    assert status == 200
    assert studio.call("POST", "/api/favourites", body="seed=1", headers={
        "Content-Type": "application/x-www-form-urlencoded"})[0] == 415


def test_a_band_the_model_lacks_returns_a_unchanged(studio):
    a = png_of(studio, "/api/image?seed=3&psi=0.8")
    assert np.abs(png_of(studio, "/api/mix?a=3&b=9&band=fine&psi=0.8") - a).max() <= 1
    assert np.abs(png_of(studio, "/api/mix?a=3&b=9&band=coarse&psi=0.8") - a).max() > 1


def test_the_same_pixels_as_generate(studio, models, tmp_path):
    a, b, band, psi, steps = 4, 11, "coarse", 0.7, 5
    out = tmp_path / "gen"
    r = subprocess.run([sys.executable, "-m", "stages.generate", "--checkpoint", str(models / "res16"),
                        "--seeds", str(a), "--trunc", str(psi), "--mix-rows", str(b), "--mix-cols", str(a),
                        "--mix-band", band, "--interpolate", f"{a},{b}", "--steps", str(steps), "--min-cell", "1",
                        "--device", "cpu", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                       env=env_with_project_on_path())
    assert r.returncode == 0, r.stderr
    seed_png = pixels((out / f"seed{a:04d}.png").read_bytes())
    assert np.abs(png_of(studio, f"/api/image?seed={a}&psi={psi}") - seed_png).max() <= 1
    grid = pixels((out / "style_mixing.png").read_bytes())
    assert grid.shape == (32, 32, 3)                    # (1 + 1 B) x (1 + 1 A) cells of 16 px
    assert np.abs(png_of(studio, f"/api/mix?a={a}&b={b}&band={band}&psi={psi}") - grid[16:, 16:]).max() <= 1
    strip = pixels((out / f"interpolation_{a}-{b}.png").read_bytes())
    api_strip = png_of(studio, f"/api/interpolate?a={a}&b={b}&steps={steps}&psi={psi}")
    assert api_strip.shape == strip.shape == (16, steps * 16, 3) and np.abs(api_strip - strip).max() <= 1


def test_random_noise_matches_generate_and_differs_from_const(studio, models, tmp_path):
    from pipeline.evaluate import sampling

    sampling.generate(models / "res16", seeds="7", out=tmp_path, noise="random", device="cpu")
    want = pixels((tmp_path / "seed0007.png").read_bytes())
    got = png_of(studio, "/api/image?seed=7&noise=random")
    assert np.abs(got - want).max() <= 1
    assert np.array_equal(got, png_of(studio, "/api/image?seed=7&noise=random"))       # repeatable
    assert not np.array_equal(got, png_of(studio, "/api/image?seed=7"))
