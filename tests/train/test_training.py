"""Training: exact checkpoints, bit-for-bit resume, frozen lower layers, and that it learns at all."""
import copy
import math

import pytest
import torch

from pipeline.train import checkpoint
from pipeline.train.dataset import ImageSource, pack
from pipeline.train.schedule import stage_plan
from pipeline.train.trainer import Runtime, Trainer
from tests.helpers.tiny import make_dataset, tiny_params

CPU = torch.device("cpu")


@pytest.fixture
def source8(tmp_path):
    folder = make_dataset(tmp_path)
    return ImageSource(pack(folder, 8, "letterbox", cache=tmp_path / "cache"), CPU)


def trainer(res=8, **train):
    tp, mp = tiny_params(train={"r1_interval": 2, **train.pop("train", {})}, model=train.pop("model", None))
    return Trainer(stage_plan(res, tp), tp, mp, Runtime(CPU))


def assert_same_state(a: dict, b: dict, path=""):
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same_state(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{path}[{i}]")
    elif torch.is_tensor(a):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


@pytest.mark.parametrize("arch", ["stylegan", "stylegan2"])
def test_resume_continues_bit_for_bit(tmp_path, source8, arch):
    model = {"arch": arch}
    train = {"pl_weight": 2.0, "pl_interval": 2, "augment": "ada"}
    straight = trainer(model=model, train=train)
    for _ in range(6):
        straight.step(source8)

    first = trainer(model=model, train=train)
    for _ in range(3):
        first.step(source8)
    path = tmp_path / "snap.pt"
    checkpoint.save(path, first.state_dict())
    resumed = trainer(model=model, train=train)
    resumed.load_state_dict(checkpoint.load(path))
    for _ in range(3):
        resumed.step(source8)
    a, b = straight.state_dict(), resumed.state_dict()
    for key in ("train_seconds",):
        a.pop(key), b.pop(key)
    assert_same_state(a, b)


def test_ada_adjusts_p_every_4_steps_by_its_step_and_checkpoints_it(source8):
    t = trainer(train={"augment": "ada", "ada_kimg": 0.05})
    step = t.plan.batch * 4 / 50
    ps = []
    for _ in range(12):
        t.step(source8)
        ps.append(t.augment.probability)
    assert ps[:3] == [0.0] * 3 and ps[4:7] == [ps[3]] * 3 and ps[8:11] == [ps[7]] * 3
    moves = [round(abs(b - a) / step, 9) for a, b in zip([0.0, ps[3], ps[7]], [ps[3], ps[7], ps[11]])]
    assert set(moves) <= {0.0, 1.0} and 1.0 in moves
    assert t.state_dict()["augment"]["p"] == ps[-1]


def test_lazy_regularisers_are_their_own_adam_steps_with_the_k_over_k_plus_1_correction(source8):
    t = trainer(model={"arch": "stylegan2"}, train={"r1_interval": 2, "pl_weight": 2.0, "pl_interval": 3})
    for opt, k in ((t.opt_D, 2), (t.opt_G, 3)):
        group = opt.param_groups[0]
        assert group["lr"] == pytest.approx(t.plan.lr * k / (k + 1))
        assert group["betas"] == (0.0, pytest.approx(0.99 ** (k / (k + 1))))

    def adam_steps(opt):
        return int(next(iter(opt.state.values()))["step"])

    counts = []
    for _ in range(4):
        out = t.step(source8)
        counts.append((adam_steps(t.opt_D), adam_steps(t.opt_G), "r1" in out, "pl" in out))
    # steps 0 and 2 add a Dreg step, steps 0 and 3 a Greg step
    assert counts == [(2, 2, True, True), (3, 3, False, False), (5, 4, True, False), (6, 6, False, True)]


def test_path_length_averages_over_the_ws_the_resolution_uses():
    from pipeline.gan import losses
    from pipeline.gan.networks import build_networks
    _, mp = tiny_params(model={"arch": "stylegan2"})
    G, _ = build_networks(mp, max_res=16)                        # more ws than res 8 uses
    z = torch.randn(3, mp.z_dim, generator=torch.Generator().manual_seed(0))

    def make_ws(z):
        return G.mapping(z)

    torch.manual_seed(5)
    penalty, mean = losses.path_length_penalty(G, z, 8, 1.0, torch.zeros([]), make_ws)
    torch.manual_seed(5)
    ws = make_ws(z)
    img = G.synthesis(ws, 8, 1.0, noise_mode="random")
    noise = torch.randn(img.shape) / math.sqrt(8 * 8)
    (grad,) = torch.autograd.grad((img * noise).sum(), ws)
    assert ws.shape[1] == G.num_ws(16) > G.num_ws(8) == 4
    lengths = torch.sqrt(sum(grad[:, i].square().sum(1) for i in range(4)) / 4)
    expected_mean = 0.01 * lengths.mean()
    assert torch.allclose(mean, expected_mean, rtol=1e-5)
    assert torch.allclose(penalty, (lengths - expected_mean).square().mean(), rtol=1e-5)


def test_checkpoint_round_trip_and_damage(tmp_path, source8):
    t = trainer()
    t.step(source8)
    state = t.state_dict()
    path = tmp_path / "c.pt"
    checkpoint.save(path, state)
    assert_same_state(checkpoint.load(path), copy.deepcopy(state))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(checkpoint.BadCheckpoint, match="damaged"):
        checkpoint.load(path)
    path.write_bytes(bytes(data[: len(data) // 3]))
    path.with_name("c.pt.sha256").unlink()
    with pytest.raises(checkpoint.BadCheckpoint, match="not a readable checkpoint"):
        checkpoint.load(path)


def test_damaged_snapshot_falls_back_to_the_previous_one(tmp_path, source8):
    t = trainer()
    folder = tmp_path / "snaps"
    for images in (16, 32):
        t.step(source8)
        checkpoint.save(checkpoint.snapshot_path(folder, "abc", images), t.state_dict())
    checkpoint.save(checkpoint.snapshot_path(folder, "other", 48), t.state_dict())
    newest = checkpoint.snapshot_path(folder, "abc", 32)
    newest.write_bytes(newest.read_bytes()[:100])
    state = checkpoint.latest_snapshot(folder, "abc")
    assert state is not None and state["step"] == 1
    assert checkpoint.latest_snapshot(folder, "nothing") is None


def test_freeze_lower_keeps_lower_layers(tmp_path):
    folder = make_dataset(tmp_path)
    src16 = ImageSource(pack(folder, 16, "letterbox", cache=tmp_path / "cache"), CPU)
    t = trainer(16, train={"freeze_lower": True})
    before8 = [p.detach().clone() for p in t.G.params_at(8) + t.D.params_at(8)]
    before16 = [p.detach().clone() for p in t.G.params_at(16)]
    for _ in range(3):
        t.step(src16)
    assert all(torch.equal(a, b) for a, b in zip(before8, t.G.params_at(8) + t.D.params_at(8)))
    assert not all(torch.equal(a, b) for a, b in zip(before16, t.G.params_at(16)))


def test_learns_the_colour_of_flat_images(tmp_path):
    """A few hundred steps on flat reddish images move the generated colours towards the data's."""
    folder = make_dataset(tmp_path)
    src = ImageSource(pack(folder, 8, "letterbox", cache=tmp_path / "cache"), CPU)
    target = src.images.float().mean(dim=(0, 2, 3)) / 127.5 - 1
    # r1_gamma 1.0: the setting these 150 steps were sized with (auto gives 0.0016 here, and D then
    # takes longer to settle than this short test runs)
    t = trainer(train={"augment": "none", "r1_gamma": 1.0, "schedule": {str(r): {"batch": 8, "lr": 0.003, "fade_kimg": 2,
                                                                  "stable_kimg": 2} for r in (8, 16, 32, 64, 128, 256)}})
    z = torch.randn(64, 32, generator=torch.Generator().manual_seed(1))

    def distance():
        with torch.no_grad():
            return (t.G(z, 8, noise_mode="const").mean(dim=(0, 2, 3)) - target).abs().mean().item()

    start = distance()
    for _ in range(150):
        t.step(src)
    end = distance()
    assert end < 0.5 * start and end < 0.15, (start, end)


def test_a_batch_the_minibatch_std_group_does_not_divide_is_one_clear_error():
    from pipeline.core.errors import UserError
    from pipeline.train.schedule import StagePlan
    from pipeline.train.stage import runtime

    tp, mp = tiny_params(train={"final_res": 8})
    with pytest.raises(UserError, match=r"train.schedule.8.batch 6 .* groups of 4 do not divide"):
        Trainer(StagePlan(8, True, "test", None, 0.0, 0.1, 6, 0.002), tp, mp, runtime(tp))
    Trainer(StagePlan(8, True, "test", None, 0.0, 0.1, 2, 0.002), tp, mp, runtime(tp))   # group of 2


def test_auto_r1_gamma_is_set_per_stage_from_its_resolution_and_batch():
    from pipeline.train.schedule import StagePlan
    from pipeline.train.stage import runtime

    tp, mp = tiny_params(train={"final_res": 16, "r1_gamma": "auto"})
    for res, batch in ((8, 8), (16, 4)):
        trainer = Trainer(StagePlan(res, True, "test", None, 0.0, 0.1, batch, 0.002), tp, mp, runtime(tp))
        assert trainer.r1_gamma == pytest.approx(0.0002 * res * res / batch)
