"""The design studio (not a DVC stage; run it when you like a model):

    python -m stages.studio --checkpoint models/res32 [--host 127.0.0.1] [--port 8766] [--device auto]

prints the page's URL and serves it until Ctrl-C. Favourites go to studio/favourites.json (git-tracked).
"""
import click

from pipeline.core.runner import run_stage


@click.command()
@click.option("--checkpoint", required=True, help="a models/res<R> folder (its final checkpoint) or a checkpoint file")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8766, show_default=True, type=int, help="port (0 = any free port)")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--favourites", default="studio/favourites.json", show_default=True,
              type=click.Path(dir_okay=False), help="the favourites file (git-tracked; never under models/)")
@click.option("--threads", default=0, type=click.IntRange(0), help="CPU threads for torch; 0 = torch's default")
@click.option("--open", "open_browser", is_flag=True, help="open the page in the default web browser")
def main(checkpoint, host, port, device, favourites, threads, open_browser):
    """Open the design studio: browse, mix and keep a trained generator's characters."""
    def body():
        import torch

        from pipeline.studio.server import serve

        if threads:
            torch.set_num_threads(threads)
        serve(checkpoint, host=host, port=port, device=device, favourites=favourites, open_browser=open_browser)

    run_stage("studio", body, params_file=None)


if __name__ == "__main__":
    main()
