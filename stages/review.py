"""Stage `review`: the manifest of kept and rejected images, and the reviewed data sets.

`python -m stages.review` runs the DVC stage; `python -m stages.review serve` starts the review page.
"""
import click

from pipeline.core import params
from pipeline.core.runner import run_stage


def build() -> None:
    from pipeline.review.stage import run

    run(params.load("review"))


@click.group(invoke_without_command=True)
@click.pass_context
def main(ctx):
    """Without a command: run the review stage as `dvc repro` does."""
    if ctx.invoked_subcommand is None:
        run_stage("review", build)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8765, show_default=True, type=int, help="port (0 = any free port)")
@click.option("--root", default=".", show_default=True, type=click.Path(file_okay=False),
              help="project root (holds data/review/manifest.csv and review/decisions.csv)")
@click.option("--open", "open_browser", is_flag=True, help="open the page in the default web browser")
def serve(host, port, root, open_browser):
    """Open the review page: keep or reject images; decisions go to review/decisions.csv."""
    from pipeline.review.server import serve as serve_page

    run_stage("review-page", lambda: serve_page(host=host, port=port, root=root, open_browser=open_browser))


if __name__ == "__main__":
    main()
