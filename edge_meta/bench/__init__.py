"""Benchmarks: the few-shot keyword protocol and its training-free baselines."""
