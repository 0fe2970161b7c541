"""Compare head roles across checkpoints scored on the same stories: the library side of `track`.

`track` loads the corpus sample once, scores every model on it (or reuses a finished run from the
store), then compares: role counts, a layer x head grid of role codes, head-by-head role changes
between models of the same layout, and a one-to-one matching of heads by metric profile between
any two models. One model that fails is recorded with a one-line reason; the others still
complete. Rendering track.md and track.csv is classifier.track_report's job.

The store (`--store`, default reports/track/runs/) holds one run directory per key: the model's
identity (a hub id and the commit in the local cache, or a local checkpoint's file sizes and
modification times and its config.json), the hash of the sampled story texts, and every setting
that changes a number. Batch size and device are left out: they change the speed, not the result
(per-text sums merge exactly, padding is excluded exactly).

Matching compares metric values (section 3 shares, `distance` left out), each standardised over
the heads of the two models. Not lifts: a lift is the value over its uniform-attention
expectation, which depends only on the tokens, so for models sharing a tokenizer standardised
lifts equal standardised values; and unstandardised, the lifts of rare targets (names are ~1% of
keys) reach 50x and would swamp every other metric in a cosine. Standardising also centres the
profiles, so that what all heads share (some attention on BOS, say) does not make every pair
look alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Literal, Sequence, get_args

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from classifier.errors import InputError
from classifier.scoring import METRICS
from classifier.settings import ScoreSettings

STORE_FORMAT = 1
KEY_SETTINGS = ("stories", "max_tokens", "seed", "bootstrap")  # what changes a number
# Profile used for matching: every metric except `distance` (in tokens, so it scales with story
# length rather than with what the head does; `local`, `start_of_text` and `entropy` carry it).
MATCH_METRICS = tuple(m for m in METRICS if m != "distance")
# Standardising divides by max(std, this): a metric on which all heads agree to within a few
# points of attention share is noise, and must not weigh as much as one that separates heads.
STD_FLOOR = 0.05
Compare = Literal["consecutive", "reference"]
COMPARE_MODES: tuple[Compare, ...] = get_args(Compare)


@dataclass(frozen=True)
class ModelSpec:
    """One model argument: `model` as load_model takes it, and the revision after `@`."""

    argument: str
    model: str
    revision: str | None


def parse_model(argument: str) -> ModelSpec:
    """Split `name@revision` on the last `@`; an existing path is never split."""
    if not argument.strip():
        raise InputError("empty model argument")
    if "@" not in argument or Path(argument).exists():
        return ModelSpec(argument, argument, None)
    model, revision = argument.rsplit("@", 1)
    if not model or not revision:
        raise InputError(f"{argument}: expected MODEL@REVISION")
    if Path(model).exists():
        raise InputError(f"{argument}: a revision applies to Hugging Face models, not to the local path {model}")
    return ModelSpec(argument, model, revision)


def model_labels(specs: Sequence[ModelSpec]) -> list[str]:
    """Short unique labels: the last path component (with @revision); the full argument on a clash."""
    arguments = [s.argument for s in specs]
    repeated = sorted({a for a in arguments if arguments.count(a) > 1})
    if repeated:
        raise InputError(f"model(s) given more than once: {', '.join(repeated)}")
    short = [Path(s.model.rstrip("/")).name + (f"@{s.revision}" if s.revision else "") for s in specs]
    return [label if short.count(label) == 1 else spec.argument for label, spec in zip(short, specs)]


# --- the store -------------------------------------------------------------------------------


def _file_stamp(path: Path) -> list:
    stat = path.stat()
    return [path.name, stat.st_size, stat.st_mtime_ns]


def model_identity(spec: ModelSpec, tokenizer: str | None = None) -> dict:
    """What a stored run of this model is keyed on; `complete` is False when a hub model is not in
    the local cache yet (its commit is known only after the download, so that is always a miss)."""
    path = Path(spec.model)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        config = path / "config.json"
        return {
            "kind": "directory", "path": str(path.resolve()), "files": [_file_stamp(p) for p in files],
            "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else None,
            "complete": True,
        }
    if path.is_file():  # a llama2.c .bin; without --tokenizer its tokenizer is found beside it
        tokenizers = [Path(tokenizer)] if tokenizer else sorted(path.parent.glob("*.model"))
        return {
            "kind": "file", "path": str(path.resolve()), "file": _file_stamp(path),
            "tokenizer": [_file_stamp(t) + [str(t.resolve())] for t in tokenizers], "complete": True,
        }
    if spec.model.startswith((".", "/", "~")) or spec.model.count("/") > 1:
        return {"kind": "missing", "path": spec.model, "complete": False}
    from classifier.llama2c import LLAMA2C_CHECKPOINTS
    from classifier.models import resolve_name

    if spec.model in LLAMA2C_CHECKPOINTS:  # named llama2.c checkpoint: its embedded or cached hub files
        from classifier.models import embedded_checkpoint

        repo, filename, tok_repo, tok_filename = LLAMA2C_CHECKPOINTS[spec.model]
        files = list(embedded_checkpoint(spec.model) or (_cached_file(repo, filename), _cached_file(tok_repo, tok_filename)))
        complete = all(f is not None for f in files)
        stamps = [_file_stamp(f) + [str(f)] for f in files] if complete else None
        return {"kind": "llama2c", "name": spec.model, "files": stamps, "complete": complete}

    official = resolve_name(spec.model)
    commit = _cached_commit(official, spec.revision)
    return {"kind": "hub", "id": official, "revision": spec.revision, "commit": commit, "complete": commit is not None}


def _cached_commit(official: str, revision: str | None) -> str | None:
    """The commit load_model would use from the local Hugging Face cache, or None if not cached."""
    if "/" not in official:
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(official, revision=revision, local_files_only=True)).name
    except Exception:
        return None


def _cached_file(repo: str, filename: str) -> Path | None:
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo, filename, local_files_only=True))
    except Exception:
        return None


def corpus_identity(corpus) -> dict:
    """The sample itself, not how it was asked for: the hash of its texts."""
    digest = hashlib.sha256()
    for text in corpus.texts:
        digest.update(text.encode("utf-8") + b"\0")
    return {"stories": len(corpus.texts), "texts_sha256": digest.hexdigest()}


def store_key(identity: dict, corpus, settings: ScoreSettings) -> dict:
    try:
        version = metadata.version("head-roles")
    except metadata.PackageNotFoundError:
        version = "unknown"
    settings_json = settings.to_json()
    return {
        "format": STORE_FORMAT, "head_roles": version,
        "model": {k: v for k, v in identity.items() if k != "complete"},
        "corpus": corpus_identity(corpus),
        "settings": {name: settings_json[name] for name in KEY_SETTINGS},
    }


def run_path(store: Path, spec: ModelSpec, key: dict) -> Path:
    """store/<model's last path component>[@revision]-<first 12 hex digits of the key's hash>.
    The name is for people; the hash alone tells runs apart."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    name = Path(spec.model.rstrip("/")).name + (f"@{spec.revision}" if spec.revision else "")
    slug = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)[:60].strip("._") or "model"
    return store / f"{slug}-{digest}"


# --- scoring every model -----------------------------------------------------------------------


@dataclass(frozen=True)
class TrackedModel:
    """One model of a track: its run (None if it failed), whether it was reused, or the error."""

    label: str
    spec: ModelSpec
    status: Literal["computed", "reused", "failed"]
    run: object | None = None  # classifier.run.Run
    error: str | None = None
    path: Path | None = None  # the run directory in the store

    @property
    def shape(self) -> tuple[int, int]:
        return self.run.model.n_layers, self.run.model.n_heads

    def heads(self) -> pd.DataFrame:
        """layer, head, role, secondary, confidence and the metric columns, one row per head."""
        roles = self.run.roles[["layer", "head", "role", "secondary", "confidence"]]
        roles = roles.assign(confidence=pd.to_numeric(roles["confidence"]).astype(float))  # null: no resamples
        return roles.merge(self.run.metrics, on=["layer", "head"]).sort_values(["layer", "head"], ignore_index=True)


def one_line(err: BaseException) -> str:
    text = str(err).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(err, ValueError) and first:
        return first
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def score_or_reuse(
    spec: ModelSpec, label: str, corpus, settings: ScoreSettings, *, store: Path,
    tokenizer: str | None = None, progress: bool = True, figures: bool = False,
) -> TrackedModel:
    """The stored run of this key if there is one; otherwise score the model and store it."""
    from classifier.models import load_model
    from classifier.pipeline import analyse
    from classifier.report import write_report
    from classifier.run import load_run

    identity = model_identity(spec, tokenizer)
    if identity["complete"]:
        stored = run_path(store, spec, store_key(identity, corpus, settings))
        if stored.is_dir():
            try:
                return TrackedModel(label, spec, "reused", run=load_run(stored), path=stored)
            except ValueError:  # InputError: unreadable files
                pass  # a damaged entry is recomputed and replaced
    loaded = load_model(spec.model, revision=spec.revision, device=settings.device, tokenizer_path=tokenizer)
    analysis = analyse(loaded, corpus, settings, progress=progress)
    del loaded
    identity = model_identity(spec, tokenizer)  # a hub model now has its cached commit
    key = store_key(identity, corpus, settings)
    destination = run_path(store, spec, key)
    # write_run is atomic; key.json goes in before the directory gets its final name.
    staging = store / f".staging-{destination.name}-{os.getpid()}"
    try:
        write_report(analysis, staging, figures=figures)
        (staging / "key.json").write_text(json.dumps(key, indent=1) + "\n")
        if destination.exists():  # a damaged entry
            shutil.rmtree(destination)
        os.replace(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return TrackedModel(label, spec, "computed", run=load_run(destination), path=destination)


# --- comparing ---------------------------------------------------------------------------------


def profile_similarity(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    """Cosine similarity (Ha, Hb) between heads' metric profiles, each metric standardised over
    the heads of both models together (so the scale is shared and a metric all heads have in
    common cancels). Missing metrics count as average (0 after standardising)."""
    xa = a[list(MATCH_METRICS)].to_numpy(dtype=float)  # (Ha, M)
    xb = b[list(MATCH_METRICS)].to_numpy(dtype=float)  # (Hb, M)
    pooled = np.vstack([xa, xb])
    finite = np.isfinite(pooled)
    count = finite.sum(0)
    mean = np.where(count > 0, np.where(finite, pooled, 0).sum(0) / np.maximum(count, 1), 0.0)
    centred = np.where(finite, pooled - mean, 0.0)
    std = np.sqrt((centred**2).sum(0) / np.maximum(count, 1))
    z = centred / np.maximum(std, STD_FLOOR)
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    unit = np.divide(z, norm, out=np.zeros_like(z), where=norm > 0)
    return unit[: len(xa)] @ unit[len(xa) :].T


def match_heads(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """One-to-one assignment of b's heads to a's heads maximising total profile similarity
    (scipy's linear_sum_assignment). One row per head of b: its match in a (NaN when b has more
    heads than a), the similarity, and b's single most similar head in a (which the one-to-one
    assignment may have given to another head)."""
    similarity = profile_similarity(a, b)  # (Ha, Hb)
    rows, cols = linear_sum_assignment(-similarity)
    partner = dict(zip(cols, rows))
    nearest = similarity.argmax(0)
    out = []
    for j, head in enumerate(b[["layer", "head"]].itertuples(index=False)):
        i = partner.get(j)
        out.append({
            "layer": int(head.layer), "head": int(head.head),
            "matched_layer": int(a["layer"].iloc[i]) if i is not None else np.nan,
            "matched_head": int(a["head"].iloc[i]) if i is not None else np.nan,
            "similarity": float(similarity[i, j]) if i is not None else np.nan,
            "nearest_layer": int(a["layer"].iloc[nearest[j]]),
            "nearest_head": int(a["head"].iloc[nearest[j]]),
            "nearest_similarity": float(similarity[nearest[j], j]),
        })
    return pd.DataFrame(out)


def pairs(n: int, compare: Compare) -> list[tuple[int, int]]:
    """(earlier, later) index pairs: each model against the one before it, or against the first."""
    if compare not in COMPARE_MODES:
        raise ValueError(f"unknown comparison {compare!r}; valid: {', '.join(COMPARE_MODES)}")
    return [(k - 1 if compare == "consecutive" else 0, k) for k in range(1, n)]


@dataclass(frozen=True)
class Comparison:
    """Model `b` against model `a`: head matching (always) and same-head changes (same layout)."""

    a: str
    b: str
    matches: pd.DataFrame  # one row per head of b (see match_heads), with role and matched_role
    same_head: pd.DataFrame | None  # layer, head, role_a, role_b, confidence_a, confidence_b


def compare_models(a: TrackedModel, b: TrackedModel) -> Comparison:
    heads_a, heads_b = a.heads(), b.heads()
    matches = match_heads(heads_a, heads_b)
    role_a = heads_a.set_index(["layer", "head"])["role"]
    matches.insert(2, "role", heads_b["role"].to_numpy())
    matches.insert(5, "matched_role", [
        role_a.get((r.matched_layer, r.matched_head), np.nan) if np.isfinite(r.matched_layer) else np.nan
        for r in matches.itertuples()
    ])
    same_head = None
    if a.shape == b.shape:
        same_head = heads_a[["layer", "head", "role", "confidence"]].merge(
            heads_b[["layer", "head", "role", "confidence"]], on=["layer", "head"], suffixes=("_a", "_b")
        )
    return Comparison(a.label, b.label, matches, same_head)


# --- the whole track ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tracking:
    """Every model of one track, in argument order, and the comparisons between them."""

    models: list[TrackedModel]
    corpus: dict
    settings: ScoreSettings
    compare: Compare
    store: Path
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def succeeded(self) -> list[TrackedModel]:
        return [m for m in self.models if m.run is not None]

    @property
    def failed(self) -> list[TrackedModel]:
        return [m for m in self.models if m.run is None]


def track(
    models: Sequence[str], corpus: str, settings: ScoreSettings, *, store: str | Path,
    compare: Compare = "consecutive", tokenizer: str | None = None, progress: bool = True,
    figures: bool = False, log: Callable[[str], None] | None = None,
) -> Tracking:
    """Score (or reuse) every model on one corpus sample and compare them.

    Raises ValueError for bad arguments (no models, a model given twice, a bad corpus); a model
    that fails to load or score is recorded in the result instead.
    """
    from classifier.corpora import load_corpus

    if not models:
        raise InputError("give at least one model")
    if compare not in COMPARE_MODES:
        raise InputError(f"--compare {compare!r}: valid: {', '.join(COMPARE_MODES)}")
    specs = [parse_model(m) for m in models]
    labels = model_labels(specs)
    sample = load_corpus(corpus, stories=settings.stories, seed=settings.seed)
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    log = log or (lambda message: None)
    # load_corpus has already warned each of sample.notices (the CLI prints them at once).
    tracked = []
    for number, (spec, label) in enumerate(zip(specs, labels), start=1):
        log(f"[{number}/{len(specs)}] {spec.argument}: scoring or reusing")
        try:
            result = score_or_reuse(
                spec, label, sample, settings, store=store, tokenizer=tokenizer, progress=progress, figures=figures
            )
        except Exception as err:  # any one model's failure must not lose the others
            result = TrackedModel(label, spec, "failed", error=one_line(err))
        tracked.append(result)
        detail = f"failed: {result.error}" if result.error else f"{result.status} ({result.path})"
        log(f"[{number}/{len(specs)}] {spec.argument}: {detail}")
    done = [m for m in tracked if m.run is not None]
    comparisons = [compare_models(done[i], done[j]) for i, j in pairs(len(done), compare)]
    return Tracking(tracked, sample.describe(), settings, compare, store, comparisons)
