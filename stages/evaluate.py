"""Stage `evaluate`: grids and metrics of the final model (`python -m stages.evaluate`)."""
import click

from pipeline.core import params
from pipeline.core.runner import run_stage


def body() -> None:
    from pipeline.core.colours import parse_colour
    from pipeline.evaluate.stage import run

    train = params.load("train")
    run(params.load("eval"), train.dataset, train.fit, parse_colour(params.load("flatten").background),
        final_res=train.final_res, aspect=params.load("model").aspect)


@click.command(help=__doc__)
def cli() -> None:
    run_stage("evaluate", body)


if __name__ == "__main__":
    cli()
