"""Training curves with dvclive, kept consistent across kills and resumes.

A resumed stage repeats the steps after its last snapshot; the rows those steps had already logged are
cut off first, so every step appears once and in order (`dvc plots show logs/res<R>`).
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from pipeline.core.files import atomic_write, write_json, write_text

log = logging.getLogger("train")

# The series dvc.yaml's top-level `plots:` draws for every train@R (kimg is their x axis).
PLOTTED = ("kimg", "loss_G", "loss_D", "real_score", "fake_score", "augment_p", "img_per_s")
SKIPPED = "skipped.json"


def _clear(folder: Path) -> None:
    for child in folder.glob("*"):
        shutil.rmtree(child) if child.is_dir() else child.unlink()


def write_skipped(folder: Path, record: dict) -> None:
    """The log folder of a stage that does not train: `record` (why) and a header-only file for each
    plotted series. Curves of an earlier run go: the model they describe is gone from models/res<R>.
    With the empty files `dvc plots show` draws empty charts instead of failing to load missing ones,
    and DVC does not warn that this persist output is an empty folder."""
    folder.mkdir(parents=True, exist_ok=True)
    _clear(folder)
    for name in PLOTTED:
        write_text(folder / "plots" / "metrics" / f"{name}.tsv", f"step\t{name}\n")
    write_json(folder / SKIPPED, record)


def _row_step(line: str, col: int, width: int) -> int | None:
    cells = line.split("\t")
    if len(cells) != width:
        return None
    try:
        return int(float(cells[col]))
    except ValueError:
        return None


def trim_tsv(folder: Path, last_step: int) -> None:
    """Drop the rows logged after `last_step` from every dvclive .tsv under `folder`.

    A kill can cut a file mid-row: an unterminated last line, or a row of the wrong width, is dropped too.
    """
    for path in folder.rglob("*.tsv"):
        text = path.read_text(errors="replace")
        lines = text.split("\n")
        complete = lines[:-1]                      # the piece after the last newline is unfinished
        if not complete or "step" not in complete[0].split("\t"):
            path.unlink()
            continue
        header = complete[0].split("\t")
        col = header.index("step")
        kept = [complete[0]]
        for line in complete[1:]:
            step = _row_step(line, col, len(header))
            if step is not None and step <= last_step:
                kept.append(line)
        with atomic_write(path, "w") as f:
            f.write("\n".join(kept) + "\n")


class LossLog:
    def __init__(self,
        folder: Path,               # the stage's dvclive folder (a DVC persist output)
        resume_step: int | None,    # continue after this step, or None to start a new log
        enabled: bool = True,       # only rank 0 logs
    ):
        self.folder, self.live = Path(folder), None
        if not enabled:
            return
        from dvclive import Live

        (self.folder / SKIPPED).unlink(missing_ok=True)
        if resume_step is None:
            _clear(self.folder)
        else:
            trim_tsv(self.folder, resume_step)
            # dvclive rewrites its summary in place; a kill can leave it empty. Restart it at our step.
            write_json(self.folder / "metrics.json", {"step": resume_step})
        self.live = Live(str(self.folder), resume=resume_step is not None, dvcyaml=None,
                         save_dvc_exp=False, report=None)

    def log(self, step: int, values: dict[str, float]) -> None:
        if self.live is None:
            return
        self.live.step = step
        for name, value in values.items():
            self.live.log_metric(name, value)
        self.live.next_step()

    def rewind(self, step: int) -> None:
        if self.live is not None:
            trim_tsv(self.folder, step)

    def close(self) -> None:
        if self.live is not None:
            self.live.end()
