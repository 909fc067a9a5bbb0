"""The worker pool survives crashing, hanging and failing tasks; only those tasks are lost."""
from pipeline.extract.workers import WorkerPool
from tests.helpers.worker_tasks import behave


def run(tasks, **kw):
    pool = WorkerPool(behave, workers=2, **kw)
    # Only the hanging task may run into its time limit: a loaded machine can take seconds to start a
    # worker, so the others get a limit no healthy task reaches.
    return dict(pool.run(tasks, timeout=lambda t: 3.0 if t == "hang" else 600.0))


def test_crash_and_hang_cost_one_task_each():
    tasks = ["ok:1", "crash", "ok:2", "hang", "ok:3", "raise", "ok:4"]
    out = run(tasks)
    assert {t: o.value for t, o in out.items() if o.ok} == {"ok:1": 2, "ok:2": 4, "ok:3": 6, "ok:4": 8}
    assert out["crash"].error == "worker crashed (SIGSEGV)"
    assert out["hang"].error == "timed out after 3 s"
    assert out["raise"].error == "ValueError: bad texture with a second line"


def test_memory_limit_turns_a_hog_into_one_failure():
    out = run(["hog:3000", "ok:5"], memory_mb=1024)
    assert out["ok:5"].value == 10
    assert not out["hog:3000"].ok and "memory" in out["hog:3000"].error


def test_follow_up_tasks_run_too():
    pool = WorkerPool(behave, workers=1)
    seen = []
    for task, outcome in pool.run(["ok:1"]):
        seen.append(task)
        if task == "ok:1":
            pool.submit("ok:7")
    assert seen == ["ok:1", "ok:7"]
