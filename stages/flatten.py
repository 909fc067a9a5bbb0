"""Stage `flatten`: RGBA art -> RGB on a background (or alpha dropped, as the paper did)."""
import click

from pipeline.core import params
from pipeline.core.runner import run_stage


def main() -> None:
    from pipeline.extract.flatten import run

    run(params.load("flatten"))


@click.command(help=__doc__)
def cli() -> None:
    run_stage("flatten", main)


if __name__ == "__main__":
    cli()
