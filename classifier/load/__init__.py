"""Load: checkpoints (Hugging Face, TransformerLens names, llama2.c), corpora and token classes."""
