"""Files shipped inside the package (`classifier/data/`, licences in data/NOTICE.md).

Paths only, so that models, llama2c and corpora can all read them without importing each other.
"""
from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
# A name here resolves to the embedded copy first, so it needs neither the hub nor its cache.
EMBEDDED_CHECKPOINTS = {"stories260K": (DATA_DIR / "stories260K.bin", DATA_DIR / "tok512.model")}
# Stories written for this project (MIT; data/BUNDLED.md), the banana prompt first.
BUNDLED_PATH = DATA_DIR / "bundled.txt"
# 300 real TinyStories stories (CDLA-Sharing-1.0): the offline stand-in for the dataset itself.
SAMPLE_NAME = "tinystories-sample"
SAMPLE_PATH = DATA_DIR / "tinystories-sample.txt"


def embedded_checkpoint(name) -> tuple[Path, Path] | None:
    """The package's own copy of a named checkpoint and its tokenizer, or None when not shipped."""
    paths = EMBEDDED_CHECKPOINTS.get(str(name))
    return paths if paths is not None and all(p.is_file() for p in paths) else None
