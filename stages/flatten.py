"""Stage `flatten`: RGBA art -> RGB on a background (or alpha dropped, as the paper did)."""
from pipeline.core import params
from pipeline.core.runner import run_stage


def main() -> None:
    from pipeline.extract.flatten import run

    run(params.load("flatten"))


if __name__ == "__main__":
    run_stage("flatten", main)
