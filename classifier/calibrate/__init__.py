"""Calibrate: models with planted heads, role recovery (selfcheck) and baselines."""
