"""`python -m pipeline.bench review`: the review page's benchmark runs and prints its figures."""
import json
import subprocess
import sys


def test_review_bench_cli_prints_the_api_figures():
    r = subprocess.run([sys.executable, "-m", "pipeline.bench", "review", "--images", "40", "--no-browser",
                        "--repeat", "1"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["images"] == 40 and "browser_ms" not in result
    api = result["api_ms"]
    assert {"first_page", "weakest_faces_first", "one_folder", "keep_all_40", "undo_all_40",
            "redo_one", "redo_all_40"} <= set(api)
    assert all(v > 0 for v in api.values())
