"""Benchmarks: scripts run on demand (`python tests/bench/<name>.py`), never collected as tests."""
