"""Track: head roles across checkpoints (sizes, variants, training steps)."""
