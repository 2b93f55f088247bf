"""Benchmarks of the engine: the LFW-XRes cross-resolution protocol, CMC curves and the paper's ablation."""
