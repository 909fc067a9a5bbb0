"""Fixtures for every test folder; shared helpers live in tests/helpers/."""
from __future__ import annotations

import os
import sys

import pytest

from tests.helpers.project import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Several test processes share the cores: torch's default of one thread per core in each of them
    # makes the threads wait on each other (10x slower). One thread each, here and in the stages the
    # tests start as subprocesses.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test inside an empty folder (stages use paths relative to the project root)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
