"""Drawing images from a trained generator: seeds to latents, batches, and the grids both the
`evaluate` stage and `python -m stages.generate` write.

Seeds: image `s` comes from z = torch.randn(z_dim) drawn by a torch.Generator seeded with s (the
same rule as the training stage's samples.png), so a seed names the same character in every run of a
model, on every device and in every batch (up to float rounding: a grey level here and there).

Images are res px tall and res // aspect wide (G.aspect: 1 square, 2 tall; 1 for generators that do
not say), so every array here is [N, H, W, 3] with H = res, W = res // aspect.

Grids are laid out cell by cell, row-major, with no padding. A cell is one generated image enlarged
with nearest neighbour by the whole factor ceil(min_cell / H) (1 from 64 px up), so an 8x8 or
32x32 model stays visible and two models' grids line up: with min_cell 64 a cell is 64x64 px below
64 px and res x res from there on; a tall model's cells are as tall as a square model's of its res
and half as wide (32 x 16 images: cells 64 x 32). A grid of R rows and C columns is therefore
(R * cell height) x (C * cell width) px (height x width).
"""
from __future__ import annotations

import contextlib
import logging
import math
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from pipeline.core.errors import UserError
from pipeline.core.files import save_image
from pipeline.gan.grids import enlarge, grid, to_uint8
from pipeline.gan.networks import mix_ws, style_bands

BANDS = ("coarse", "middle", "fine")
NOISE_MODES = ("const", "random")
TRUNCATION_PSIS = tuple(np.round(np.linspace(-1.0, 1.0, 9), 2).tolist())   # columns of truncation.png
MIN_CELL = 64

log = logging.getLogger("generate")

_SEED_PART = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_seeds(text: str, what: str = "--seeds") -> list[int]:
    """'0-7' / '1,5,9' / '0-3,10' -> [0, 1, ...] in the order given (ranges inclusive)."""
    seeds: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        m = _SEED_PART.match(part)
        if not m:
            raise UserError(f"{what}: {text!r} is not a list of seeds (examples: 0-7, 1,5,9, 0-3,10)")
        lo, hi = int(m[1]), int(m[2] if m[2] is not None else m[1])
        if hi < lo:
            raise UserError(f"{what}: range {part} runs backwards (write {hi}-{lo})")
        if hi - lo >= 100_000:
            raise UserError(f"{what}: range {part} holds more than 100000 seeds")
        seeds.extend(range(lo, hi + 1))
    if len(seeds) > 100_000:
        raise UserError(f"{what}: more than 100000 seeds")
    return seeds


def pick_device(name: str) -> torch.device:
    """auto (cuda when torch sees a GPU) | cpu | cuda."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda asked for, but torch sees no GPU (use auto or cpu)")
    if name not in ("auto", "cpu", "cuda"):
        raise UserError(f"device {name!r} is not one of auto, cpu, cuda")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def z_from_seeds(seeds, z_dim: int) -> torch.Tensor:
    """[len(seeds), z_dim] on the CPU; row i depends on seeds[i] alone."""
    z = torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
    assert z.shape == (len(seeds), z_dim)
    return z


def ws_from_seeds(G, seeds, psi: float = 1.0) -> torch.Tensor:
    """ws [N, num_ws, w_dim] of the seeds, truncated towards G's average w by psi (1 = none)."""
    device = G.w_avg.device
    with torch.no_grad():
        return G.mapping(z_from_seeds(seeds, G.z_dim).to(device), psi=psi)


@contextlib.contextmanager
def _seeded_noise(seed: int | None, device: torch.device):
    """Seed torch's global generators (the noise inputs draw from them) without disturbing the caller."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def image_shape(G, res: int) -> tuple[int, int]:
    """(height, width) of G's images at res: res x res // G.aspect (the contract of the networks)."""
    aspect = int(getattr(G, "aspect", 1))
    assert aspect in (1, 2) and res % aspect == 0, (aspect, res)
    return res, res // aspect


def synthesize(G, ws: torch.Tensor, res: int, noise: str = "const", batch: int = 32,
               noise_seed: int = 0, progress: str | None = None) -> np.ndarray:
    """ws [N, num_ws, w_dim] -> uint8 [N, H, W, 3] (image_shape), `batch` images at a time.

    noise "const": the generator's fixed noise (the same for every image: grids of two runs compare).
    noise "random": fresh noise; batch k draws it after seeding torch with noise_seed + k, so the
    result repeats for the same ws, batch and noise_seed.
    """
    assert ws.ndim == 3 and ws.shape[2] == G.w_dim, tuple(ws.shape)
    assert noise in NOISE_MODES, noise
    device = G.w_avg.device
    out = np.empty((len(ws), *image_shape(G, res), 3), dtype=np.uint8)
    starts = range(0, len(ws), batch)
    bar = tqdm(total=len(ws), desc=progress, unit="img", disable=progress is None, mininterval=0.5)
    with torch.no_grad():
        for k, i in enumerate(starts):
            with _seeded_noise(noise_seed + k if noise == "random" else None, device):
                img = G.synthesis(ws[i:i + batch].to(device), res, noise_mode=noise)
            assert img.shape[2:] == out.shape[1:3], (tuple(img.shape), out.shape)
            out[i:i + batch] = to_uint8(img)
            bar.update(len(img))
    bar.close()
    return out


def images_from_seeds(G, seeds, res: int, psi: float = 1.0, noise: str = "const", batch: int = 32,
                      noise_seed: int = 0, progress: str | None = None) -> np.ndarray:
    """uint8 [len(seeds), H, W, 3] (image_shape)."""
    return synthesize(G, ws_from_seeds(G, seeds, psi), res, noise, batch, noise_seed, progress)


# ----------------------------------------------------------------------------------------------
# Grids


def cell_size(res: int, min_cell: int = MIN_CELL) -> int:
    """Height in px of one grid cell for images res px tall (their width is enlarged by the same factor).

    The height reaches min_cell, not the short side: the height is the model's res (the stages' and
    the grids' res<R> name), so a tall model's cells are exactly as tall as a square model's of the
    same res, its grids' rows line up with theirs, and from 64 px up the image is shown as it is at
    both aspects. Going by the short side would enlarge a 64 x 32 model two-fold, and an 8 x 4 cell
    is visible at 64 x 32 already.
    """
    return res * _factor(res, min_cell)


def _factor(height: int, min_cell: int) -> int:
    return max(1, math.ceil(min_cell / height))


def layout(images: np.ndarray, rows: int, cols: int, min_cell: int = MIN_CELL) -> Image.Image:
    """uint8 [rows*cols, H, W, 3] (row-major; fewer leaves white cells) -> a grid of enlarged cells.
    Square images give the grid they always gave, pixel for pixel (the same whole factor and resize)."""
    h, w = images.shape[1:3]
    factor = _factor(h, min_cell)
    img = enlarge(grid(images, rows, cols), factor)
    assert img.size == (cols * w * factor, rows * cell_size(h, min_cell)), (img.size, rows, cols, factor)
    return img


def band_slice(G, res: int, band: str) -> slice:
    """The ws entries of a style band at `res`, as the StyleGAN paper splits them: coarse = 4-8 px,
    middle = 16-32 px, fine = 64 px and up. Below 64 px `fine` is empty, below 16 px `middle` too."""
    if band not in BANDS:
        raise UserError(f"style band {band!r} is not one of {', '.join(BANDS)}")
    return style_bands(res)[band]


def mixing_ws(G, res: int, a_seeds, b_seeds, band: str, psi: float = 1.0) -> torch.Tensor:
    """ws of the style-mixing grid's body: row i, column j = source A[j] with `band` from source B[i]."""
    ws_a, ws_b = ws_from_seeds(G, a_seeds, psi), ws_from_seeds(G, b_seeds, psi)
    na, nb = len(a_seeds), len(b_seeds)
    rows_a = ws_a.unsqueeze(0).expand(nb, -1, -1, -1).reshape(nb * na, *ws_a.shape[1:])
    rows_b = ws_b.unsqueeze(1).expand(-1, na, -1, -1).reshape(nb * na, *ws_b.shape[1:])
    return mix_ws(rows_a, rows_b, band_slice(G, res, band))


def style_mixing_grid(G, res: int, a_seeds, b_seeds, band: str, psi: float = 1.0, batch: int = 32,
                      min_cell: int = MIN_CELL) -> Image.Image:
    """As in the StyleGAN paper: source A across the top, source B down the left, a blank corner;
    each cell is its column's A with the `band` styles of its row's B. (1 + len(B)) x (1 + len(A)) cells."""
    na, nb = len(a_seeds), len(b_seeds)
    top = images_from_seeds(G, a_seeds, res, psi, batch=batch)
    left = images_from_seeds(G, b_seeds, res, psi, batch=batch)
    body = synthesize(G, mixing_ws(G, res, a_seeds, b_seeds, band, psi), res, batch=batch)
    blank = np.full((1, *image_shape(G, res), 3), 255, dtype=np.uint8)
    cells = [blank, top]
    for i in range(nb):
        cells += [left[i:i + 1], body[i * na:(i + 1) * na]]
    return layout(np.concatenate(cells), nb + 1, na + 1, min_cell)


def truncation_grid(G, res: int, seeds, psis=TRUNCATION_PSIS, batch: int = 32,
                    min_cell: int = MIN_CELL) -> Image.Image:
    """Row per seed, column per psi (psi 0 is the average character, negative psi its 'opposite')."""
    ws = torch.cat([ws_from_seeds(G, seeds, float(p)).unsqueeze(1) for p in psis], dim=1)  # [S, P, n, w]
    images = synthesize(G, ws.reshape(-1, *ws.shape[2:]), res, batch=batch)
    return layout(images, len(seeds), len(psis), min_cell)


def interpolation_ws(G, seed_a: int, seed_b: int, steps: int, psi: float = 1.0) -> torch.Tensor:
    """`steps` ws from A to B (both ends included), linear in w as in the StyleGAN paper."""
    if steps < 2:
        raise UserError(f"--steps {steps}: an interpolation needs at least 2 steps")
    ends = ws_from_seeds(G, [seed_a, seed_b], psi)
    t = torch.linspace(0, 1, steps, device=ends.device).view(-1, 1, 1)
    return torch.lerp(ends[0:1], ends[1:2], t)


def interpolation_strip(G, res: int, seed_a: int, seed_b: int, steps: int, psi: float = 1.0,
                        batch: int = 32, min_cell: int = MIN_CELL) -> Image.Image:
    """One row of `steps` cells."""
    images = synthesize(G, interpolation_ws(G, seed_a, seed_b, steps, psi), res, batch=batch)
    return layout(images, 1, steps, min_cell)


# ----------------------------------------------------------------------------------------------
# python -m stages.generate


def generate(checkpoint, seeds: str = "", psi: float = 1.0, out="generated", grid: bool = False,
             mix_rows: str = "", mix_cols: str = "", mix_band: str = "coarse", interpolate: str = "",
             steps: int = 8, device: str = "auto", batch: int = 32, noise: str = "const",
             min_cell: int = MIN_CELL) -> list[Path]:
    """What `python -m stages.generate` does (see there); returns the files written."""
    from pipeline.train.checkpoint import load_generator  # imports networks and torch.load: only when used

    seed_list = parse_seeds(seeds, "--seeds") if seeds else []
    if bool(mix_rows) != bool(mix_cols):
        raise UserError("--mix-rows and --mix-cols go together (sources B down the side, sources A across)")
    rows_b = parse_seeds(mix_rows, "--mix-rows") if mix_rows else []
    cols_a = parse_seeds(mix_cols, "--mix-cols") if mix_cols else []
    pair = parse_seeds(interpolate, "--interpolate") if interpolate else []
    if interpolate and len(pair) != 2:
        raise UserError(f"--interpolate {interpolate!r}: give two seeds A,B (e.g. 3,9)")
    if grid and not seed_list:
        raise UserError("--grid needs --seeds")
    if not (seed_list or rows_b or pair):
        raise UserError("nothing to do: give --seeds, --mix-rows with --mix-cols, or --interpolate")
    if batch < 1 or min_cell < 1:
        raise UserError("--batch and --min-cell must be at least 1")

    dev = pick_device(device)
    G, res, _ = load_generator(checkpoint, dev)
    out = Path(out)
    log.info("%s: %dx%d model on %s, psi %g, %s noise", checkpoint, *image_shape(G, res), dev, psi, noise)
    written = []
    if seed_list:
        if noise == "random":   # each image's noise seeded by its own seed, so one image per call
            images = np.concatenate([images_from_seeds(G, [s], res, psi, "random", 1, noise_seed=s)
                                     for s in tqdm(seed_list, desc="generate", unit="img", mininterval=0.5)])
        else:
            images = images_from_seeds(G, seed_list, res, psi, "const", batch, progress="generate")
        for s, img in zip(seed_list, images):
            written.append(out / f"seed{s:04d}.png")
            save_image(written[-1], Image.fromarray(img))
        if grid:
            cols = math.ceil(math.sqrt(len(seed_list)))
            written.append(out / "grid.png")
            save_image(written[-1], layout(images, math.ceil(len(seed_list) / cols), cols, min_cell))
    if rows_b:
        written.append(out / "style_mixing.png")
        save_image(written[-1], style_mixing_grid(G, res, cols_a, rows_b, mix_band, psi, batch, min_cell))
    if pair:
        written.append(out / f"interpolation_{pair[0]}-{pair[1]}.png")
        save_image(written[-1], interpolation_strip(G, res, pair[0], pair[1], steps, psi, batch, min_cell))
    log.info("wrote %d file(s) to %s", len(written), out)
    return written
