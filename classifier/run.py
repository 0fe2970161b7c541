"""One finished run: everything measured about one checkpoint on one corpus sample.

A `Run` is plain data (frozen dataclasses, tidy frames, numpy arrays). `Run.files()` turns it
into the files of a run directory and `load_run` reads them back into an equal `Run`, so every
view (report.md, report.html, validate, track) renders from a run directory without the model.
Nothing here imports torch or renders.

Files: run.json (model, corpus, settings, notices, ...), metrics.csv (one row per head: the
section-3 metrics, intervals, lifts; `ablation`, its interval and `attribution` when measured), budget.csv (one row per head: each budget part's share,
uniform share and interval), roles.json (label and evidence per head; `ablation`, `attribution`, `group` and the
`similar` heads when measured), pairs.csv
(characteristic query -> key pairs), prompt-metrics.csv and prompt-roles.json (the prompt
alone), patterns.npz (attention patterns of the prompt and a few stories, float16).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from classifier.errors import InputError
from classifier.formatting import role_counts
from classifier.settings import ScoreSettings

RUN_FILES = ("run.json", "metrics.csv", "budget.csv", "roles.json", "pairs.csv",
             "prompt-metrics.csv", "prompt-roles.json", "patterns.npz")
# Every name a report's run directory may hold (figures only when drawn): checked before scoring.
REPORT_OUTPUTS = (*RUN_FILES, "report.md", "report.html", "lift-heatmap.png", "prompt-patterns.png")
# Oldest run directories (before budget.csv and patterns.npz) still load, without those views.
REQUIRED_FILES = ("run.json", "metrics.csv", "roles.json")
# metrics.csv columns of classifier.measure.importance, when a run measured them: each head's own
# ablation (with its interval) and attribution, then the combined ablation of its group.
HEAD_IMPORTANCE_COLUMNS = ("ablation", "ablation_lo", "ablation_hi", "attribution")
IMPORTANCE_COLUMNS = (*HEAD_IMPORTANCE_COLUMNS, "group_ablation", "group_ablation_lo", "group_ablation_hi")
FORMAT_VERSION = 2


@dataclass(frozen=True)
class ModelInfo:
    """Which checkpoint was run, and its shape."""

    name: str  # as the user gave it
    resolved: str  # official Hugging Face id, or the local path
    revision: str | None
    n_layers: int
    n_heads: int
    n_ctx: int
    device: str
    tokenizer: str | None = None  # a tokenizer file given or found for a llama2.c checkpoint


@dataclass(frozen=True)
class PatternView:
    """One text as every head sees it: token texts (BOS first) and patterns (L, H, T, T) in
    float16 (rounded when the run is made, so a saved run renders exactly as the fresh one)."""

    text: str
    tokens: tuple[str, ...]
    patterns: np.ndarray

    def __repr__(self) -> str:
        return f"PatternView({len(self.tokens)} tokens, patterns {self.patterns.shape})"


@dataclass(frozen=True)
class Run:
    """Everything measured about one checkpoint on one corpus sample."""

    model: ModelInfo
    corpus: dict  # name, source, stories, stories_in_source, sample_indices, notice
    settings: ScoreSettings
    n_tokens: int
    metrics: pd.DataFrame  # one row per head (classifier.measure.scorer.metrics_frame)
    budget: pd.DataFrame  # one row per head: <part>, <part>_uniform, <part>_lo, <part>_hi
    roles: pd.DataFrame  # one row per head: role, secondary (tuple), confidence and evidence
    pairs: pd.DataFrame  # layer, head, role, query, key, key_kind, count, share
    prompt: PatternView
    prompt_metrics: pd.DataFrame
    prompt_roles: pd.DataFrame
    stories: tuple[PatternView, ...] = ()
    notices: tuple[str, ...] = ()  # one-line warnings about the input, said before scoring
    command: str | None = None
    created: str = ""
    versions: dict = field(default_factory=dict)
    appendix: str | None = None  # Markdown placed after the role table (demo: planted vs measured)

    def __repr__(self) -> str:
        return (f"Run(model={self.model.name!r}, {self.model.n_layers}x{self.model.n_heads} heads, "
                f"corpus={self.corpus.get('name')!r} ({self.corpus.get('stories')} stories, {self.n_tokens:,} tokens), "
                f"roles: {role_counts(self.roles)}, notices={list(self.notices)})")

    def record(self) -> dict:
        """run.json."""
        return {
            "format": FORMAT_VERSION,
            "model": asdict(self.model),
            "corpus": self.corpus,
            "settings": self.settings.to_json(),
            "tokens": self.n_tokens,
            "prompt": self.prompt.text,
            "stories_shown": [s.text for s in self.stories],
            "notices": list(self.notices),
            "command": self.command,
            "created": self.created,
            "versions": self.versions,
            "appendix": self.appendix,
        }

    def files(self) -> dict[str, bytes]:
        """The run directory's data files, by name."""
        views = {"prompt": self.prompt, **{f"story{k}": s for k, s in enumerate(self.stories)}}
        arrays = {}
        for key, view in views.items():
            arrays[f"{key}_tokens"] = np.array(view.tokens, dtype=str)
            arrays[f"{key}_patterns"] = view.patterns.astype(np.float16)
        patterns = io.BytesIO()
        np.savez_compressed(patterns, **arrays)
        return {
            "run.json": _json(self.record()),
            "metrics.csv": self.metrics.to_csv(index=False).encode(),
            "budget.csv": self.budget.to_csv(index=False).encode(),
            "roles.json": _json(roles_records(self.roles)),
            "pairs.csv": self.pairs.to_csv(index=False).encode(),
            "prompt-metrics.csv": self.prompt_metrics.to_csv(index=False).encode(),
            "prompt-roles.json": _json(roles_records(self.prompt_roles)),
            "patterns.npz": patterns.getvalue(),
        }


def _json(value) -> bytes:
    return (json.dumps(value, indent=1, allow_nan=False) + "\n").encode()


def _plain(value):
    """A JSON-ready scalar: numpy numbers to Python, NaN to None, tuples to lists."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    return value


def roles_records(roles: pd.DataFrame) -> list[dict]:
    """roles.json: one {layer, head, role, secondary, confidence, ...evidence} per head."""
    return [{k: _plain(v) for k, v in row.items()} for row in roles.to_dict(orient="records")]


# roles.json fields that hold role names (lists in JSON, tuples in the frame).
TUPLE_COLUMNS = ("secondary", "scoped")


def roles_frame(records: list[dict]) -> pd.DataFrame:
    """roles.json back into a frame: secondary as tuples, null numbers as NaN."""
    frame = pd.DataFrame(records)
    for column in TUPLE_COLUMNS:
        if column in frame.columns:
            frame[column] = [tuple(s or ()) for s in frame[column]]
    for column in frame.columns:
        if column not in ("role", *TUPLE_COLUMNS, "top_keys", "similar") and frame[column].dtype == object:
            converted = pd.to_numeric(frame[column], errors="coerce")
            if converted.notna().sum() == frame[column].notna().sum():
                frame[column] = converted.astype(float)
    return frame


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: broken JSON ({err.msg})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read ({getattr(err, 'strerror', None) or err})") from None


def _read_csv(path: Path, required=("layer", "head")) -> pd.DataFrame:
    """A run's CSV file; InputError when it cannot be read or lacks a column every one has."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read as CSV ({str(err).strip().splitlines()[0]})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing and len(frame.columns):
        raise InputError(f"{path}: not a head-roles table (no {', '.join(missing)} column)")
    return frame


def _views(path: Path, record: dict) -> tuple[PatternView, tuple[PatternView, ...]]:
    empty = PatternView(record.get("prompt") or "", (), np.zeros((0, 0, 0, 0), np.float16))
    if not path.is_file():
        return empty, ()
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read ({err})") from None

    def view(key: str, text: str) -> PatternView:
        return PatternView(text, tuple(str(t) for t in arrays[f"{key}_tokens"]), arrays[f"{key}_patterns"])

    texts = record.get("stories_shown") or []
    stories = tuple(view(f"story{k}", t) for k, t in enumerate(texts) if f"story{k}_tokens" in arrays)
    return (view("prompt", record.get("prompt") or "") if "prompt_tokens" in arrays else empty), stories


def check_every_head(path: Path, heads: pd.MultiIndex, n_layers: int, n_heads: int) -> None:
    """A table of a run (`heads`: its (layer, head) pairs) has a row for every head of the model."""
    missing = pd.MultiIndex.from_product([range(n_layers), range(n_heads)]).difference(heads)
    if len(missing):
        layer, head = missing[0]
        raise InputError(f"{path}: no row for head L{layer}H{head} ({len(missing)} heads missing)")


def load_run(path: str | Path) -> Run:
    """Read a run directory written by `head-roles report`; InputError naming what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a folder")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise InputError(f"{path}: not a head-roles run directory (missing {', '.join(missing)})")
    record = _read_json(path / "run.json")
    if not isinstance(record, dict) or "model" not in record:
        raise InputError(f"{path / 'run.json'}: not a head-roles run record")
    metrics = _read_csv(path / "metrics.csv")
    model = dict(record["model"])
    model.setdefault("name", str(path))
    model.setdefault("resolved", model["name"])
    model.setdefault("revision", None)
    model.setdefault("n_layers", int(metrics["layer"].max()) + 1)
    model.setdefault("n_heads", int(metrics["head"].max()) + 1)
    model.setdefault("n_ctx", 0)
    model.setdefault("device", "")
    roles = roles_frame(_read_json(path / "roles.json"))
    for name, frame in (("metrics.csv", metrics), ("roles.json", roles)):
        if not {"layer", "head"} <= set(frame.columns):
            raise InputError(f"{path / name}: not a head-roles table (no layer and head columns)")
        heads = pd.MultiIndex.from_frame(frame[["layer", "head"]].astype(int))
        check_every_head(path / name, heads, model["n_layers"], model["n_heads"])
    known = {f for f in ModelInfo.__dataclass_fields__}
    settings = {k: v for k, v in (record.get("settings") or {}).items() if k in ScoreSettings.__dataclass_fields__}
    prompt, stories = _views(path / "patterns.npz", record)

    def optional_csv(name: str) -> pd.DataFrame:
        return _read_csv(path / name) if (path / name).is_file() else pd.DataFrame()

    def optional_roles(name: str) -> pd.DataFrame:
        return roles_frame(_read_json(path / name)) if (path / name).is_file() else pd.DataFrame()

    return Run(
        model=ModelInfo(**{k: v for k, v in model.items() if k in known}),
        corpus=record.get("corpus") or {},
        settings=ScoreSettings(**settings),
        n_tokens=int(record.get("tokens") or 0),
        metrics=metrics,
        budget=optional_csv("budget.csv"),
        roles=roles,
        pairs=optional_csv("pairs.csv"),
        prompt=prompt,
        prompt_metrics=optional_csv("prompt-metrics.csv"),
        prompt_roles=optional_roles("prompt-roles.json"),
        stories=stories,
        notices=tuple(record.get("notices") or ()),
        command=record.get("command"),
        created=record.get("created") or "",
        versions=record.get("versions") or {},
        appendix=record.get("appendix"),
    )
