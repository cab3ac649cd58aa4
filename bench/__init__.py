"""Benchmarks: each module prints measured numbers next to a baseline measured in the same run."""
