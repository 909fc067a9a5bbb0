"""Which training stages train, from where, and for how long: one function, used by stages and tests.

`write_plans` is the stage `schedule`: it writes models/schedule/res<R>.json, what train@R will do, and
each train@R depends on its own file instead of the params that decide it. So a change of
train.final_res re-runs only the stages whose plan it changes (raising it: the new resolutions).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.core.params import RESOLUTIONS, TrainParams


@dataclass(frozen=True)
class StagePlan:
    res: int
    train: bool                     # false: the stage writes skipped.json and exits
    reason: str = ""                # why it is skipped, or how it starts
    grow_from: int | None = None    # the resolution whose model this stage continues (None: from scratch)
    fade_kimg: float = 0.0          # thousands of images blending the new resolution in
    stable_kimg: float = 0.0        # thousands of images at full strength
    batch: int = 0
    lr: float = 0.0

    @property
    def total_kimg(self) -> float:
        return self.fade_kimg + self.stable_kimg


def trained_resolutions(tp: TrainParams) -> list[int]:
    if not tp.progressive:
        return [tp.final_res]
    return [r for r in RESOLUTIONS if tp.start_res <= r <= tp.final_res]


def progressive_kimg(tp: TrainParams) -> float:
    """Images (thousands) the progressive schedule shows in all, from start_res to final_res."""
    return sum(tp.phase(r).fade_kimg + tp.phase(r).stable_kimg
               for r in RESOLUTIONS if tp.start_res <= r <= tp.final_res)


def stage_plan(res: int, tp: TrainParams) -> StagePlan:
    """The plan of train@res. The first trained resolution has nothing to fade in from, so it trains
    its fade and stable images at full strength; progressive=false trains only final_res from scratch,
    for as many images as the progressive schedule would show (scratch_kimg overrides), so both runs
    cost the same and compare fairly."""
    if res not in RESOLUTIONS:
        raise ValueError(f"resolution {res} is not one of {RESOLUTIONS}")
    phase = tp.phase(res)
    if res not in trained_resolutions(tp):
        # no numbers in the reason: a plan that did not change must read the same (DVC re-runs on it)
        if not tp.progressive:
            why = "train.progressive is false: only train.final_res trains"
        else:
            why = "below train.start_res" if res < tp.start_res else "above train.final_res"
        return StagePlan(res, False, why)
    if not tp.progressive:
        kimg = tp.scratch_kimg or progressive_kimg(tp)
        return StagePlan(res, True, "from scratch at the final resolution (progressive=false)", None,
                         0.0, kimg, phase.batch, phase.lr)
    if res == tp.start_res:
        return StagePlan(res, True, "from scratch (first resolution)", None, 0.0,
                         phase.fade_kimg + phase.stable_kimg, phase.batch, phase.lr)
    return StagePlan(res, True, f"grows from {res // 2}", res // 2, phase.fade_kimg, phase.stable_kimg,
                     phase.batch, phase.lr)


def fade_alpha(images_seen: int, plan: StagePlan) -> float:
    """Blend weight of the new resolution after `images_seen` images of this stage (1 when stable)."""
    fade = plan.fade_kimg * 1000
    if plan.grow_from is None or fade <= 0:
        return 1.0
    return min(1.0, images_seen / fade)


def plan_record(res: int, tp: TrainParams) -> dict:
    """What train@res does, as written to models/schedule/res<R>.json: its plan, and the fp16 blocks
    where train.precision is fp16 (the only way train.final_res reaches a grown stage's maths)."""
    from pipeline.gan.precision import fp16_resolutions

    record = asdict(stage_plan(res, tp))
    if record["train"] and tp.precision == "fp16":
        record["fp16_res"] = [r for r in fp16_resolutions(tp.final_res) if r <= res]
    return record


def write_plans(tp: TrainParams, out: Path = Path("models/schedule")) -> list[int]:
    """models/schedule/res<R>.json for every resolution (DVC hashes contents: a plan that did not change
    re-runs nothing); returns the trained resolutions."""
    from pipeline.core.files import write_json

    out.mkdir(parents=True, exist_ok=True)
    for res in RESOLUTIONS:
        write_json(out / f"res{res}.json", plan_record(res, tp))
    return trained_resolutions(tp)
