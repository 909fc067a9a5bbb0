"""How well the generator learns real art (`python -m pipeline.bench quality --images DIR ...`).

Trains one resolution from scratch with the stages' own Trainer and losses for `kimg` thousand images
(reals from any folder of images, packed as train@R packs them: letterboxed on white (or cropped,
--fit) to --aspect, no x-flip; the rest as NVlabs' StyleGAN2 config), then draws `fakes` images from G_ema (fresh noise, psi 1) and scores
them against as many reals: SWD (pipeline.evaluate.metrics) and the grid-artefact and high-frequency
figures (pipeline.evaluate.artefacts), each with the reals' own figure beside it. Writes OUT/fakes/*.png
and OUT/grid.png; the last line on stdout is one JSON object. Same seed on a CPU with one thread: the
same figures on every run (all but the timings).
"""
from __future__ import annotations

import logging
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.core.errors import UserError
from pipeline.core.files import read_csv, save_image
from pipeline.evaluate import metrics
from pipeline.evaluate.artefacts import artefacts
from pipeline.evaluate.sampling import images_from_seeds, layout
from pipeline.train import checkpoint
from pipeline.train.dataset import ImageSource, pack_array

log = logging.getLogger("bench")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
GRID_SIDE = 8                   # grid.png: the first 8 x 8 fakes


def find_images(folder: Path) -> list[Path]:
    """The images of `folder`: its index.csv's `path` column where there is one (a data/dataset/<kind>
    folder), else every image file below it, in sorted order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--images {folder}: not a folder")
    index = folder / "index.csv"
    if index.exists():
        paths = [folder / row["path"] for row in read_csv(index) if row.get("path")]
    else:
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if len(paths) < 2:
        raise UserError(f"--images {folder}: {len(paths) or 'no'} image(s) found, at least 2 needed "
                        f"({', '.join(sorted(IMAGE_SUFFIXES))}, searched recursively, or an index.csv)")
    return paths


def _reals_and_baseline(reals: np.ndarray, n: int, seed: int):
    """n reals to score the fakes against, and the real-vs-real SWD: n against n other reals, or two
    disjoint halves (as evaluate does) where there are fewer than 2n."""
    order = torch.randperm(len(reals), generator=torch.Generator().manual_seed(seed)).numpy()
    if len(reals) >= 2 * n:
        chosen, other = reals[np.sort(order[:n])], reals[np.sort(order[n:2 * n])]
        baseline = metrics.swd(chosen, other, seed=seed)
    else:
        chosen = reals[np.sort(order[:n])]
        m = len(reals) // 2
        baseline = metrics.swd(reals[np.sort(order[:m])], reals[np.sort(order[m:2 * m])], seed=seed)
    return chosen, baseline


def bench_quality(images: Path, res: int, arch: str, cbase: int, cmax: int, z_dim: int, map_layers: int,
                  batch: int, lr: float, gamma: str, pl_weight: float, mixing: float, ema_kimg: float,
                  augment: str, kimg: float, fakes: int, seed: int, threads: int, out: Path,
                  device: str = "auto", log_every: int = 10, minutes: float = 0.0, ada_kimg: float = 500.0,
                  aspect: int = 1, fit: str = "letterbox") -> dict:
    from tqdm import tqdm

    from pipeline.bench.train import make_trainer, run_steps

    if threads > 0:
        torch.set_num_threads(threads)
    paths = find_images(images)
    start = time.perf_counter()
    packed = pack_array(paths, res, fit, (255, 255, 255), aspect)
    log.info("packed %d image(s) of %s at %dx%d (%s) in %.1f s", len(packed), images, res, res // aspect, fit,
             time.perf_counter() - start)
    # "auto" goes through train.r1_gamma's own rule (TrainParams.gamma), as the stages resolve it
    trainer = make_trainer(res, batch, arch, cbase, cmax, map_layers, z_dim, device, "fp32", False, False,
                           False, False, augment, log_every, seed=seed, pl_weight=pl_weight,
                           r1_gamma=gamma if gamma == "auto" else float(gamma), style_mixing=mixing,
                           ema_kimg=ema_kimg, lr=lr, ada_kimg=ada_kimg, aspect=aspect)
    source = ImageSource(packed, trainer.rt.device, mirror=False)
    steps = math.ceil(kimg * 1000 / batch)
    losses: dict[str, float] = {}
    bar = tqdm(total=steps * batch, unit="img", desc=f"quality@{res}", file=sys.stderr, mininterval=2.0)
    start = time.perf_counter()
    deadline = start + minutes * 60 if minutes > 0 else math.inf      # --minutes: stop early, then score
    done = 0
    while done < steps and time.perf_counter() < deadline:
        chunk = min(log_every, steps - done)
        losses = run_steps(trainer, source, chunk, log_every)
        done += chunk
        bar.update(chunk * batch)
        bar.set_postfix(G=f"{losses.get('loss_G', float('nan')):.3f}", D=f"{losses.get('loss_D', float('nan')):.3f}")
    if trainer.rt.device.type == "cuda":
        torch.cuda.synchronize(trainer.rt.device)
    seconds = time.perf_counter() - start
    bar.close()
    if done < steps:
        log.info("quality: --minutes %g reached after %d of %d steps (%.2f kimg)", minutes, done, steps,
                 done * batch / 1000)
    checkpoint.save(Path(out) / "checkpoint.pt", trainer.state_dict())   # to look at or draw from later

    G = trainer.G_ema
    fake = images_from_seeds(G, range(seed, seed + fakes), res, psi=1.0, noise="random", noise_seed=seed,
                             progress="quality: fakes")
    folder = Path(out) / "fakes"
    if folder.exists():
        shutil.rmtree(folder)              # no fakes of an earlier run left among these
    assert fake.shape[1:3] == packed.shape[1:3], (fake.shape, packed.shape)     # tall fakes for tall reals
    for i, img in enumerate(fake):
        save_image(folder / f"{i:05d}.png", Image.fromarray(img, "RGB"))
    save_image(Path(out) / "grid.png", layout(fake[:GRID_SIDE * GRID_SIDE], GRID_SIDE, GRID_SIDE))

    n = min(fakes, len(packed))
    reals, baseline = _reals_and_baseline(packed, n, seed)
    score = metrics.swd(reals, fake, seed=seed)
    result = {
        "swd": round(score["swd"], 4), "swd_levels": {k: round(v, 4) for k, v in score["levels"].items()},
        "swd_real_baseline": round(baseline["swd"], 4),
        **artefacts(fake), **{f"{k}_real": v for k, v in artefacts(reals).items()},
        "s_per_kimg": round(seconds / (done * batch) * 1000, 3), "reals": int(len(packed)),
        "scored_images": n, "height": res, "width": res // aspect, "gamma_value": trainer.r1_gamma, "train_seconds": round(seconds, 2),
        "steps": done, "kimg_trained": done * batch / 1000, "augment_p": round(trainer.augment.probability, 6), "losses": {k: round(v, 4) for k, v in losses.items()},
        "ran_on": str(trainer.rt.device), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
    }
    return result
