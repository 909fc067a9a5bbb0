"""Speed benchmarks of the real pipeline code.

  python -m pipeline.bench train --res 256 --batch 64 --arch stylegan2 --cbase 16384 --cmax 512 \\
      --map-layers 2 --kimg 5 --device cuda --precision bf16 --channels-last --compile
  python -m pipeline.bench train --res 32 --aspect 2 ...     (32 tall, 16 wide: model.aspect 2)
  python -m pipeline.bench train --res 32 --aspect 1 --aspect 2 --rounds 4 ...   (both, in alternating rounds)
  python -m pipeline.bench data --copies 25 --workers 1 --workers 2

`train` times the stages' own Trainer.step (D and G updates, lazy R1 every 16 steps, path length
every 4, style mixing 0.9, G_ema) on random images kept on the device, reading the losses back every
`--log-every` steps as the stage does. `data` times the unpack and faces stages (pipeline.bench.data).
Each prints its figures and, last, one JSON line for scripts.
"""
from __future__ import annotations

import math
import os
import platform
import resource
import statistics
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from pipeline.core import params
from pipeline.train.dataset import ImageSource
from pipeline.train.schedule import StagePlan
from pipeline.train.trainer import Trainer

R1_INTERVAL, PL_INTERVAL, PL_WEIGHT, STYLE_MIXING = 16, 4, 2.0, 0.9   # StyleGAN2's, as the figures to beat


def SyntheticSource(count: int, res: int, device: torch.device, seed: int = 0, aspect: int = 1) -> ImageSource:
    """Random uint8 images, res tall and res / aspect wide, served by the stages' own ImageSource (kept on
    the training device)."""
    rng = np.random.default_rng(seed)
    return ImageSource(rng.integers(0, 256, (count, res, res // aspect, 3), dtype=np.uint8), device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        model = ""
    return f"{model or platform.processor() or 'CPU'} ({torch.get_num_threads()} threads)"


def peak_memory_gb(device: torch.device) -> tuple[float, str]:
    """Peak GPU memory held by tensors, or the peak resident memory of this process on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30, "cuda max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, "process max RSS"


def make_trainer(res: int, batch: int, arch: str, cbase: int, cmax: int, map_layers: int, z_dim: int,
                 device: str, precision: str, channels_last: bool, compile: bool, cuda_graphs: bool,
                 fused_adam: bool, augment: str, log_every: int, seed: int = 0,
                 pl_weight: float = PL_WEIGHT, r1_gamma: float | str = 1.0, style_mixing: float = STYLE_MIXING,
                 ema_kimg: float = 10.0, lr: float = 0.002, ada_kimg: float = 500.0, aspect: int = 1) -> Trainer:
    """A Trainer set up as the stage sets it up (same params, same runtime), at one resolution; the
    rest as NVlabs' StyleGAN2 config (lazy R1 every 16, path length every 4, EMA ramp-up 0.05,
    minibatch-stddev group 4)."""
    from pipeline.train.stage import runtime

    tp = params.parse("train", {
        "start_res": res, "final_res": res, "progressive": False, "r1_gamma": r1_gamma,
        "r1_interval": R1_INTERVAL, "pl_weight": pl_weight, "pl_interval": PL_INTERVAL,
        "style_mixing": style_mixing, "ema_kimg": ema_kimg, "ema_rampup": 0.05, "augment": augment,
        "ada_kimg": ada_kimg,
        "log_every": log_every, "seed": seed, "device": device, "precision": precision,
        "channels_last": channels_last, "compile": compile, "cuda_graphs": cuda_graphs, "fused_adam": fused_adam})
    mp = params.parse("model", {"arch": arch, "mapping_layers": map_layers, "z_dim": z_dim, "w_dim": z_dim,
                                "cbase": cbase, "cmax": cmax, "aspect": aspect})
    plan = StagePlan(res, True, "benchmark", None, 0.0, 1.0, batch, lr)
    return Trainer(plan, tp, mp, runtime(tp))


def run_steps(trainer: Trainer, source, steps: int, log_every: int) -> dict[str, float]:
    """`steps` training steps; losses read back every log_every steps (the stage's only host sync)."""
    pending, means = [], {}
    for i in range(steps):
        pending.append(trainer.step(source))
        if (i + 1) % log_every == 0 or i + 1 == steps:
            names = sorted({k for d in pending for k in d})
            stacked = torch.stack([torch.stack([d[n].float() for d in pending if n in d]).mean() for n in names])
            means = dict(zip(names, stacked.tolist()))
            pending.clear()
    return means


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Setup:
    """One benchmark trainer: the model, the step and the runtime (make_trainer's arguments)."""
    res: int = 32                   # height in px; the width is res / aspect
    batch: int = 16                 # images per step
    arch: str = "stylegan2"         # stylegan | stylegan2
    cbase: int = 2048               # channels at resolution r: min(cbase / r, cmax)
    cmax: int = 256
    map_layers: int = 2             # mapping-network layers
    z_dim: int = 512                # z and w width
    device: str = "auto"            # auto | cpu | cuda
    precision: str = "fp32"         # fp32 | bf16 | fp16
    channels_last: bool = False
    compile: bool = False           # torch.compile the main G and D passes
    cuda_graphs: bool = False       # with compile on CUDA: mode reduce-overhead
    fused_adam: bool = False
    augment: str = "none"           # none | diffaugment | ada
    log_every: int = 10             # read the losses back every N steps, as the stage does
    aspect: int = 1                 # model.aspect: 1 square, 2 tall


def _prepare(setup: Setup, kimg: float, warmup: int, images: int, rounds: int, echo):
    """A trainer, its random images, how many steps a round times, and the settings (echoed)."""
    trainer = make_trainer(**asdict(setup))
    rt, res, batch, aspect = trainer.rt, setup.res, setup.batch, setup.aspect
    source = SyntheticSource(images, res, rt.device, aspect=aspect)
    # A whole number of R1 and path-length cycles per round, so the timed steps hold their fair share of both.
    cycle = math.lcm(R1_INTERVAL, PL_INTERVAL)
    steps = max(cycle, math.ceil(kimg * 1000 / batch / rounds / cycle) * cycle)
    settings = {
        **asdict(setup), "height": res, "width": res // aspect, "w_dim": setup.z_dim,
        "channels": {r: min(setup.cbase // r, setup.cmax) for r in trainer.G.resolutions},
        "r1_interval": R1_INTERVAL, "pl_interval": PL_INTERVAL,
        "pl_weight": PL_WEIGHT if setup.arch == "stylegan2" else 0.0,     # path length is StyleGAN2's only
        "style_mixing": STYLE_MIXING, "precision": rt.precision,       # fp16 falls back to fp32 on the CPU
        "warmup_steps": warmup, "timed_steps": steps * rounds, "rounds": rounds,
        "device": str(rt.device), "device_name": device_name(rt.device), "torch": torch.__version__,
        "cuda": torch.version.cuda if rt.device.type == "cuda" else None,
        "params_G": sum(p.numel() for p in trainer.G.parameters()),
        "params_D": sum(p.numel() for p in trainer.D.parameters()),
    }
    if rt.device.type == "cpu":
        settings["load_avg_before"] = round(os.getloadavg()[0], 2)
    echo("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items() if k != "channels"))
    echo(f"channels per resolution: {settings['channels']}")
    start = time.perf_counter()
    run_steps(trainer, source, warmup, setup.log_every)
    _sync(rt.device)
    echo(f"warm-up: {warmup} steps in {time.perf_counter() - start:.1f} s, not timed (compilation, "
         f"cuDNN autotuning, allocator growth)")
    return trainer, source, steps, settings


def _timed_round(trainer: Trainer, source, steps: int, log_every: int) -> tuple[float, dict]:
    start = time.perf_counter()
    losses = run_steps(trainer, source, steps, log_every)
    _sync(trainer.rt.device)
    return time.perf_counter() - start, losses


def _result(seconds: float, steps: int, losses: dict, settings: dict, device: torch.device, echo) -> dict:
    timed_images = steps * settings["batch"]
    peak, peak_kind = peak_memory_gb(device)
    result = {
        "s_per_kimg": round(seconds / timed_images * 1000, 3),
        "img_per_s": round(timed_images / seconds, 2),
        "ms_per_step": round(seconds / steps * 1000, 2),
        "peak_mem_gb": round(peak, 3), "peak_mem_kind": peak_kind,
        "timed_images": timed_images, "seconds": round(seconds, 3),
        "losses": {k: round(v, 4) for k, v in losses.items()},
        **settings,
    }
    if device.type == "cpu":
        result["load_avg_after"] = round(os.getloadavg()[0], 2)
    echo(f"{timed_images} images in {seconds:.2f} s: {result['s_per_kimg']} s/kimg, "
         f"{result['img_per_s']} images/s, {result['ms_per_step']} ms/step, "
         f"peak memory {result['peak_mem_gb']} GB ({peak_kind})")
    echo(f"last losses: {result['losses']}")
    return result


def bench_train(setup: Setup = Setup(), kimg: float = 0.32, warmup: int = 10, images: int = 1024,
                threads: int = 0, echo=print) -> dict:
    """Build, warm up, time whole steps; return the figures and the settings (also echoed)."""
    if threads > 0:
        torch.set_num_threads(threads)
    trainer, source, steps, settings = _prepare(setup, kimg, warmup, images, 1, echo)
    seconds, losses = _timed_round(trainer, source, steps, setup.log_every)
    return _result(seconds, steps, losses, settings, trainer.rt.device, echo)


def bench_aspects(setup: Setup = Setup(), aspects: tuple[int, ...] = (1, 2), rounds: int = 4, kimg: float = 0.32,
                  warmup: int = 10, images: int = 1024, threads: int = 0, echo=print) -> dict:
    """Square against tall in one process: both trainers built and warmed up, then timed in alternating
    rounds (each a whole number of R1 cycles, kimg in all per aspect), so that a machine that speeds up
    or slows down during the run (other work, clocks) weighs on both alike. Returns each aspect's
    figures and each one's s/kimg over the first's; setup.aspect is ignored."""
    if threads > 0:
        torch.set_num_threads(threads)
    runs = {}
    for aspect in aspects:
        echo(f"-- aspect {aspect}")
        runs[aspect] = _prepare(replace(setup, aspect=aspect), kimg, warmup, images, rounds, echo)
    seconds, rounds_s, losses = {a: 0.0 for a in aspects}, {a: [] for a in aspects}, {}
    for r in range(rounds):
        for aspect, (trainer, source, steps, _) in runs.items():
            took, losses[aspect] = _timed_round(trainer, source, steps, setup.log_every)
            seconds[aspect] += took
            rounds_s[aspect].append(round(took / (steps * setup.batch) * 1000, 3))
        echo(f"round {r + 1}/{rounds}: " + ", ".join(f"aspect {a} {rounds_s[a][-1]} s/kimg" for a in aspects))
    results = {}
    for aspect, (trainer, _, steps, settings) in runs.items():
        echo(f"-- aspect {aspect} ({setup.res} x {setup.res // aspect}), all rounds")
        results[aspect] = _result(seconds[aspect], steps * rounds, losses[aspect], settings, trainer.rt.device,
                                  echo)
        results[aspect]["rounds_s_per_kimg"] = rounds_s[aspect]
    first = aspects[0]
    ratios = {a: round(seconds[a] / seconds[first], 3) for a in aspects}
    # Each round times the aspects back to back, so a burst of other work on the machine spoils one round's
    # ratio, not all of them: the median over rounds is the figure to quote from a shared machine.
    medians = {a: round(statistics.median(x / y for x, y in zip(rounds_s[a], rounds_s[first])), 3) for a in aspects}
    echo(f"s/kimg over aspect {first}: " + ", ".join(
        f"aspect {a} {ratios[a]}x (median of the rounds {medians[a]}x)" for a in aspects[1:]) +
        "; peak memory is the process's, both trainers together")
    return {"aspects": {str(a): results[a] for a in aspects}, "ratio_to_first": {str(a): ratios[a] for a in aspects},
            "median_round_ratio": {str(a): medians[a] for a in aspects}}
