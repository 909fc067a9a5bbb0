"""Stage `faces`: detect anime faces in the flat images and crop them, head to half body."""
import click

from pipeline.core import params
from pipeline.core.runner import run_stage


def main() -> None:
    from pipeline.extract.faces import run

    run(params.load("faces"))


@click.command(help=__doc__)
def cli() -> None:
    run_stage("faces", main)


if __name__ == "__main__":
    cli()
