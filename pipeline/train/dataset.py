"""Training images, packed once per resolution into a uint8 array and memory-mapped.

Decoding PNGs in the training loop would cost more than the step itself at low resolutions; instead
each reviewed data set is brought to the model's shape (model.aspect: height / width, 1 square or 2
tall; letterboxed on the flatten background, or centre-cropped), resized with Lanczos and stored as
[N, res, res / aspect, 3] uint8 in `.cache/packed/`, named by a hash of the images and the options
(the shape included), so it is built once and reused by every stage and run that needs it.
"""
from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.core.errors import UserError
from pipeline.core.files import atomic_write, read_csv

log = logging.getLogger("train")

CACHE = Path(".cache/packed")


def to_aspect(img: Image.Image, fit: str, aspect: int = 1, background=(255, 255, 255)) -> Image.Image:
    """An RGB image of height = aspect x width: letterbox (pad with background, centred, keeping every
    pixel) or centre-crop. An image already of that shape is returned as it is."""
    img = img.convert("RGB")
    w, h = img.size
    if fit == "letterbox":      # the smallest such canvas that holds the image
        width = max(w, -(-h // aspect))
    else:                       # the largest such window inside it
        width = min(w, h // aspect)
    height = width * aspect
    if (width, height) == (w, h):
        return img
    if fit == "letterbox":
        canvas = Image.new("RGB", (width, height), tuple(background))
        canvas.paste(img, ((width - w) // 2, (height - h) // 2))
        return canvas
    left, top = (w - width) // 2, (h - height) // 2
    return img.crop((left, top, left + width, top + height))


def square(img: Image.Image, fit: str, background=(255, 255, 255)) -> Image.Image:
    """Make an RGB image square: letterbox (pad with background, keep everything) or centre-crop."""
    return to_aspect(img, fit, 1, background)


def dataset_fingerprint(folder: Path) -> str:
    """A hash of a reviewed data set's index and image bytes (what the packed array depends on)."""
    index = folder / "index.csv"
    if not index.exists():
        raise UserError(f"{index} not found: run the review stage first (dvc repro)")
    h = hashlib.sha1(index.read_bytes())
    for row in read_csv(index):
        h.update((folder / row["path"]).read_bytes())
    return h.hexdigest()[:16]


def pack(folder: Path, res: int, fit: str, background=(255, 255, 255), cache: Path = CACHE,
         aspect: int = 1) -> Path:
    """Pack the images of `folder` (a data/dataset/<kind> folder) at `res` tall and res / aspect wide;
    return the .npy path (its name carries both sides)."""
    rows = read_csv(folder / "index.csv") if (folder / "index.csv").exists() else []
    if not rows:
        raise UserError(f"{folder} holds no images: nothing to train on (check data/review/manifest.csv "
                        f"and review/decisions.csv)")
    width = res // aspect
    key = f"{dataset_fingerprint(folder)}-{fit}-{'%02x%02x%02x' % tuple(background)}-{res}x{width}"
    path = cache / f"{folder.name}-{key}.npy"
    if path.exists():
        return path
    arr = pack_array([folder / row["path"] for row in rows], res, fit, background, aspect)
    buf = io.BytesIO()
    np.save(buf, arr)
    with atomic_write(path) as f:
        f.write(buf.getvalue())
    log.info("packed %d image(s) of %s at %dx%d (%s) into %s", len(rows), folder, res, width, fit, path)
    return path


def pack_array(paths: list[Path], res: int, fit: str, background=(255, 255, 255), aspect: int = 1) -> np.ndarray:
    """Images brought to height = aspect x width (`fit`) and resized with Lanczos to res tall, as uint8
    [N, res, res / aspect, 3]."""
    width = res // aspect
    arr = np.empty((len(paths), res, width, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            arr[i] = np.asarray(to_aspect(im, fit, aspect, background).resize((width, res),
                                                                                Image.Resampling.LANCZOS))
    return arr


class ImageSource:
    """Random batches of real images as float [-1, 1] NCHW tensors, drawn with a torch.Generator.

    Small sets live on the training device as uint8, so a batch costs no host-to-device copy and no sync.
    """

    def __init__(self,
        data: Path | np.ndarray,    # a packed .npy of [N, height, width, 3] uint8, or such an array
        device: torch.device,       # where batches are produced
        mirror: bool = True,        # random horizontal flips (doubles a small data set)
        on_device_limit: int = 2 << 30,  # arrays up to this many bytes are copied to the device once
    ):
        arr = data if isinstance(data, np.ndarray) else np.load(data, mmap_mode="r")
        assert arr.ndim == 4 and arr.shape[3] == 3 and arr.dtype == np.uint8, arr.shape
        self.n, self.res, self.width = arr.shape[0], arr.shape[1], arr.shape[2]
        self.device, self.mirror = device, mirror
        if arr.nbytes <= on_device_limit:
            self.images = torch.from_numpy(np.array(arr)).to(device).permute(0, 3, 1, 2)
            self.mmap = None
        else:
            self.images, self.mmap = None, arr

    def __len__(self) -> int:
        return self.n

    def batch(self, size: int, generator: torch.Generator) -> torch.Tensor:
        # Drawn on the generator's device (the training device): no host round trip for on-device data.
        idx = torch.randint(self.n, (size,), generator=generator, device=generator.device)
        flip = torch.rand(size, generator=generator, device=generator.device) < 0.5
        if self.images is not None:
            x = self.images[idx.to(self.device)]
        else:
            x = torch.from_numpy(self.mmap[np.sort(idx.cpu().numpy())]).permute(0, 3, 1, 2).to(self.device)
        x = x.float() / 127.5 - 1.0
        if self.mirror:
            x = torch.where(flip.to(self.device).view(-1, 1, 1, 1), x.flip(3), x)
        assert x.shape == (size, 3, self.res, self.width)
        return x
