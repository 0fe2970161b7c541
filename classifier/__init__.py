"""head-roles: classify the attention heads of small language models by measured role."""

__version__ = "0.1.0"
