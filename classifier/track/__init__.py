"""Track: head roles across checkpoints (sizes, variants, training steps), and during training.

`RoleWatcher` and `HeadRolesCallback` (classifier.track.watch) are imported on first use: they
bring in transformers' Trainer machinery, which `track` itself does not need.
"""

WATCHERS = ("RoleWatcher", "HeadRolesCallback")


def __getattr__(name: str):
    if name in WATCHERS:
        from classifier.track import watch

        return getattr(watch, name)
    raise AttributeError(f"module 'classifier.track' has no attribute {name!r}")
