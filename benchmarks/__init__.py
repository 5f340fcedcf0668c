"""Benchmarks and load runs: numbers as ratios measured in the same run, never asserted."""
