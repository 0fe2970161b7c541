"""An independent measurer of calibration checkpoints (tests only): each head's section-3 metrics
computed with Hugging Face GPT-Neo directly, not through the TransformerLens pipeline."""

from __future__ import annotations

import numpy as np
import torch

from classifier.calibrate.designs import N_POSITIONS
from classifier.calibrate.planted import load_truth


def measure_heads(model_dir, texts, *, max_tokens: int = N_POSITIONS, batch_size: int = 8) -> np.ndarray:
    """Section-3 metrics of every head of a checkpoint on `texts`: (L, H, M) in METRICS order.

    Runs Hugging Face GPT-Neo directly (eager attention, no unembedding), so it checks the
    checkpoint itself, independently of the TransformerLens pipeline.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from classifier.load.tokens import sequence_classes, vocab_classes
    from classifier.measure.batches import padded_batches, tokenize
    from classifier.measure.scoring import metric_targets, query_stats, score_patterns

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), attn_implementation="eager")
    model.eval()
    vocab = vocab_classes(tokenizer)
    bos = tokenizer.bos_token_id
    stories = tokenize(texts, tokenizer, bos, max_tokens)
    sums, counts = 0.0, 0.0
    for batch in padded_batches(stories.ids, batch_size, pad_id=bos):
        tokens = batch.tokens
        classes = sequence_classes(tokens, batch.lengths, vocab)
        targets = metric_targets(tokens, classes)
        with torch.inference_mode():
            # The base model only: the 50,257-wide unembedding is most of the cost and unused.
            attentions = model.base_model(
                tokens, attention_mask=classes.valid.long(), output_attentions=True
            ).attentions
        layer_sums = torch.stack([score_patterns(a, targets)[0] for a in attentions], dim=1)  # (B, L, H, M)
        sums = sums + layer_sums.double().sum(0)
        counts = counts + query_stats(targets)[0].double().sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts).numpy()


def measure_planted(model_dir, texts) -> dict[tuple[int, int], float]:
    """Each planted head's intended metric on `texts`, keyed by (layer, head); noise heads omitted."""
    from classifier.measure.scoring import METRICS

    truth = load_truth(model_dir)
    values = measure_heads(model_dir, texts)
    return {
        (h.layer, h.head): float(values[h.layer, h.head, METRICS.index(h.metric)])
        for h in truth.heads
        if h.metric is not None
    }
