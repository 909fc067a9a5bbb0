"""Stage `faces`: detect anime faces in the flat images and crop them, head to half body."""
from pipeline.core import params
from pipeline.core.runner import run_stage


def main() -> None:
    from pipeline.extract.faces import run

    run(params.load("faces"))


if __name__ == "__main__":
    run_stage("faces", main)
