"""Stage `unpack`: APKs, OBBs, Unity files and images in data/raw/ -> RGBA art in data/extracted/."""
import click

from pipeline.core import params
from pipeline.core.runner import run_stage


def main() -> None:
    from pipeline.extract.unpack import run

    run(params.load("unpack"))


@click.command(help=__doc__)
def cli() -> None:
    run_stage("unpack", main)


if __name__ == "__main__":
    cli()
