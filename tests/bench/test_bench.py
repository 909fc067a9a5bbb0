"""The benchmarks run and report, and every fast-path switch of the Trainer runs on the CPU and keeps
the numbers: bf16 autocast, channels_last, fused Adam, torch.compile (the CUDA paths use the same code)."""
import json
import math
import subprocess
import sys

import pytest
import torch
from torch._dynamo.utils import counters
from torch.utils._python_dispatch import TorchDispatchMode

from pipeline.bench.train import SyntheticSource, make_trainer
from pipeline.train.trainer import Trainer
from tests.helpers.project import ROOT, env_with_project_on_path

TINY = dict(res=8, batch=4, arch="stylegan2", cbase=64, cmax=16, map_layers=2, z_dim=16, device="cpu",
            precision="fp32", channels_last=False, compile=False, cuda_graphs=False, fused_adam=False,
            augment="diffaugment", log_every=2)


def run_bench(*args) -> tuple[list[str], dict]:
    r = subprocess.run([sys.executable, "-m", "pipeline.bench", *args], cwd=ROOT, capture_output=True,
                       text=True, env=env_with_project_on_path(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    return lines, json.loads(lines[-1])


def train(n: int = 3, **overrides) -> tuple[Trainer, list[dict[str, float]]]:
    """A tiny trainer and the losses of its first n steps. Build and step one trainer at a time:
    the constructor seeds torch's global RNG, which the synthesis and path-length noise draw from."""
    trainer = make_trainer(**{**TINY, **overrides})
    source = SyntheticSource(32, trainer.res, trainer.rt.device)
    return trainer, [{k: v.item() for k, v in trainer.step(source).items()} for _ in range(n)]


def assert_close_losses(a: list[dict], b: list[dict], rel: float):
    assert [d.keys() for d in a] == [d.keys() for d in b]
    for x, y in zip(a, b):
        for k in x:
            assert math.isfinite(x[k]) and math.isfinite(y[k]), (k, x[k], y[k])
            assert abs(x[k] - y[k]) <= rel * max(abs(x[k]), abs(y[k]), 0.1), (k, x[k], y[k])


def test_train_bench_cli_prints_figures_and_settings():
    lines, result = run_bench("train", "--res", "8", "--batch", "4", "--cbase", "64", "--cmax", "16",
                              "--z-dim", "16", "--kimg", "0.03", "--warmup", "1", "--device", "cpu",
                              "--threads", "1")
    assert {"s_per_kimg", "img_per_s", "peak_mem_gb", "res", "batch", "arch", "cbase", "cmax", "map_layers",
            "precision", "device", "torch"} <= result.keys()
    assert result["timed_steps"] == 16 and result["timed_images"] == 64   # 30 images -> one whole R1 cycle
    assert result["s_per_kimg"] > 0 and result["peak_mem_gb"] > 0
    assert abs(result["s_per_kimg"] * result["img_per_s"] - 1000) < 0.02 * 1000
    assert result["channels"] == {"4": 16, "8": 8} and result["map_layers"] == 2
    assert {"loss_D", "loss_G", "r1", "pl"} <= result["losses"].keys()    # both regularisers ran
    assert all(math.isfinite(v) for v in result["losses"].values())
    assert any("s/kimg" in line for line in lines[:-1]) and any("torch=" in line for line in lines[:-1])


def test_train_bench_at_aspect_2_trains_tall_images():
    _, result = run_bench("train", "--res", "8", "--batch", "4", "--cbase", "64", "--cmax", "16", "--z-dim", "16",
                          "--kimg", "0.03", "--warmup", "1", "--device", "cpu", "--threads", "1", "--aspect", "2")
    assert (result["aspect"], result["height"], result["width"]) == (2, 8, 4)
    assert result["s_per_kimg"] > 0 and all(math.isfinite(v) for v in result["losses"].values())
    trainer = make_trainer(**TINY, aspect=2)
    source = SyntheticSource(8, 8, trainer.rt.device, aspect=2)
    assert source.batch(4, trainer.gen).shape == (4, 3, 8, 4) and trainer.G.aspect == trainer.D.aspect == 2
    assert set(trainer.step(source)) >= {"loss_D", "loss_G"}


def test_train_bench_times_square_and_tall_in_alternating_rounds():
    lines, result = run_bench("train", "--res", "8", "--batch", "4", "--cbase", "64", "--cmax", "16", "--z-dim",
                              "16", "--kimg", "0.03", "--warmup", "1", "--device", "cpu", "--threads", "1",
                              "--aspect", "1", "--aspect", "2", "--rounds", "2")
    square, tall = result["aspects"]["1"], result["aspects"]["2"]
    assert (square["width"], tall["width"]) == (8, 4) and square["height"] == tall["height"] == 8
    for r in (square, tall):   # each round one whole R1 cycle: 2 x 16 steps x 4 images
        assert r["timed_steps"] == 32 and r["timed_images"] == 128 and len(r["rounds_s_per_kimg"]) == 2
        assert r["s_per_kimg"] > 0 and {"r1", "pl"} <= r["losses"].keys()
        # Both sides are rounded to 3 decimals, so they may differ in the last place, never by more.
        assert sum(r["rounds_s_per_kimg"]) / 2 == pytest.approx(r["s_per_kimg"], rel=0.01, abs=0.002)
    # The bench divides the unrounded seconds and rounds the ratio; the test has only the seconds rounded to
    # 3 decimals, so the two agree to within what those roundings can move a ratio, never exactly.
    assert result["ratio_to_first"]["1"] == 1.0
    ratio = tall["seconds"] / square["seconds"]
    slack = ratio * (0.0005 / tall["seconds"] + 0.0005 / square["seconds"]) * 1.01 + 0.0005
    assert abs(result["ratio_to_first"]["2"] - ratio) <= slack
    per_round = sorted(t / s for t, s in zip(tall["rounds_s_per_kimg"], square["rounds_s_per_kimg"]))
    assert result["median_round_ratio"]["1"] == 1.0
    assert abs(result["median_round_ratio"]["2"] - sum(per_round) / 2) < 0.002     # the median of two
    rounds = [line for line in lines if line.startswith("round ")]
    assert len(rounds) == 2 and all("aspect 1" in line and "aspect 2" in line for line in rounds)
    assert any(line.startswith("s/kimg over aspect 1: aspect 2") for line in lines)


def test_bf16_autocast_step_is_finite_and_close_to_fp32():
    _, fp32 = train()
    _, bf16 = train(precision="bf16")
    assert_close_losses(fp32, bf16, rel=0.1)
    assert fp32 != bf16   # autocast really ran in bf16


def test_channels_last_matches_contiguous():
    # pl_weight 0: losses.path_length_penalty draws its noise with randn_like, which fills an NHWC
    # image in memory order, so the same draws land on other pixels (equally random, not equal)
    plain, a = train(pl_weight=0.0)
    nhwc, b = train(pl_weight=0.0, channels_last=True)
    conv = nhwc.D.blocks["8"].conv0.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert_close_losses(a, b, rel=1e-4)
    for p, q in zip(plain.G.parameters(), nhwc.G.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_fused_adam_matches_the_default():
    plain, a = train()
    fused, b = train(fused_adam=True)
    assert fused.opt_G.defaults["fused"] and not plain.opt_G.defaults["fused"]
    assert_close_losses(a, b, rel=1e-4)
    for p, q in zip(plain.D.parameters(), fused.D.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


class NoHostReads(TorchDispatchMode):
    """Fails on any op that copies a tensor's value to the host (on CUDA: waits for the GPU)."""
    READS = (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default,
             torch.ops.aten.masked_select.default)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        assert func not in self.READS, f"the step reads a tensor back to the host: {func}"
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("augment", ["diffaugment", "ada"])
def test_step_never_reads_back_to_the_host(augment):
    # fused Adam keeps its step counters on the device; the default keeps them on the CPU (reading
    # those is free on a GPU, but looks the same as a sync here)
    trainer = make_trainer(**{**TINY, "augment": augment, "fused_adam": True})
    source = SyntheticSource(32, trainer.res, trainer.rt.device)
    with NoHostReads():
        out = [trainer.step(source) for _ in range(2)]       # step 0 runs R1 and path length too
    assert {"r1", "pl"} <= out[0].keys()
    with pytest.raises(AssertionError, match="host"), NoHostReads():
        out[0]["loss_D"].item()                                 # the guard itself works


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_step_matches_eager(monkeypatch, backend):
    """Compiled G and D passes (regularisers eager) give the eager losses, from two graphs each (with
    and without grad) and no graph break. aot_eager traces exactly what inductor gets, in seconds;
    inductor itself spends about a minute building C++ kernels on a cold cache."""
    monkeypatch.setattr(Trainer, "compile_backend", backend)
    # inductor draws random numbers its own way: other synthesis noise (scaled by strengths that
    # start at 0, so the first step is exact) and a moved torch RNG (so other path-length noise)
    pl_weight = 2.0 if backend == "aot_eager" else 0.0
    torch._dynamo.reset()
    counters.clear()
    _, eager = train(pl_weight=pl_weight)
    _, compiled = train(pl_weight=pl_weight, compile=True)
    assert_close_losses(eager[:1], compiled[:1], rel=1e-4)
    assert_close_losses(eager, compiled, rel=1e-4 if backend == "aot_eager" else 0.05)
    assert counters["stats"]["unique_graphs"] == 4, dict(counters["stats"])   # both passes, both ways
    assert not counters["graph_break"], dict(counters["graph_break"])
    torch._dynamo.reset()


def test_data_bench_cli_times_unpack_and_faces():
    lines, result = run_bench("data", "--copies", "1", "--workers", "1", "--workers", "2")
    for stage in ("unpack", "faces"):
        runs = result[stage]
        assert set(runs) == {"1", "2"}, runs
        assert all(r["images"] >= 20 and r["img_per_s"] > 0 for r in runs.values())
        assert runs["1"]["speedup"] == 1.0 and runs["2"]["speedup"] > 0
    assert result["faces"]["1"]["faces"] == result["faces"]["2"]["faces"] > 0
    assert any("unpack, 2 worker(s)" in line for line in lines)


def test_cache_bench_times_a_cold_and_a_warm_unpack(tmp_path):
    from PIL import Image

    for i in range(4):
        (tmp_path / "sprites").mkdir(exist_ok=True)
        Image.new("RGBA", (70 + i, 80), (60 * i, 20, 200, 255)).save(tmp_path / "sprites" / f"s{i}.png")
    lines, result = run_bench("cache", "--raw", str(tmp_path), "--workers", "1")
    assert (result["cold"]["decoded"], result["cold"]["reused"], result["cold"]["images"]) == (4, 0, 4)
    assert (result["warm"]["decoded"], result["warm"]["reused"], result["warm"]["images"]) == (1, 4, 5)
    assert result["cold"]["seconds"] > 0 and result["warm"]["seconds"] > 0 and result["cache_mb"] >= 0
    assert any(line.startswith("unpack warm: decoded 1, reused 4") for line in lines)
