"""params.yaml, parsed once into typed, validated objects.

Each stage reads its own section: `load("unpack")` returns an `UnpackParams`. A wrong type, an
unknown key or a value out of range raises `ParamError`, whose one-line message names the key.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline.core.errors import ParamError

RESOLUTIONS = (8, 16, 32, 64, 128, 256)


def opt(default, help: str = "", choices=None, min=None, max=None, or_auto: bool = False):
    """A dataclass field with its validation rules kept next to it (or_auto: a number or "auto")."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "or_auto": or_auto}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: typing.cast(typing.Any, default).copy(), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class UnpackParams:
    workers: int = opt(0, "decode processes; 0 = all cores", min=0)
    min_size: int = opt(64, "skip art whose width or height is below this (px)", min=1)
    include: list = opt([], "glob patterns on container paths; art must match one (empty = all)")
    exclude: list = opt([], "glob patterns on container paths; matching art is skipped")
    decode_timeout: float = opt(120.0, "seconds one texture may take to decode before it is skipped", min=1)
    max_pixels: int = opt(64_000_000, "skip textures and images with more pixels than this", min=1)
    worker_memory_mb: int = opt(4096, "address-space limit of each decode process (MB); 0 = none", min=0)


@dataclass(frozen=True)
class FlattenParams:
    mode: str = opt("composite", "composite on the background, or drop_alpha (the paper)",
                     choices=("composite", "drop_alpha"))
    background: str = opt("#ffffff", "background colour: #rrggbb or a colour name")
    trim: bool = opt(False, "crop to the bounding box of the opaque pixels first")
    alpha_threshold: int = opt(8, "alpha at or below this counts as transparent when trimming", min=0, max=254)


@dataclass(frozen=True)
class FacesParams:
    scale_factor: float = opt(1.1, "cascade pyramid step", min=1.01)
    min_neighbors: int = opt(5, "cascade detections needed to keep a box", min=0)
    min_size: int = opt(24, "smallest face box (px)", min=8)
    min_confidence: float = opt(0.0, "drop boxes whose confidence (final-stage sum above its threshold) is "
                                     "below this; 0 = keep every box the cascade accepts", min=0.0)
    expand: float = opt(2.0, "crop side = box side x expand (1 = the box; 2-3 = head to half body)", min=1.0)
    shift: float = opt(0.25, "move the crop centre down by this x box side (towards the body)", min=-1.0, max=1.0)
    workers: int = opt(0, "detection processes; 0 = all cores", min=0)
    cascade: str = opt("models/lbpcascade_animeface.xml", "the OpenCV cascade file")


@dataclass(frozen=True)
class ReviewParams:
    default: str = opt("keep", "status of images nobody has decided on", choices=("keep", "reject"))
    min_size: int = opt(64, "reject images smaller than this on either side (px)", min=1)
    near_duplicate: int = opt(4, "reject images whose perceptual hash is within this many bits of an "
                                 "earlier one (-1 = off, 0 = exact duplicates only)", min=-1, max=64)
    blank_std: float = opt(3.0, "reject images whose grey-level standard deviation is below this", min=0.0)


def _schedule_default():
    return {str(r): {"batch": b, "lr": 0.002, "fade_kimg": 0.2, "stable_kimg": 0.2}
            for r, b in zip(RESOLUTIONS, (16, 16, 16, 16, 8, 4))}


@dataclass(frozen=True)
class Phase:
    batch: int
    lr: float
    fade_kimg: float
    stable_kimg: float


@dataclass(frozen=True)
class TrainParams:
    dataset: str = opt("fullbody", "which reviewed data set to learn", choices=("fullbody", "faces"))
    start_res: int = opt(8, "first resolution trained", choices=RESOLUTIONS)
    final_res: int = opt(32, "last resolution trained", choices=RESOLUTIONS)
    progressive: bool = opt(True, "grow from start_res; false = train final_res from scratch")
    fit: str = opt("letterbox", "how images come to model.aspect (square, or 1:2): pad on the background or "
                                "centre-crop", choices=("letterbox", "crop"))
    freeze_lower: bool = opt(False, "fix the layers of lower resolutions while a new one trains (the paper)")
    schedule: dict = opt(_schedule_default(), "per resolution: batch, lr, fade_kimg, stable_kimg")
    scratch_kimg: float = opt(0.0, "images (thousands) for progressive=false; 0 = as many as the "
                                   "progressive schedule shows in all", min=0.0)
    r1_gamma: float | str = opt("auto", "R1 penalty weight on reals; auto = 0.0002 x H x W / batch of each "
                                        "stage (StyleGAN2-ADA's heuristic; H x W = res^2 when square)",
                                min=0.0, or_auto=True)
    r1_interval: int = opt(16, "lazy R1: every N discriminator steps", min=1)
    pl_weight: float = opt(0.0, "path-length regularisation weight (stylegan2); 0 = off", min=0.0)
    pl_interval: int = opt(4, "lazy path length: every N generator steps", min=1)
    style_mixing: float = opt(0.9, "probability of mixing two w's in a training batch", min=0.0, max=1.0)
    ema_kimg: float | str = opt(1.0, "half-life of the G_ema average in thousands of images; auto = batch x "
                                     "10 / 32 of each stage (NVlabs' auto config)", min=0.0, or_auto=True)
    ema_rampup: float = opt(0.05, "G_ema half-life at most this x images seen so far; 0 = off", min=0.0)
    augment: str = opt("diffaugment", "differentiable augmentation of reals and fakes",
                       choices=("none", "diffaugment", "ada"))
    augment_policy: str = opt("color,translation,cutout", "DiffAugment ops, comma separated")
    ada_target: float = opt(0.6, "ADA: target sign(D(real)) mean", min=0.0, max=1.0)
    ada_kimg: float = opt(500.0, "ADA: thousands of images for p to go from 0 to 1 at the fastest "
                                 "(StyleGAN2-ADA: 500)", min=0.001)
    snapshot_kimg: float = opt(0.1, "resume snapshot every this many thousand images", min=0.001)
    log_every: int = opt(10, "log losses every N steps (a host sync)", min=1)
    seed: int = opt(0, "seed for weights, noise and data order", min=0)
    device: str = opt("auto", "auto = cuda when present", choices=("auto", "cpu", "cuda"))
    precision: str = opt("fp32", "bf16 autocast (or fp16 with a grad scaler) on CUDA",
                         choices=("fp32", "bf16", "fp16"))
    channels_last: bool = opt(False, "channels_last (NHWC) memory format for the networks and images")
    compile: bool = opt(False, "torch.compile the main G and D passes (the regularisers stay eager)")
    cuda_graphs: bool = opt(False, "with compile on CUDA: replay the compiled passes as CUDA graphs "
                                   "(torch.compile mode reduce-overhead)")
    fused_adam: bool = opt(False, "Adam as one fused kernel per network (with fp16: no host sync)")
    nan_policy: str = opt("rollback", "on NaN/inf: roll back to the last snapshot with a lower lr, or stop",
                          choices=("rollback", "stop"))

    def phase(self, res: int) -> Phase:
        return Phase(**self.schedule[str(res)])

    def gamma(self, res: int, batch: int, aspect: int = 1) -> float:
        """R1's weight at resolution `res` (images res tall, res / aspect wide) with this total batch; auto
        is StyleGAN2-ADA's heuristic (Karras et al. 2020, its config "auto"): 0.0002 x H x W / batch,
        written there as res^2 for its square images (R1 sums the squared gradient over the pixels)."""
        return 0.0002 * res * (res // aspect) / batch if self.r1_gamma == "auto" else float(self.r1_gamma)

    def ema_half_life(self, batch: int) -> float:
        """G_ema's half-life in images with this total batch; auto is NVlabs' batch x 10 / 32 thousand."""
        return batch * 10 / 32 * 1000 if self.ema_kimg == "auto" else float(self.ema_kimg) * 1000


@dataclass(frozen=True)
class ModelParams:
    arch: str = opt("stylegan", "stylegan (the paper's) or stylegan2 (demodulation, skip G, residual D)",
                    choices=("stylegan", "stylegan2"))
    mapping_layers: int = opt(8, "fully connected layers z -> w", min=1, max=16)
    z_dim: int = opt(512, "latent size", min=1)
    w_dim: int = opt(512, "intermediate latent size", min=1)
    cbase: int = opt(16384, "channels at resolution r are min(cbase / r, cmax)", min=8)
    cmax: int = opt(512, "most channels in any layer", min=1)
    mapping_lr_mult: float = opt(0.01, "learning-rate multiplier of the mapping network", min=1e-6)
    aspect: int = opt(1, "1 = square images; 2 = full-body shape, height = 2 x width (train@R: R tall, R/2 wide)",
                      choices=(1, 2))


@dataclass(frozen=True)
class EvalParams:
    seed: int = opt(0, "seed of every grid and metric draw", min=0)
    swd_images: int = opt(256, "images per side for SWD", min=2)
    inception_weights: str = opt("", "TorchScript Inception file for FID/KID; empty = skip them")
    fid_images: int = opt(1000, "generated images for FID/KID", min=2)
    grid_rows: int = opt(4, "rows of the uncurated grid", min=1)
    grid_cols: int = opt(8, "columns of the uncurated grid", min=1)
    mix_band: str = opt("coarse", "styles taken from source B in the mixing grid",
                        choices=("coarse", "middle", "fine"))
    truncation: float = opt(1.0, "psi of the uncurated grid and the SWD samples", min=-2.0, max=2.0)
    device: str = opt("auto", "auto = cuda when present", choices=("auto", "cpu", "cuda"))


SECTIONS = {"unpack": UnpackParams, "flatten": FlattenParams, "faces": FacesParams,
            "review": ReviewParams, "train": TrainParams, "model": ModelParams, "eval": EvalParams}


def _check_value(key: str, value, f: dataclasses.Field):
    or_auto = f.metadata.get("or_auto")
    if or_auto and value == "auto":
        return value
    kind = float if or_auto else f.type if isinstance(f.type, type) else {
        "int": int, "float": float, "bool": bool, "str": str, "list": list, "dict": dict}[f.type]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is str and value is None:
        value = ""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ParamError(key, f"expected {kind.__name__}{' or auto' if or_auto else ''}, got {value!r}")
    if kind is list and not all(isinstance(v, str) for v in value):
        raise ParamError(key, f"expected a list of strings, got {value!r}")
    meta = f.metadata
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise ParamError(key, f"{value!r} is not one of {', '.join(map(str, meta['choices']))}")
    if meta.get("min") is not None and value < meta["min"]:
        raise ParamError(key, f"{value} is below the minimum {meta['min']}")
    if meta.get("max") is not None and value > meta["max"]:
        raise ParamError(key, f"{value} is above the maximum {meta['max']}")
    return value


def _check_cross(section: str, obj) -> None:
    if section == "flatten":
        from PIL import ImageColor
        try:
            ImageColor.getrgb(obj.background)
        except ValueError:
            raise ParamError("flatten.background", f"{obj.background!r} is not a colour (#rrggbb or a name)")
    if section == "train":
        if obj.start_res > obj.final_res:
            raise ParamError("train.start_res", f"{obj.start_res} is above train.final_res {obj.final_res}")
        for res in RESOLUTIONS:
            row = obj.schedule.get(str(res), obj.schedule.get(res))
            key = f"train.schedule.{res}"
            if not isinstance(row, dict):
                raise ParamError(key, "missing: give batch, lr, fade_kimg, stable_kimg")
            if set(row) != {"batch", "lr", "fade_kimg", "stable_kimg"}:
                raise ParamError(key, f"expected keys batch, lr, fade_kimg, stable_kimg, got {sorted(row)}")
            for name, kind, lo in (("batch", int, 1), ("lr", float, 0.0), ("fade_kimg", float, 0.0),
                                   ("stable_kimg", float, 0.0)):
                v = row[name]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
                    raise ParamError(f"{key}.{name}", f"expected {kind.__name__}, got {v!r}")
                if v < lo or (name in ("batch", "lr") and v == 0):
                    raise ParamError(f"{key}.{name}", f"{v} must be positive")
        extra = set(map(str, obj.schedule)) - {str(r) for r in RESOLUTIONS}
        if extra:
            raise ParamError("train.schedule", f"unknown resolutions {sorted(extra)}")


def parse(section: str, raw: dict | None):
    """Validate one section's dict and return its typed object."""
    cls = SECTIONS[section]
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ParamError(section, f"expected a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ParamError(f"{section}.{unknown[0]}", f"unknown key (known: {', '.join(fields)})")
    values = {name: _check_value(f"{section}.{name}", raw[name], fields[name]) for name in raw}
    if section == "train" and "schedule" in values:  # yaml keys may be ints or strings
        values["schedule"] = {str(k): v for k, v in values["schedule"].items()}
    obj = cls(**values)
    _check_cross(section, obj)
    return obj


def load_all(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ParamError(str(path), "file not found (run from the project root)")
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ParamError(str(path), f"not valid YAML{where}")
    if not isinstance(data, dict):
        raise ParamError(str(path), "expected a mapping of sections")
    return data


def check_all(path: str | Path = "params.yaml") -> None:
    """Validate every section of params.yaml: a bad key anywhere fails whichever stage runs first, before
    it does anything (not the stage that reads it, hours of training later)."""
    data = load_all(path)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ParamError(str(unknown[0]), f"unknown section (known: {', '.join(SECTIONS)})")
    for section in SECTIONS:
        parse(section, data.get(section))


def load(section: str, path: str | Path = "params.yaml"):
    """The typed, validated params of one section."""
    return parse(section, load_all(path).get(section))


def as_dict(obj) -> dict:
    return dataclasses.asdict(obj)
