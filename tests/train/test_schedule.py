"""Which train@R stages train, from where, for how long."""
from pipeline.core import params
from pipeline.train.schedule import fade_alpha, progressive_kimg, stage_plan, trained_resolutions


def tp(**kw):
    sched = {str(r): {"batch": 4, "lr": 0.001, "fade_kimg": 1.0, "stable_kimg": 2.0} for r in params.RESOLUTIONS}
    return params.parse("train", {"schedule": sched, **kw})


def test_progressive_8_to_32():
    t = tp(start_res=8, final_res=32)
    assert trained_resolutions(t) == [8, 16, 32]
    first = stage_plan(8, t)
    assert first.train and first.grow_from is None and (first.fade_kimg, first.stable_kimg) == (0.0, 3.0)
    grow = stage_plan(16, t)
    assert grow.train and grow.grow_from == 8 and (grow.fade_kimg, grow.stable_kimg) == (1.0, 2.0)
    for r in (64, 128, 256):
        p = stage_plan(r, t)
        assert not p.train and p.reason == "above train.final_res"


def test_paper_16_to_256_skips_8():
    t = tp(start_res=16, final_res=256)
    assert not stage_plan(8, t).train and stage_plan(8, t).reason == "below train.start_res"
    assert stage_plan(16, t).grow_from is None and stage_plan(256, t).grow_from == 128


def test_progressive_false_trains_only_the_final_resolution_for_the_same_images():
    t = tp(start_res=8, final_res=32, progressive=False)
    assert trained_resolutions(t) == [32]
    assert all(not stage_plan(r, t).train for r in (8, 16, 64))
    assert "progressive is false" in stage_plan(8, t).reason
    final = stage_plan(32, t)
    assert final.grow_from is None and final.fade_kimg == 0
    assert final.stable_kimg == progressive_kimg(t) == 9.0
    assert stage_plan(32, tp(final_res=32, progressive=False, scratch_kimg=5.0)).stable_kimg == 5.0


def test_fade_alpha():
    plan = stage_plan(16, tp(start_res=8, final_res=32))
    assert fade_alpha(0, plan) == 0.0 and fade_alpha(500, plan) == 0.5 and fade_alpha(5000, plan) == 1.0
    assert fade_alpha(0, stage_plan(8, tp(start_res=8))) == 1.0


def test_a_plan_does_not_depend_on_final_res_unless_it_changes_that_stage(tmp_path):
    from pipeline.train.schedule import plan_record, write_plans
    low, high = tp(start_res=8, final_res=16), tp(start_res=8, final_res=32)
    for r in (8, 16, 64, 128, 256):
        assert plan_record(r, low) == plan_record(r, high), r
    assert plan_record(32, low) != plan_record(32, high)
    # fp16 puts the top 4 resolutions of final_res in fp16: then the lower stages' maths changes too
    f16_low, f16_high = tp(final_res=16, precision="fp16"), tp(final_res=128, precision="fp16")
    assert plan_record(8, f16_low)["fp16_res"] == [8] and plan_record(8, f16_high)["fp16_res"] == []
    assert write_plans(high, tmp_path) == [8, 16, 32]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"res{r}.json" for r in (8, 16, 32, 64, 128, 256))
