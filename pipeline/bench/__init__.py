"""Benchmarks that print figures and end with one JSON line (`python -m pipeline.bench train|data`):
training speed (train) and the data stages' throughput (data)."""
