"""Experiments: the demo, noise studies, ablations, sweeps and reports."""
