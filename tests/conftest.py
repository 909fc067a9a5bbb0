"""Shared test helpers. Test material lives in the project (data/sample, models), never in ../shared."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
TEMPLATES = SAMPLE / "templates"
IMAGES = SAMPLE / "images"
CASCADE = ROOT / "models" / "lbpcascade_animeface.xml"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test inside an empty folder (stages use paths relative to the project root)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def env_with_project_on_path() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env
