"""Draw characters from a trained model (not a DVC stage; run it when you like a model).

    python -m stages.generate --checkpoint models/res32 --seeds 0-7 --out out/
        one PNG per seed (seed0000.png ...), at the model's resolution and shape (a 32 px model
        trained at model.aspect 2 writes PNGs 32 px tall and 16 wide; the checkpoint says which)
    ... --grid                              + grid.png of those seeds
    ... --mix-rows 10-13 --mix-cols 0-5     + style_mixing.png (rows: sources B, columns: sources A)
    ... --interpolate 3,9 --steps 8         + interpolation_3-9.png (linear in w)
    ... --favourites studio/favourites.json + favourite-<id>.png and -x4.png (nearest) per design studio
                                              favourite of this checkpoint (others: one line each, skipped)

Grids are enlarged (nearest) so each cell is at least --min-cell px tall (tall cells keep their shape);
the single images are not.
"""
import click

from pipeline.core.runner import run_stage


@click.command()
@click.option("--checkpoint", required=True, help="a models/res<R> folder (its final checkpoint) or a checkpoint file")
@click.option("--seeds", default="", help="seeds of the images to write: 0-7, 1,5,9 or 0-3,10")
@click.option("--trunc", default=1.0, show_default=True, type=float, help="truncation psi (0.7 = typical, 1 = none)")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output folder")
@click.option("--grid", is_flag=True, help="also write grid.png of the seeds")
@click.option("--mix-rows", default="", help="style mixing: seeds of sources B (rows)")
@click.option("--mix-cols", default="", help="style mixing: seeds of sources A (columns)")
@click.option("--mix-band", default="coarse", show_default=True, type=click.Choice(["coarse", "middle", "fine"]),
              help="styles taken from B: coarse 4-8 px, middle 16-32 px, fine 64 px and up")
@click.option("--interpolate", default="", help="two seeds A,B: a strip from A to B")
@click.option("--steps", default=8, show_default=True, type=int, help="images in the interpolation strip")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--batch", default=32, show_default=True, type=int, help="images per generator call")
@click.option("--noise", default="const", show_default=True, type=click.Choice(["const", "random"]),
              help="const: the model's fixed noise; random: fresh noise seeded by each image's seed")
@click.option("--min-cell", default=64, show_default=True, type=int,
              help="enlarge grid cells to at least this tall (px)")
@click.option("--favourites", default="", help="a design studio favourites file: redraw its favourites")
def main(checkpoint, seeds, trunc, out, grid, mix_rows, mix_cols, mix_band, interpolate, steps, device, batch,
         noise, min_cell, favourites):
    """Write images of a trained generator: one PNG per seed, and optional grids."""
    def body():
        from pipeline.evaluate.sampling import generate

        if favourites:
            from pipeline.studio.favourites import export

            export(checkpoint, favourites, out, device=device)
            if not (seeds or mix_rows or mix_cols or interpolate or grid):
                return
        generate(checkpoint, seeds=seeds, psi=trunc, out=out, grid=grid, mix_rows=mix_rows, mix_cols=mix_cols,
                 mix_band=mix_band, interpolate=interpolate, steps=steps, device=device, batch=batch,
                 noise=noise, min_cell=min_cell)

    run_stage("generate", body, params_file=None)


if __name__ == "__main__":
    main()
