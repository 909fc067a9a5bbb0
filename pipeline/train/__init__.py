"""The train@R stages: which resolution trains what (schedule), packed uint8 data (dataset), one
training step and the whole state (trainer), trusted checkpoints and snapshots (checkpoint), the
dvclive loss log (live_log) and the stage itself (stage)."""
