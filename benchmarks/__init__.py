"""Benchmarks: each module runs with `python -m benchmarks.<name>`; `python -m benchmarks` runs them all."""
