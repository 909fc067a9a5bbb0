"""CI: the committed dvc.lock must match the committed code and params.

In a fresh clone no stage may show a dependency (code, params.yaml key or command) as modified or new:
outputs are absent there ("deleted"), which is fine, but a changed dep means dvc.lock is older than the
code and every user's first `dvc repro` would re-run stages for nothing."""
import json
import subprocess
import sys

r = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], capture_output=True, text=True)
if r.returncode != 0:
    sys.exit(f"ci: dvc status failed: {r.stderr.strip()[-500:]}")
stale = []
for stage, changes in json.loads(r.stdout or "{}").items():
    for change in changes:
        if not isinstance(change, dict):
            stale.append(f"{stage}: {change}")
            continue
        for path, what in change.get("changed deps", {}).items():
            items = what.items() if isinstance(what, dict) else [(path, what)]
            stale += [f"{stage}: {key} {state}" for key, state in items if state != "deleted"]
        if "changed command" in change:
            stale.append(f"{stage}: command changed")
if stale:
    sys.exit("ci: dvc.lock is older than the code (run `dvc repro` and commit dvc.lock):\n  " + "\n  ".join(stale))
print("ci: dvc.lock matches the code and params")
