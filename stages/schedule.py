"""Stage `schedule`: what each train@R will do, one file each (`python -m stages.schedule`).

train.start_res, train.final_res, train.progressive and the schedule decide which resolutions train and
how; each train@R depends on its models/schedule/res<R>.json rather than on those params, so raising
final_res re-runs only the new resolutions."""
import logging

import click

from pipeline.core import params
from pipeline.core.runner import run_stage


def body() -> None:
    from pipeline.train.schedule import write_plans

    trained = write_plans(params.load("train"))
    logging.getLogger("schedule").info("schedule: train@%s train; the other train stages skip",
                                       ", train@".join(str(r) for r in trained))


@click.command(help=__doc__)
def cli() -> None:
    run_stage("schedule", body)


if __name__ == "__main__":
    cli()
