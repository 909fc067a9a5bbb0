"""The command line of the benchmarks: `python -m pipeline.bench train|quality|data|cache ...`."""
from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.core import params
from pipeline.core.errors import UserError


@click.group()
def main():
    """Benchmarks: `train` (speed of the training step), `quality` (what G learns from real images),
    `data` (speed of the unpack and faces stages), `cache` (unpack cold against warm) and `review` (the
    review page at many images)."""


@main.command()
@click.option("--res", type=click.Choice([str(r) for r in params.RESOLUTIONS]), default="256", show_default=True)
@click.option("--batch", type=click.IntRange(2), default=64, show_default=True, help="images per step")
@click.option("--arch", type=click.Choice(["stylegan", "stylegan2"]), default="stylegan2", show_default=True)
@click.option("--cbase", type=click.IntRange(8), default=16384, show_default=True,
              help="channels at resolution r are min(cbase / r, cmax)")
@click.option("--cmax", type=click.IntRange(1), default=512, show_default=True)
@click.option("--map-layers", type=click.IntRange(1, 16), default=2, show_default=True, help="mapping layers")
@click.option("--z-dim", type=click.IntRange(1), default=512, show_default=True, help="z and w width")
@click.option("--kimg", type=click.FloatRange(0, min_open=True), default=5.0, show_default=True,
              help="thousands of images timed (rounded up to whole R1 cycles)")
@click.option("--warmup", type=click.IntRange(1), default=10, show_default=True, help="untimed steps first")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True)
@click.option("--channels-last/--no-channels-last", default=False, show_default=True)
@click.option("--compile/--no-compile", "compile_", default=False, show_default=True,
              help="torch.compile the main G and D passes")
@click.option("--cuda-graphs/--no-cuda-graphs", default=False, show_default=True,
              help="with --compile on CUDA: mode reduce-overhead")
@click.option("--fused-adam/--no-fused-adam", default=False, show_default=True)
@click.option("--augment", type=click.Choice(["none", "diffaugment", "ada"]), default="none", show_default=True)
@click.option("--log-every", type=click.IntRange(1), default=10, show_default=True,
              help="read the losses back every N steps")
@click.option("--images", type=click.IntRange(1), default=1024, show_default=True,
              help="random images in the synthetic data set")
@click.option("--threads", type=click.IntRange(0), default=0, help="CPU threads for torch; 0 = torch's default")
@click.option("--fast", is_flag=True, help="bf16, channels_last, fused Adam and compile together")
@click.option("--aspect", type=click.Choice(["1", "2"]), multiple=True, default=["1"], show_default=True,
              help="model.aspect: 1 square, 2 tall (--res px tall, half as wide); twice (--aspect 1 --aspect 2) "
                   "times both in one process, in alternating rounds, and prints the ratio")
@click.option("--rounds", type=click.IntRange(1), default=4, show_default=True,
              help="with two --aspect: alternating timed rounds (--kimg in all per aspect)")
def train(res, batch, arch, cbase, cmax, map_layers, z_dim, kimg, warmup, device, precision, channels_last,
          compile_, cuda_graphs, fused_adam, augment, log_every, images, threads, fast, aspect, rounds):
    """Time full training steps on random images; the last line is JSON."""
    if fast:
        precision, channels_last, fused_adam, compile_ = "bf16", True, True, True
    aspects = tuple(dict.fromkeys(int(a) for a in aspect))
    try:
        from pipeline.bench.train import Setup, bench_aspects, bench_train

        setup = Setup(int(res), batch, arch, cbase, cmax, map_layers, z_dim, device, precision, channels_last,
                      compile_, cuda_graphs, fused_adam, augment, log_every, aspects[0])
        timing = {"kimg": kimg, "warmup": warmup, "images": images, "threads": threads, "echo": click.echo}
        if len(aspects) == 1:
            result = bench_train(setup, **timing)
        else:
            result = bench_aspects(setup, aspects, rounds, **timing)
    except UserError as e:   # e.g. --device cuda without a GPU: one line, no traceback
        raise click.ClickException(str(e))
    click.echo(json.dumps(result))


def _gamma(ctx, param, value):
    try:
        if value == "auto" or float(value) >= 0:
            return value
    except ValueError:
        pass
    raise click.BadParameter(f"{value!r} is neither a number >= 0 nor 'auto'")


@main.command()
@click.option("--images", type=click.Path(file_okay=False, path_type=str), required=True,
              help="a folder of images (searched recursively; its index.csv used where present)")
@click.option("--res", type=click.Choice([str(r) for r in params.RESOLUTIONS]), default="32", show_default=True)
@click.option("--arch", type=click.Choice(["stylegan", "stylegan2"]), default="stylegan2", show_default=True)
@click.option("--cbase", type=click.IntRange(8), default=2048, show_default=True)
@click.option("--cmax", type=click.IntRange(1), default=256, show_default=True)
@click.option("--z-dim", type=click.IntRange(1), default=512, show_default=True, help="z and w width")
@click.option("--map-layers", type=click.IntRange(1, 16), default=2, show_default=True)
@click.option("--batch", type=click.IntRange(2), default=32, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=0.0025, show_default=True)
@click.option("--gamma", callback=_gamma, default="auto", show_default=True,
              help="R1 weight, or auto = 0.0002 x H x W / batch")
@click.option("--pl-weight", type=click.FloatRange(0), default=2.0, show_default=True)
@click.option("--mixing", type=click.FloatRange(0, 1), default=0.9, show_default=True, help="style mixing")
@click.option("--ema-kimg", type=click.FloatRange(0), default=10.0, show_default=True)
@click.option("--augment", type=click.Choice(["none", "diffaugment", "ada"]), default="none", show_default=True)
@click.option("--ada-kimg", type=click.FloatRange(0.001), default=500.0, show_default=True,
              help="ada: thousands of images for p to go from 0 to 1 at the fastest")
@click.option("--kimg", type=click.FloatRange(0, min_open=True), default=12.0, show_default=True)
@click.option("--minutes", type=click.FloatRange(0), default=0.0, show_default=True,
              help="stop training after this many minutes (then score); 0 = train all --kimg")
@click.option("--fakes", type=click.IntRange(2), default=2000, show_default=True)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--threads", type=click.IntRange(0), default=0, help="CPU threads for torch; 0 = torch's default")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=str), default="bench-quality", show_default=True)
@click.option("--aspect", type=click.Choice(["1", "2"]), default="1", show_default=True,
              help="model.aspect: 1 square, 2 tall (--res px tall, half as wide)")
@click.option("--fit", type=click.Choice(["letterbox", "crop"]), default="letterbox", show_default=True,
              help="how the --images are brought to the aspect (train.fit)")
def quality(**flags):
    """Train one resolution on real images, then score G_ema's fakes; the last line is JSON."""
    from pipeline.bench.quality import bench_quality
    from pipeline.core.runner import setup_logging

    setup_logging("bench")
    args = {**flags, "res": int(flags["res"]), "aspect": int(flags["aspect"])}
    try:
        result = bench_quality(**{**args, "images": Path(args["images"]), "out": Path(args["out"])})
    except UserError as e:   # a folder without images, --device cuda without a GPU: one line
        raise click.ClickException(str(e))
    click.echo(json.dumps({**result, **args}))


@main.command()
@click.option("--copies", type=click.IntRange(1), default=25, show_default=True,
              help="copies of data/raw/sample.apk (21 images each) to process")
@click.option("--workers", type=click.IntRange(1), multiple=True, default=(1, 2), show_default=True,
              help="worker processes; repeat to compare")
@click.option("--stages", default="unpack,faces", show_default=True, help="which stages to time")
@click.option("--sample", type=click.Path(exists=True, dir_okay=False), default="data/raw/sample.apk",
              show_default=True)
def data(copies, workers, stages, sample):
    """Images/s of the unpack and faces stages on the sample replicated; the last line is JSON."""
    from pipeline.bench.data import bench_data

    names = [s.strip() for s in stages.split(",") if s.strip()]
    bad = [s for s in names if s not in ("unpack", "faces")]
    if bad:
        raise click.BadParameter(f"unknown stage(s) {bad}; known: unpack, faces", param_hint="--stages")
    try:
        result = bench_data(copies, list(workers), names, sample, echo=click.echo)
    except UserError as e:
        raise click.ClickException(str(e))
    click.echo(json.dumps(result))



@main.command()
@click.option("--raw", type=click.Path(exists=True, file_okay=False), default="data/raw", show_default=True,
              help="a folder of inputs, as data/raw/ holds them")
@click.option("--workers", type=click.IntRange(0), default=0, show_default=True, help="0 = all cores")
def cache(raw, workers):
    """Seconds of unpack with an empty decode cache, then after adding one image; the last line is JSON."""
    from pipeline.bench.data import bench_cache

    try:
        result = bench_cache(Path(raw), workers, echo=click.echo)
    except UserError as e:
        raise click.ClickException(str(e))
    click.echo(json.dumps(result))


@main.command()
@click.option("--checkpoint", required=True, help="a models/res<R> folder or a checkpoint file")
@click.option("--threads", type=click.IntRange(0), default=0, help="CPU threads for torch; 0 = torch's default")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--page", type=click.IntRange(1, 1000), default=32, show_default=True, help="candidates per page")
@click.option("--clients", type=click.IntRange(1, 64), default=6, show_default=True, help="connections at once")
def studio(checkpoint, threads, device, page, clients):
    """Seconds the design studio takes for a page of candidates, over real HTTP; the last line is JSON."""
    from pipeline.bench.studio import bench_studio

    try:
        result = bench_studio(checkpoint, threads, device, page, clients, echo=click.echo)
    except UserError as e:
        raise click.ClickException(str(e))
    click.echo(json.dumps(result))


@main.command()
@click.option("--images", type=click.IntRange(1), default=10_000, show_default=True, help="images in the manifest")
@click.option("--browser/--no-browser", default=True, show_default=True, help="also time the page in Chromium")
@click.option("--size", type=click.IntRange(0, 3), default=0, show_default=True, help="thumbnail size, 0 = smallest")
@click.option("--repeat", type=click.IntRange(1), default=5, show_default=True, help="tries per API timing")
@click.option("--pages", type=click.IntRange(1), default=5, show_default=True, help="pages turned in the browser")
def review(images, browser, size, repeat, pages):
    """Time the review page on a generated manifest; the last line is JSON."""
    from pipeline.bench.review import bench_review

    click.echo(json.dumps(bench_review(images, browser, size, repeat, pages, echo=click.echo)))
