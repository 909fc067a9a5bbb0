"""Stage `evaluate`: grids and metrics of the final model (`python -m stages.evaluate`)."""
from pipeline import params
from pipeline.runner import run_stage


def body() -> None:
    from pipeline.evaluate import run
    from pipeline.images import parse_colour

    train = params.load("train")
    run(params.load("eval"), train.dataset, train.fit, parse_colour(params.load("flatten").background))


if __name__ == "__main__":
    run_stage("evaluate", body)
