"""Benchmarks: each prints its figures next to a same-run baseline (ratios, not absolute targets)."""
