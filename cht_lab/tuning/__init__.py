"""Tuning against ground truth: labels, matching, threshold sweeps."""
