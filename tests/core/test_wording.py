"""Words of the stages' logs and skip reports: stable from run to run, counts as phrases."""
from pipeline.core.wording import counted, skipped, stable_reason, stable_skips


def test_object_addresses_are_dropped_and_the_rest_kept():
    assert stable_reason("cannot identify image file <_io.BytesIO object at 0x7f667e02be20>") == \
        "cannot identify image file <_io.BytesIO>"
    assert stable_reason("<function f at 0x7f00deadbeef> failed") == "<function f> failed"
    assert stable_reason("bad id=0x7f00deadbeef here") == "bad here"
    # short hex values are data, not addresses: they stay
    assert stable_reason("Unknown compression! flag: 0x3F") == "Unknown compression! flag: 0x3F"
    assert stable_reason("two\nlines  and   tabs\t") == "two lines and tabs"
    assert stable_reason("x" * 500).endswith("...") and len(stable_reason("x" * 500)) == 240


def test_skip_rows_keep_their_other_columns():
    rows = stable_skips([{"source": "a 0x7f00deadbeef", "asset": "b", "reason": "<X object at 0x1234567>"}])
    assert rows == [{"source": "a 0x7f00deadbeef", "asset": "b", "reason": "<X>"}]


def test_counts_read_as_words():
    assert counted({"near_duplicate": 3, "blank": 1, "human": 3, "zero": 0}) == "3 human, 3 near_duplicate, 1 blank"
    assert counted({}) == "none" and counted({}, none="nothing") == "nothing"
    assert skipped(0, "data/flat/skipped.csv") == "skipped none"
    assert skipped(2, "data/flat/skipped.csv") == "skipped 2 (see data/flat/skipped.csv)"
