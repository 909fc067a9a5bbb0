"""Stage `unpack`: APKs, OBBs, Unity files and images in data/raw/ -> RGBA art in data/extracted/."""
from pipeline import params
from pipeline.runner import run_stage


def main() -> None:
    from pipeline.unpack import run

    run(params.load("unpack"))


if __name__ == "__main__":
    run_stage("unpack", main)
