"""head-roles: classify the attention heads of small language models by measured role.

    import classifier
    result = classifier.classify(bridge, stories)   # a Result: .roles, .metrics, .head(l, h), .show()

`classify`, `compare` and `Result` come from `classifier.api`, imported on first use so that
`import classifier` (and every CLI command that needs no model) stays free of torch.
"""

__version__ = "0.1.0"
__all__ = ["Result", "classify", "compare"]


def __getattr__(name: str):
    if name in __all__:
        from classifier import api

        return getattr(api, name)
    raise AttributeError(f"module 'classifier' has no attribute {name!r}")
