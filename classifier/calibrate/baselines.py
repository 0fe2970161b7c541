"""The head detectors people use today, for comparison with head-roles on calibration models.

- ARENA-style rules: on each story, the mean of a head's diagonal (current token), sub-diagonal
  (previous token) or column 0 (first token) of the pattern; a head is detected when the mean over
  stories is above 0.4.
- `transformer_lens.head_detector.detect_head` for its three named patterns (previous-token,
  duplicate-token, induction), score averaged over stories; detected above the same 0.4.
Neither has a notion of delimiters, clauses, names, positional offsets or broad heads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from classifier.load.models import LoadedModel
from classifier.measure.scorer import prompt_patterns

# The threshold the ARENA exercises and the example notebook use for all three rules.
ARENA_THRESHOLD = 0.4
ARENA_RULES = {"current-token": 0, "previous-token": -1}  # diagonal offsets
TL_PATTERNS = {"previous-token": "previous_token_head", "duplicate-token": "duplicate_token_head",
               "induction": "induction_head"}


def arena_scores(model: LoadedModel, texts, max_tokens: int = 512) -> pd.DataFrame:
    """Per head: mean over stories of the mean diagonal, sub-diagonal and column 0."""
    scores = []
    for text in texts:  # one story at a time, as the rules are written for one prompt
        _, patterns = prompt_patterns(model, text, max_tokens)  # (L, H, T, T)
        rules = {role: np.diagonal(patterns, offset, -2, -1).mean(-1) for role, offset in ARENA_RULES.items()}
        rules["start-of-text"] = patterns[..., 0].mean(-1)
        scores.append(np.stack(list(rules.values()), -1))
    mean = np.mean(scores, axis=0)  # (L, H, 3)
    layer, head = np.meshgrid(*map(np.arange, mean.shape[:2]), indexing="ij")
    frame = pd.DataFrame({"layer": layer.ravel(), "head": head.ravel()})
    for k, role in enumerate([*ARENA_RULES, "start-of-text"]):
        frame[f"arena_{role}"] = mean[..., k].ravel()
    return frame


def transformer_lens_scores(model: LoadedModel, texts) -> pd.DataFrame:
    """Per head: `detect_head` scores of its three named patterns, averaged over stories."""
    from transformer_lens.head_detector import detect_head

    columns = {}
    for role, name in TL_PATTERNS.items():
        with torch.inference_mode():
            columns[f"tl_{role}"] = detect_head(model.bridge, list(texts), name).cpu().numpy().ravel()
    layer, head = np.meshgrid(np.arange(model.n_layers), np.arange(model.n_heads), indexing="ij")
    return pd.DataFrame({"layer": layer.ravel(), "head": head.ravel(), **columns})


def detected(scores: pd.DataFrame, prefix: str) -> list[str]:
    """Per head, the roles whose score passes ARENA_THRESHOLD, joined (or "-")."""
    columns = [c for c in scores.columns if c.startswith(prefix)]
    return [
        ", ".join(c[len(prefix):] for c in columns if row[c] > ARENA_THRESHOLD) or "-"
        for _, row in scores.iterrows()
    ]
