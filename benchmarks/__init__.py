"""Benchmarks: `make bench` (`python -m benchmarks`). Numbers are printed, never asserted."""
