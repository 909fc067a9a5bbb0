"""The engine batches requests off the request threads and caches what it drew: generator calls are
counted by a forward hook on the real synthesis network, over real HTTP requests from 16 threads."""
from __future__ import annotations

import io
import threading

import numpy as np
from PIL import Image

from pipeline.evaluate import sampling
from pipeline.studio.engine import Engine, Spec


def count_calls(engine: Engine, hold_first: int = 0) -> list[int]:
    """Images per generator call, as the synthesis network sees them. hold_first=N: the first call waits
    until the rest of N one-image requests are queued, so they arrive while the model draws (the case the
    batching is for) and the count does not depend on how fast the threads start."""
    calls: list[int] = []

    def hook(_module, args):
        n = args[0].shape[0]
        calls.append(n)
        if hold_first and len(calls) == 1:
            assert engine.wait_queued(hold_first - n, timeout=120), "the other requests never arrived"

    engine.G.synthesis_net.register_forward_pre_hook(hook)
    return calls


def test_sixteen_concurrent_requests_cost_at_most_three_generator_calls(models, serve):
    studio = serve(models / "res16")
    calls = count_calls(studio.engine, hold_first=16)
    results: dict[int, tuple] = {}

    def fetch(seed):
        results[seed] = studio.get(f"/api/image?seed={100 + seed}&psi=0.9")

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r[0] == 200 and r[2] == "image/png" for r in results.values())
    assert 1 <= len(calls) <= 3 and sum(calls) == 16, calls
    assert studio.engine.calls == len(calls)
    # Batched or not, each image is its own seed's (up to a grey level of float rounding).
    want = sampling.images_from_seeds(studio.engine.G, range(100, 116), 16, psi=0.9, batch=1)
    for i, (_, body, _) in sorted(results.items()):
        got = np.asarray(Image.open(io.BytesIO(body))).astype(int)
        assert np.abs(got - want[i]).max() <= 1


def test_a_cached_image_costs_no_call_and_equal_requests_share_one_draw(models, serve):
    studio = serve(models / "res16")
    calls = count_calls(studio.engine)
    first = studio.get("/api/mix?a=1&b=2&band=middle")
    again = studio.get("/api/mix?a=1&b=2&band=middle&psi=1")          # the same settings, spelled otherwise
    assert first[0] == 200 and first[1] == again[1] and calls == [1]
    studio.get("/api/mix?a=1&b=2&band=middle&psi=0.5")                 # other settings: drawn
    assert calls == [1, 1]

    engine = studio.engine
    futures = [engine.submit(Spec("image", 50)) for _ in range(4)]
    assert len({id(f) for f in futures}) == 1                          # in flight once
    assert futures[0].result(120)[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_long_strip_and_random_noise_are_drawn_apart(models):
    engine = Engine(models / "res16", "cpu", max_batch=8)
    try:
        calls = count_calls(engine)
        engine.png(Spec("interpolate", 1, b=2, steps=20))
        assert calls == [20]                        # a strip over max_batch still goes in one call
        engine.png(Spec("image", 3, noise="random"))
        assert calls == [20, 1]
    finally:
        engine.close()
