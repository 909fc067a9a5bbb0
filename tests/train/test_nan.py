"""Numerical health: NaN/inf is caught within log_every steps, rolled back or stopped, never saved."""
import pytest
import torch

from pipeline.core.errors import UserError
from pipeline.train import stage as train_stage
from pipeline.train.dataset import ImageSource
from tests.helpers.tiny import make_dataset, tiny_params


class PoisonedSource(ImageSource):
    """Real packed images, except that the chosen batches come back as NaN (corrupt data, a bad GPU...)."""
    poison: set = set()

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.calls = 0

    def batch(self, size, generator):
        x = super().batch(size, generator)
        self.calls += 1
        return x * float("nan") if self.calls in self.poison else x


def train(tmp_path, monkeypatch, poison, **train):
    make_dataset(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(train_stage, "ImageSource", PoisonedSource)
    PoisonedSource.poison = set(poison)
    tp, mp = tiny_params(train={"final_res": 8, **train})
    return train_stage.run(8, tp, mp)


def test_nan_rolls_back_to_the_last_snapshot_with_a_lower_lr(tmp_path, monkeypatch, caplog):
    stats = train(tmp_path, monkeypatch, poison={7})
    assert stats["trained"]
    assert "rolled back to step" in caplog.text
    state = torch.load(tmp_path / "models/res8/checkpoint.pt", weights_only=True)
    assert state["lr_scale"] == 0.5
    assert all(torch.isfinite(t).all() for t in state["G"].values() if t.is_floating_point())
    steps = [int(line.split("\t")[0]) for line in
             (tmp_path / "logs/res8/plots/metrics/loss_G.tsv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps))                                  # every step once, in order


def test_nan_policy_stop_ends_with_one_clear_line(tmp_path, monkeypatch):
    with pytest.raises(UserError, match=r"loss_D=nan.* lower train.schedule.8.lr"):
        train(tmp_path, monkeypatch, poison={3}, nan_policy="stop")
    assert not (tmp_path / "models/res8/checkpoint.pt").exists()


def test_persistent_nan_gives_up_without_writing_a_model(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="loss_D=nan"):
        train(tmp_path, monkeypatch, poison=set(range(3, 400)))
    assert not (tmp_path / "models/res8/checkpoint.pt").exists()
