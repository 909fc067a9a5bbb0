"""Stage `evaluate`: grids and numbers that let two runs be compared (eval/grids/, eval/metrics.json).

The final model is models/res<train.final_res>. Everything is drawn from
fixed seeds (eval.seed), so two runs' grids show the same characters and their numbers differ by their
models, not by the draws:

* grids (eval/grids/, laid out as pipeline.evaluate.sampling describes; R = eval.grid_rows, C = eval.grid_cols):
  uncurated.png R x C; style_mixing.png (1+R) x (1+C): C sources A across the top, R sources B down the
  side, each cell A with B's eval.mix_band styles; truncation.png R x 9, psi -1 ... 1; res<N>.png R x C,
  the uncurated seeds drawn by the model of every trained resolution (how the model grew); reals.png R x C,
  reals packed at the final resolution as training saw them, to hold the fakes against.
* SWD (pipeline.evaluate.metrics.swd, x1e3, lower is better) of min(eval.swd_images, reals) fakes against as
  many reals, packed at the final resolution exactly as training saw them.
* swd_real_baseline: SWD between two disjoint random halves of the reals, m = min(n, reals // 2)
  images each (swd_baseline_images). It is what "no difference at all" scores at this sample size: a
  gap between two runs smaller than it is noise. With fewer than 2n reals the halves hold fewer
  images than the SWD itself (11 against 22 on the sample), and SWD grows as the sets shrink, so the
  baseline then overstates the noise at n images somewhat - an honest upper bound, rather than a
  bootstrap resample, which shares most images with the set it is compared with and understates it.
* block4, block8, hf of the same fakes, and block4_real, block8_real, hf_real of the same reals
  (pipeline.evaluate.artefacts): a generator that paints 4- or 8-pixel tiles scores block4/8 far above
  the reals' (about 1), so `dvc metrics diff` shows such an artefact between two runs.
* FID and KID when eval.inception_weights names a TorchScript feature net (tall images padded to
  square on the flatten background first, as the training letterbox pads).

Tall models (model.aspect 2): every image is res px tall and res/2 wide, grids' cells too, and SWD's
levels are keyed by their heights. The models must have been trained at params.yaml's model.aspect
(one error line otherwise); a model too small for SWD's 7x7 patches (8 x 4) is scored without SWD,
with a logged reason, as FID is skipped without weights.
* Training figures of the whole run, from the final stage's stats.json.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from pipeline.core.errors import UserError
from pipeline.core.files import save_image, staging_dir, write_json
from pipeline.core.params import RESOLUTIONS, EvalParams
from pipeline.evaluate import fid, metrics
from pipeline.evaluate.artefacts import artefacts
from pipeline.evaluate.sampling import (
    TRUNCATION_PSIS,
    band_slice,
    image_shape,
    images_from_seeds,
    layout,
    pick_device,
    style_mixing_grid,
    truncation_grid,
)
from pipeline.train import checkpoint
from pipeline.train.checkpoint import load_generator
from pipeline.train.dataset import pack

log = logging.getLogger("evaluate")

BATCH = 32                 # images per generator call (results do not depend on it with const noise)
FEW_IMAGES = 64            # fewer SWD images than this are too few to rank runs


def trained_models(models: Path) -> list[tuple[int, Path]]:
    """(res, folder) of every models/res<R> holding a checkpoint, lowest first."""
    return [(r, models / f"res{r}") for r in RESOLUTIONS if (models / f"res{r}" / "checkpoint.pt").exists()]


def training_figures(folder: Path) -> dict:
    """The whole run's images and seconds (stats.json's total_*: earlier resolutions included), its
    average throughput, and the final networks' sizes."""
    path = folder / "stats.json"
    if not path.exists():
        raise UserError(f"{path} not found: re-run training (dvc repro -f -s train@{folder.name[3:]})")
    s = json.loads(path.read_text())
    images = s.get("total_images", s["images_seen"])
    seconds = s.get("total_train_seconds", s["train_seconds"])
    return {"images_seen": int(images), "train_seconds": round(float(seconds), 3),
            "img_per_s": round(images / max(float(seconds), 1e-9), 3),
            "params_G": int(s["params_G"]), "params_D": int(s["params_D"])}


def real_images(data: Path, dataset: str, res: int, fit: str, background, aspect: int = 1) -> np.ndarray:
    """All reals of train.dataset at res x res // aspect, uint8 [N, H, W, 3], as training packs them."""
    path = pack(data / dataset, res, fit, background, aspect=aspect)
    arr = np.load(path)
    assert arr.ndim == 4 and arr.shape[1:] == (res, res // aspect, 3) and arr.dtype == np.uint8, arr.shape
    return arr


def _check_aspect(G, wanted: int, what) -> None:
    checkpoint.check_aspect(int(getattr(G, "aspect", 1)), int(wanted), str(what))


def _subset(n_total: int, n: int, seed: int) -> np.ndarray:
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n].sort().values.numpy()


def swd_metrics(G, res: int, reals: np.ndarray, ep: EvalParams) -> dict:
    """swd, swd_levels, swd_images, and the real-vs-real baseline (see the module docstring), with the
    artefact figures; images too small for SWD get the artefact figures alone (and a logged reason)."""
    n = min(ep.swd_images, len(reals))
    if n < 2:
        raise UserError(f"SWD needs at least 2 real images, the data set has {len(reals)}")
    if n < ep.swd_images:
        log.info("eval.swd_images is %d but there are %d real image(s): using %d per side",
                 ep.swd_images, len(reals), n)
    chosen = reals[_subset(len(reals), n, ep.seed)]
    fakes = images_from_seeds(G, range(ep.seed, ep.seed + n), res, ep.truncation, noise="random",
                              batch=BATCH, noise_seed=ep.seed, progress="evaluate: fakes for SWD")
    figures = {**artefacts(fakes), **{f"{k}_real": v for k, v in artefacts(chosen).items()}}
    too_small = metrics.too_small_reason(*image_shape(G, res))
    if too_small:
        log.warning("SWD skipped: %s (train to a higher train.final_res to score it)", too_small)
        return figures
    score = metrics.swd(chosen, fakes, seed=ep.seed)
    halves = torch.randperm(len(reals), generator=torch.Generator().manual_seed(ep.seed + 1)).numpy()
    m = min(n, len(reals) // 2)
    baseline = metrics.swd(reals[np.sort(halves[:m])], reals[np.sort(halves[m:2 * m])], seed=ep.seed)
    out = {"swd": round(score["swd"], 4), "swd_levels": {k: round(v, 4) for k, v in score["levels"].items()},
           "swd_images": n, "swd_real_baseline": round(baseline["swd"], 4), "swd_baseline_images": m,
           **figures}
    if n < FEW_IMAGES:
        log.warning("SWD on %d image(s) per side is too few to rank runs: real-vs-real noise ~ %.1f "
                    "(swd_real_baseline) against swd %.1f; compare runs only by gaps well above it",
                    n, out["swd_real_baseline"], out["swd"])
    return out


def fid_metrics(G, res: int, reals: np.ndarray, ep: EvalParams, device: torch.device,
                background=(255, 255, 255)) -> dict:
    """fid and kid of eval.fid_images fakes against up to as many reals, through the configured net
    (tall images padded to square on `background`, the flatten background, first)."""
    try:
        net = fid.load_feature_net(ep.inception_weights, device)
    except UserError as e:
        raise UserError(f"params.yaml: eval.inception_weights: {e}")
    chosen = reals[_subset(len(reals), min(ep.fid_images, len(reals)), ep.seed + 2)]
    fakes = images_from_seeds(G, range(ep.seed, ep.seed + ep.fid_images), res, ep.truncation,
                              noise="random", batch=BATCH, noise_seed=ep.seed, progress="evaluate: fakes for FID")
    nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
    scores = fid.fid_kid(net, nchw(chosen), nchw(fakes), device=device, seed=ep.seed, background=background)
    log.info("FID %.3f, KID %.5f on %d fakes against %d reals (%s)", scores["fid"], scores["kid"],
             len(fakes), len(chosen), ep.inception_weights)
    return {"fid": round(scores["fid"], 4), "kid": round(scores["kid"], 6), "fid_images": len(fakes),
            "fid_reals": len(chosen)}


def reals_grid(reals: np.ndarray, ep: EvalParams):
    """reals.png: R x C reals as training saw them (packed at the model's resolution), laid out as the
    fakes of uncurated.png; a seeded draw, sorted, so a data set in name order is not one game's art."""
    chosen = reals[_subset(len(reals), min(len(reals), ep.grid_rows * ep.grid_cols), ep.seed)]
    return layout(chosen, ep.grid_rows, ep.grid_cols)


def write_grids(folder: Path, models: list[tuple[int, Path]], G, res: int, ep: EvalParams,
                device: torch.device, reals: np.ndarray, aspect: int = 1) -> list[str]:
    """eval/grids/*.png; returns the names written."""
    rows, cols = ep.grid_rows, ep.grid_cols
    seeds = range(ep.seed, ep.seed + rows * cols)
    a_seeds, b_seeds = seeds[:cols], range(ep.seed + cols, ep.seed + cols + rows)
    band = band_slice(G, res, ep.mix_band)
    if band.stop <= band.start:
        log.warning("eval.mix_band %s holds no styles at %dx%d (fine styles start at 64 px, middle at 16): "
                    "style_mixing.png shows the A images unchanged", ep.mix_band, *image_shape(G, res))
    grids = {
        "uncurated.png": layout(images_from_seeds(G, seeds, res, ep.truncation, batch=BATCH), rows, cols),
        "style_mixing.png": style_mixing_grid(G, res, a_seeds, b_seeds, ep.mix_band, ep.truncation, BATCH),
        "truncation.png": truncation_grid(G, res, seeds[:rows], TRUNCATION_PSIS, BATCH),
        "reals.png": reals_grid(reals, ep),
    }
    for r, path in models:
        G_r = G if r == res else load_generator(path, device)[0]
        _check_aspect(G_r, aspect, path)
        grids[f"res{r}.png"] = layout(images_from_seeds(G_r, seeds, r, ep.truncation, batch=BATCH), rows, cols)
    for name, img in grids.items():
        save_image(folder / name, img)
    return list(grids)


def run(ep: EvalParams, dataset: str, fit: str, background=(255, 255, 255), models: Path = Path("models"),
        data: Path = Path("data/dataset"), out: Path = Path("eval"), final_res: int | None = None,
        aspect: int = 1) -> dict:
    """Write out/grids/ and out/metrics.json for the final model in `models` (models/res<final_res>;
    None: the highest holding a checkpoint); return the metrics. Models above final_res are ignored:
    after train.final_res was lowered they are the outputs of stages that no longer run. `aspect` is
    params.yaml's model.aspect: a model trained at the other one is an error, before any work."""
    found = [(r, p) for r, p in trained_models(models) if final_res is None or r <= final_res]
    if not found:
        raise UserError(f"no trained model in {models}/res*/checkpoint.pt: train first (dvc repro)")
    if final_res is not None and found[-1][0] != final_res:
        raise UserError(f"{models}/res{final_res} holds no model (train.final_res is {final_res}): "
                        f"train first (dvc repro)")
    device = pick_device(ep.device)
    final_res, final_dir = found[-1]
    G, res, _ = load_generator(final_dir, device)
    _check_aspect(G, aspect, final_dir)
    assert res == final_res, f"{final_dir} holds a model trained at {res}"
    log.info("evaluating %s (%dx%d) on %s; trained resolutions %s", final_dir, *image_shape(G, res), device,
             ", ".join(str(r) for r, _ in found))
    result = {"res": res, **training_figures(final_dir)}
    reals = real_images(data, dataset, res, fit, background, int(getattr(G, "aspect", 1)))
    result.update(swd_metrics(G, res, reals, ep))
    if ep.inception_weights:
        result.update(fid_metrics(G, res, reals, ep, device, background))
    else:
        log.info("FID/KID skipped: eval.inception_weights is empty (see README: Inception weights)")
    with staging_dir(out / "grids") as folder:
        names = write_grids(folder, found, G, res, ep, device, reals, aspect)
    write_json(out / "metrics.json", result)
    if "swd" in result:
        log.info("SWD %.2f (levels %s; real-vs-real %.2f) on %d image(s)", result["swd"],
                 ", ".join(f"{k}: {v:.2f}" for k, v in result["swd_levels"].items()),
                 result["swd_real_baseline"], result["swd_images"])
    log.info("wrote %s and %d grid(s)", out / "metrics.json", len(names))
    return result
