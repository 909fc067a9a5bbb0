"""Stage `faces`: detect anime faces in the flat images and crop them, head to half body."""
from pipeline import params
from pipeline.runner import run_stage


def main() -> None:
    from pipeline.faces import run

    run(params.load("faces"))


if __name__ == "__main__":
    run_stage("faces", main)
