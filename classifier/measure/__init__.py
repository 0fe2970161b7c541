"""Measure: per-head attention metrics and budgets over a corpus (vectorised; section 3)."""
