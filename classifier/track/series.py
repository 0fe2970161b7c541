"""Checkpoints of one training run, in step order, and when each head's final role settles.

`expand_arguments` turns `track`'s model arguments into checkpoints: a folder of `step-*` or
`checkpoint-*` subfolders (as the Hugging Face Trainer writes them) becomes every checkpoint in
it, ordered by step; a checkpoint folder named `step-N` given on its own joins the other
checkpoints of the same run. A run's name is the folder that holds the checkpoints (or, when that
folder is called `checkpoints`, the one above it). Anything else stays a series of one model.

`settling` reads a tidy frame of roles over steps and says, for each head, the step from which
its final role holds at every later checkpoint. It loads nothing and renders nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

# `step-300`, `step_000300`, `checkpoint-300` (the Trainer's name), `step300`.
STEP_NAME = re.compile(r"^(?:step|checkpoint)[-_]?(\d+)$")
# Folder names that say nothing about the run: the run is named by the folder above them.
GENERIC_FOLDERS = ("checkpoints", "ckpt", "ckpts")


@dataclass(frozen=True)
class Checkpoint:
    """One model argument after expansion: what to load, which run it belongs to, its step."""

    argument: str  # as model_spec takes it
    series: str | None  # the run's name; None for a model that is not a step of a run
    step: int | None


def checkpoint_step(path: str | Path) -> int | None:
    """The step in a checkpoint folder's name (`step-300` -> 300), None when it has none."""
    match = STEP_NAME.match(Path(str(path).rstrip("/")).name)
    return int(match.group(1)) if match else None


def run_name(folder: Path) -> str:
    """The name of the run whose checkpoints live in `folder`."""
    folder = Path(str(folder).rstrip("/") or "/").resolve()
    if folder.name in GENERIC_FOLDERS and folder.parent.name:
        return folder.parent.name
    return folder.name or str(folder)


def checkpoint_folders(folder: Path) -> list[Path]:
    """The `step-*` / `checkpoint-*` subfolders of `folder`, by step (empty if it has none)."""
    found = [p for p in folder.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=lambda p: (checkpoint_step(p), p.name))


def expand_arguments(arguments: Sequence[str]) -> list[Checkpoint]:
    """Model arguments as checkpoints, each run's checkpoints together and in step order.

    Runs keep the order in which they first appear; a folder that is itself a checkpoint
    (it has config.json) is never expanded.
    """
    expanded: list[Checkpoint] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir() and not (path / "config.json").is_file():
            inside = checkpoint_folders(path)
            if inside:
                expanded += [Checkpoint(str(p), run_name(path), checkpoint_step(p)) for p in inside]
                continue
        step = checkpoint_step(argument) if path.is_dir() else None
        series = run_name(path.parent) if step is not None else None
        expanded.append(Checkpoint(argument, series, step))
    order = {}
    for c in expanded:
        order.setdefault(c.series if c.series is not None else ("", c.argument), len(order))

    def position(c: Checkpoint):
        group = order[c.series if c.series is not None else ("", c.argument)]
        return group, c.step if c.step is not None else -1

    return sorted(expanded, key=position)  # stable: equal steps keep argument order


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def settling(frame: pd.DataFrame) -> pd.DataFrame:
    """When each head's final role settles, from a tidy frame of one run (step, layer, head,
    role; one row per head and checkpoint).

    One row per head: final_role, settled_step (the first step from which every later checkpoint
    gives the final role), first_step (the first checkpoint with the final role at all: earlier
    than settled_step when the head left it and came back), changes (role changes between
    consecutive checkpoints) and the number of checkpoints.
    """
    ordered = frame.sort_values(["layer", "head", "step"], kind="stable")
    rows = []
    for (layer, head), group in ordered.groupby(["layer", "head"], sort=True):
        roles = group["role"].to_numpy(dtype=object)  # (S,)
        steps = group["step"].to_numpy()
        final = roles[-1]
        same = roles == final
        # Last checkpoint with another role; the final role holds from the one after it.
        other = np.flatnonzero(~same)
        since = other[-1] + 1 if len(other) else 0
        rows.append({
            "layer": int(layer), "head": int(head), "final_role": final,
            "settled_step": int(steps[since]), "first_step": int(steps[np.argmax(same)]),
            "changes": int((roles[1:] != roles[:-1]).sum()), "checkpoints": len(roles),
            "first_checkpoint": int(steps[0]), "last_checkpoint": int(steps[-1]),
        })
    return pd.DataFrame(rows, columns=["layer", "head", "final_role", "settled_step", "first_step",
                                       "changes", "checkpoints", "first_checkpoint", "last_checkpoint"])


def settling_sentence(row, label: str, written: str | None = None) -> str:
    """'0.6 becomes a previous-token head by step 300 and stays', for one row of `settling`;
    `written` is the final role as the track writes it (`delimiter*` in doubt). A role first
    reached at the last checkpoint makes no claim that it stays."""
    role = row.final_role
    written = written or role
    if role == "unclear":
        if row.settled_step == row.first_checkpoint:
            return f"{label} has no clear role at any checkpoint."
        if row.settled_step == row.last_checkpoint:
            return f"{label} has no clear role at the last checkpoint (step {row.settled_step})."
        return f"{label} has no clear role from step {row.settled_step} on."
    noun = f"{article(role)} {written} head"
    if row.settled_step == row.first_checkpoint:
        return f"{label} is {noun} from step {row.settled_step} on."
    if row.settled_step == row.last_checkpoint:
        sentence = f"{label} is {noun} at the last checkpoint (step {row.settled_step}) only; no later checkpoint says whether it stays"
        if row.first_step < row.settled_step:
            sentence += f" (also at step {row.first_step}; {row.changes} role changes in all)"
        return sentence + "."
    sentence = f"{label} becomes {noun} by step {row.settled_step} and stays"
    if row.first_step < row.settled_step:
        sentence += f" (first at step {row.first_step}; {row.changes} role changes in all)"
    return sentence + "."
