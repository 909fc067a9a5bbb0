"""Tiny training configurations and data sets, so training tests run in seconds on a CPU."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.core import params
from pipeline.core.files import write_csv
from pipeline.train.stage import run as train

TINY_MODEL = {"arch": "stylegan", "mapping_layers": 2, "z_dim": 32, "w_dim": 32, "cbase": 256, "cmax": 32}


def tiny_schedule(kimg: float = 0.048, batch: int = 8, lr: float = 0.002) -> dict:
    return {str(r): {"batch": batch, "lr": lr, "fade_kimg": kimg, "stable_kimg": kimg}
            for r in params.RESOLUTIONS}


def tiny_train(**overrides) -> dict:
    raw = {"start_res": 8, "final_res": 16, "schedule": tiny_schedule(), "log_every": 2,
           "snapshot_kimg": 0.016, "device": "cpu", "augment": "diffaugment"}
    raw.update(overrides)
    return raw


def tiny_params(train: dict | None = None, model: dict | None = None):
    tp = params.parse("train", tiny_train(**(train or {})))
    mp = params.parse("model", {**TINY_MODEL, **(model or {})})
    return tp, mp


def make_dataset(root: Path, colours=((220, 40, 40), (200, 60, 30), (240, 90, 60)), n: int = 12,
                 size: int = 40, kind: str = "fullbody") -> Path:
    """data/dataset/<kind>/ of flat-colour images with a little noise, and its index.csv."""
    folder = root / "data" / "dataset" / kind
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        c = np.array(colours[i % len(colours)], dtype=np.float32)
        img = np.clip(c + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i}.png")
        rows.append({"path": f"img{i}.png", "id": f"fb-{i}", "source": "t", "asset": f"a{i}",
                     "width": size, "height": size})
    write_csv(folder / "index.csv", list(rows[0]), rows)
    return folder


def train_tiny(root, final_res: int = 16, model: dict | None = None):
    """models/res8 and res16 trained from 12 flat-colour images; res32 ... res256 skipped (run from root).
    `model`: overrides of the model section (e.g. {"aspect": 2})."""
    make_dataset(root)
    tp, mp = tiny_params(train={"final_res": final_res}, model=model)
    for res in params.RESOLUTIONS:
        train(res, tp, mp, models=root / "models", logs=root / "logs", data=root / "data" / "dataset")
    return root


def tiny_models(tmp_path_factory, name: str = "project", final_res: int = 16, model: dict | None = None) -> Path:
    """models/ of `train_tiny` in a fresh temporary project (trained there as the working directory)."""
    root = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        train_tiny(root, final_res, model)
    return root / "models"
