"""Stage train@R: one resolution of progressive growing (`python -m stages.train --res R`)."""
import click

from pipeline.core import params
from pipeline.core.runner import run_stage


@click.command()
@click.option("--res", type=click.Choice(["8", "16", "32", "64", "128", "256"]), required=True,
              help="the resolution this stage trains")
def main(res):
    def body():
        from pipeline.core.colours import parse_colour
        from pipeline.train.stage import run

        background = parse_colour(params.load("flatten").background)
        run(int(res), params.load("train"), params.load("model"), background)

    run_stage(f"train@{res}", body)


if __name__ == "__main__":
    main()
