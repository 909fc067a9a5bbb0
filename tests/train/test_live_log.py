"""The loss log after kills: cut rows and a half-written summary never break a resume."""
from pipeline.train.live_log import LossLog, trim_tsv


def test_trim_drops_later_and_unfinished_rows(tmp_path):
    f = tmp_path / "plots" / "metrics" / "loss_G.tsv"
    f.parent.mkdir(parents=True)
    f.write_text("step\tloss_G\n2\t0.5\n4\t0.4\nbad\n6\t0.3\n8\t0.2\n1")     # cut mid-row at the end
    trim_tsv(tmp_path, 6)
    assert f.read_text() == "step\tloss_G\n2\t0.5\n4\t0.4\n6\t0.3\n"


def test_resume_with_a_broken_summary(tmp_path):
    log = LossLog(tmp_path, resume_step=None)
    for step in (2, 4, 6):
        log.log(step, {"loss_G": step / 10})
    log.close()
    (tmp_path / "metrics.json").write_text("")                              # killed while writing it
    log = LossLog(tmp_path, resume_step=4)
    log.log(6, {"loss_G": 0.66})
    log.close()
    rows = (tmp_path / "plots" / "metrics" / "loss_G.tsv").read_text().splitlines()
    assert rows == ["step\tloss_G", "2\t0.2", "4\t0.4", "6\t0.66"]
