"""The studio's drawing engine: a trained generator, one worker thread that batches requests, a cache.

A request names what to draw as a `Spec` (an image, a mix or an interpolation strip, with its psi and
noise). Request threads only queue specs and wait; the worker takes everything queued (up to
`max_batch` images), turns each spec into ws with the evaluate stage's own functions and draws them in
one generator call, so a page of 32 thumbnails costs a few calls, not 32. Finished PNGs are cached
per spec, and a spec already being drawn is not drawn twice.

Pixels match `python -m stages.generate` with the same settings (up to float rounding in a different
batch: a grey level here and there), because the ws and the noise rule are the same:
- const noise: the model's fixed noise buffers, any batch;
- random noise: drawn after seeding torch with the spec's first seed, one spec per call (as generate
  `--noise random` seeds each image by its own seed).
"""
from __future__ import annotations

import collections
import io
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.evaluate import sampling
from pipeline.evaluate.sampling import BANDS, NOISE_MODES
from pipeline.gan import grids
from pipeline.gan.networks import style_bands
from pipeline.train.checkpoint import digest_of, load_generator

log = logging.getLogger("studio")

KINDS = ("image", "mix", "interpolate")
MAX_BATCH = 32                 # images per generator call (a page of candidates)
CACHE_BYTES = 256 * 2**20      # PNGs kept; a 256 px PNG is about 100 kB


@dataclass(frozen=True)
class Spec:
    """What to draw. kind image: seed a; mix: a with b's `band` styles; interpolate: `steps` from a to b."""
    kind: str
    a: int
    psi: float = 1.0
    noise: str = "const"
    b: int | None = None
    band: str | None = None
    steps: int = 1

    def __post_init__(self):
        assert self.kind in KINDS and self.noise in NOISE_MODES, (self.kind, self.noise)
        assert (self.b is None) == (self.kind == "image"), self
        assert (self.band in BANDS) == (self.kind == "mix"), self
        assert self.steps >= 2 if self.kind == "interpolate" else self.steps == 1, self

    @property
    def images(self) -> int:
        return self.steps


def checkpoint_file(path) -> Path:
    """The file load_generator reads for `path` (a models/res<R> folder or a checkpoint file)."""
    path = Path(path)
    return path / "checkpoint.pt" if path.is_dir() else path


def spec_ws(G, res: int, spec: Spec) -> torch.Tensor:
    """ws [spec.images, num_ws, w_dim], made exactly as the generate command makes them."""
    if spec.kind == "image":
        ws = sampling.ws_from_seeds(G, [spec.a], spec.psi)
    elif spec.kind == "mix":  # the cell of --mix-rows B --mix-cols A: A with B's band
        ws = sampling.mixing_ws(G, res, [spec.a], [spec.b], spec.band, spec.psi)
    else:
        ws = sampling.interpolation_ws(G, spec.a, spec.b, spec.steps, spec.psi)
    assert ws.shape[0] == spec.images and ws.shape[2] == G.w_dim, tuple(ws.shape)
    return ws


def draw(G, res: int, specs: list[Spec]) -> list[np.ndarray]:
    """uint8 images [n, H, W, 3] per spec. All-const specs go in one generator call; a random-noise spec
    must come alone (its noise is seeded by its first seed)."""
    ws = torch.cat([spec_ws(G, res, s) for s in specs])
    noise = specs[0].noise
    assert noise == "const" or len(specs) == 1, "a random-noise spec is drawn on its own"
    images = sampling.synthesize(G, ws, res, noise, batch=len(ws), noise_seed=specs[0].a)
    out, i = [], 0
    for s in specs:
        out.append(images[i:i + s.images])
        i += s.images
    return out


def _encode(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=3)
    return buf.getvalue()


def png(images: np.ndarray, strip: bool) -> bytes:
    """One image, or a strip of cells side by side at the model's resolution (as generate --min-cell 1)."""
    return _encode(sampling.layout(images, 1, len(images), 1) if strip else Image.fromarray(images[0]))


def enlarge(data: bytes, factor: int) -> bytes:
    """A PNG enlarged by a whole factor, nearest neighbour (crisp pixels for export), as the grids are."""
    return _encode(grids.enlarge(Image.open(io.BytesIO(data)), factor))


class Engine:
    def __init__(self,
        checkpoint,                     # a models/res<R> folder or a checkpoint file (as generate takes)
        device: str = "auto",           # auto | cpu | cuda
        max_batch: int = MAX_BATCH,     # most images per generator call
        cache_bytes: int = CACHE_BYTES, # PNG bytes kept in memory
    ):
        self.device = sampling.pick_device(device)
        self.G, self.res, self.options = load_generator(checkpoint, self.device)
        self.checkpoint = str(checkpoint)
        self.sha256 = digest_of(checkpoint_file(checkpoint))   # load_generator checked it against the bytes
        self.aspect = int(getattr(self.G, "aspect", 1))
        bands = style_bands(self.res)
        self.bands = {b: bands[b].stop > bands[b].start for b in BANDS}   # False: the model lacks that band
        self.max_batch, self.cache_bytes = max_batch, cache_bytes
        self.calls = 0                  # generator calls so far (what the batching saves)
        self._cache: collections.OrderedDict[Spec, bytes] = collections.OrderedDict()
        self._cached_bytes = 0
        self._queue: list[tuple[Spec, Future]] = []
        self._running: dict[Spec, Future] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="studio-draw", daemon=True)
        self._worker.start()

    def info(self) -> dict:
        return {"checkpoint": self.checkpoint, "sha256": self.sha256, "res": self.res, "aspect": self.aspect,
                "height": self.res, "width": self.res // self.aspect, "bands": self.bands,
                "arch": self.G.arch, "device": str(self.device)}

    # ---- asking for images ---------------------------------------------------------------------

    def submit(self, spec: Spec) -> Future:
        """A future of the spec's PNG bytes; cached and in-flight specs are shared, not redrawn."""
        with self._cond:
            if spec in self._cache:
                self._cache.move_to_end(spec)
                f = Future()
                f.set_result(self._cache[spec])
                return f
            if spec in self._running:
                return self._running[spec]
            if self._stopping:
                raise RuntimeError("the studio engine is stopped")
            f = Future()
            self._running[spec] = f
            self._queue.append((spec, f))
            self._cond.notify_all()
            return f

    def png(self, spec: Spec, timeout: float | None = 600) -> bytes:
        return self.submit(spec).result(timeout)

    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    def wait_queued(self, n: int, timeout: float) -> bool:
        """Block until at least n specs wait to be drawn (a test hook: it lets a test hold the first draw
        until the other requests have arrived, so the count of calls does not depend on timing)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._queue) >= n, timeout)

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._worker.join(timeout=60)

    # ---- the worker ----------------------------------------------------------------------------

    def _take(self) -> list[tuple[Spec, Future]]:
        """The next batch: a random-noise spec alone, or const specs in arrival order up to max_batch
        images (always at least one, so a 64-step strip is not starved)."""
        first = self._queue[0]
        if first[0].noise == "random":
            return [self._queue.pop(0)]
        batch, rest, n = [], [], 0
        for item in self._queue:
            if item[0].noise == "const" and (not batch or n + item[0].images <= self.max_batch):
                batch.append(item)
                n += item[0].images
            else:
                rest.append(item)
        self._queue[:] = rest
        return batch

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopping)
                if self._stopping:
                    for spec, f in self._queue:
                        f.set_exception(RuntimeError("the studio engine stopped"))
                    self._queue.clear()
                    return
                batch = self._take()
                self._cond.notify_all()
            specs = [s for s, _ in batch]
            try:
                self.calls += 1
                drawn = draw(self.G, self.res, specs)
                results = [png(images, s.kind == "interpolate") for s, images in zip(specs, drawn)]
            except Exception as e:  # one bad draw must not stop the worker: each waiting request gets a 500
                log.exception("drawing %d image(s) failed", len(specs))
                with self._cond:
                    for s, f in batch:
                        self._running.pop(s, None)
                        f.set_exception(e)
                continue
            with self._cond:
                for (s, f), data in zip(batch, results):
                    self._remember(s, data)
                    self._running.pop(s, None)
                    f.set_result(data)

    def _remember(self, spec: Spec, data: bytes) -> None:
        self._cache[spec] = data
        self._cached_bytes += len(data)
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= len(old)
