"""Benchmarks that print figures and end with one JSON line (`python -m pipeline.bench train|quality|data`,
the command line in cli): training speed (train), what the generator learns from a folder of real images
(quality) and the data stages' throughput (data)."""
