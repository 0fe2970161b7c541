"""Whether the Hugging Face hub can be reached (models and corpora both ask)."""
from __future__ import annotations

import os
import socket


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether huggingface.co answers quickly (False at once when HF_HUB_OFFLINE is set)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False
