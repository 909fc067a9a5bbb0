"""`python -m pipeline.bench studio` runs on a really trained tiny model and reports its figures."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers.project import ROOT, env_with_project_on_path
from tests.helpers.tiny import tiny_models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tiny_models(tmp_path_factory)


def test_bench_studio_reports_a_page(models):
    r = subprocess.run([sys.executable, "-m", "pipeline.bench", "studio", "--checkpoint", str(models / "res16"),
                        "--threads", "1", "--page", "4", "--clients", "2"], cwd=ROOT, capture_output=True,
                       text=True, env=env_with_project_on_path(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert "a page of 4 candidates" in lines[1]
    assert result["res"] == 16 and result["threads"] == 1 and result["page"] == 4
    assert 1 <= result["page_calls"] <= 4 and 1 <= result["first_page_calls"] <= 4
    for key in ("first_page_s", "page_s", "cached_page_s", "image_s", "strip8_s"):
        assert result[key] > 0


def test_bench_studio_without_a_model_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pipeline.bench", "studio", "--checkpoint", str(tmp_path / "none")],
                       cwd=ROOT, capture_output=True, text=True, env=env_with_project_on_path(), timeout=300)
    assert r.returncode != 0 and "not found" in r.stderr and "Traceback" not in r.stderr
