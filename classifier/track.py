"""Compare head roles across checkpoints scored on the same stories: the library side of `track`.

`track` loads the corpus sample once, scores every model on it (or reuses a finished run from the
store; `jobs` > 1 scores the missing ones in parallel processes), then compares. Checkpoints of
one training run (classifier.track_series groups and orders them by step) share a layout and are
compared head by head by identity; models of different runs or shapes are matched one-to-one by
metric profile, and a pair less similar than SIMILARITY_FLOOR is left unmatched. One model that
fails is recorded with a one-line reason; the others still complete. Rendering is
classifier.track_report's job (and classifier.track_figures' for the PNGs).

The store (`--store`, default reports/track/runs/) holds one run directory per key: the model's
identity (a hub id and the commit in the local cache, or a local checkpoint's file sizes and
modification times and its config.json), the hash of the sampled story texts, every setting
that changes a number, and the hash of the source of the modules that compute numbers and roles
(CODE_MODULES), so that a changed role rule never serves a stale run. Batch size and device are
left out: they change the speed, not the result (per-text sums merge exactly, padding is
excluded exactly).

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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Literal, Sequence, get_args

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from classifier.registry import METRICS
from classifier.settings import ScoreSettings
from classifier.track_series import Checkpoint, expand_arguments

STORE_FORMAT = 2
# Modules whose source decides a stored run's numbers or roles (classifier/<name>.py).
CODE_MODULES = ("corpora", "llama2c", "models", "pipeline", "registry", "roles", "run", "scorer",
                "scoring", "settings", "thresholds", "tokens")
KEY_SETTINGS = ("stories", "max_tokens", "seed", "bootstrap")  # what changes a number
# Profile used for matching: every metric except `distance` (in tokens, so it scales with story
# length rather than with what the head does; `local`, `start_of_text` and `entropy` carry it).
MATCH_METRICS = tuple(m for m in METRICS if m != "distance")
# Standardising divides by max(std, this): a metric on which all heads agree to within a few
# points of attention share is noise, and must not weigh as much as one that separates heads.
STD_FLOOR = 0.05
# Two heads of different models are called matched only from this cosine similarity up. The
# profile has 14 standardised metrics, so unrelated heads scatter around 0 with a spread of about
# 1/sqrt(14) = 0.27; 0.5 is about two of those spreads above chance.
SIMILARITY_FLOOR = 0.5
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
        raise ValueError("empty model argument")
    if "@" not in argument or Path(argument).exists():
        return ModelSpec(argument, argument, None)
    model, revision = argument.rsplit("@", 1)
    if not model or not revision:
        raise ValueError(f"{argument}: expected MODEL@REVISION")
    if Path(model).exists():
        raise ValueError(f"{argument}: a revision applies to Hugging Face models, not to the local path {model}")
    return ModelSpec(argument, model, revision)


def model_labels(specs: Sequence[ModelSpec], series: Sequence[str | None] | None = None) -> list[str]:
    """Short unique labels: the last path component (with @revision), after `run/` for a
    checkpoint of a run; the full argument on a clash."""
    arguments = [str(Path(s.argument).resolve()) if Path(s.argument).exists() else s.argument for s in specs]
    repeated = sorted({s.argument for s, a in zip(specs, arguments) if arguments.count(a) > 1})
    if repeated:
        raise ValueError(f"model(s) given more than once: {', '.join(repeated)}")
    series = series or [None] * len(specs)
    short = [
        (f"{run}/" if run else "") + Path(s.model.rstrip("/")).name + (f"@{s.revision}" if s.revision else "")
        for s, run in zip(specs, series)
    ]
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

    if spec.model in LLAMA2C_CHECKPOINTS:  # named llama2.c checkpoint: its cached hub files
        repo, filename, tok_repo, tok_filename = LLAMA2C_CHECKPOINTS[spec.model]
        files = [_cached_file(repo, filename), _cached_file(tok_repo, tok_filename)]
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


def code_identity() -> str:
    """sha256 over the source of CODE_MODULES: a run made by other code is a store miss."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for name in CODE_MODULES:
        path = root / f"{name}.py"
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
    return digest.hexdigest()


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
        "code": code_identity(),
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
    """One model of a track: its run (None if it failed), whether it was reused, or the error.
    `series` names the training run a checkpoint belongs to (its label for a lone model) and
    `step` its training step (None for a lone model)."""

    label: str
    spec: ModelSpec
    status: Literal["computed", "reused", "failed"]
    run: object | None = None  # classifier.run.Run
    error: str | None = None
    series: str = ""
    step: int | None = None
    path: str | None = None  # the run directory in the store

    @property
    def shape(self) -> tuple[int, int]:
        return self.run.model.n_layers, self.run.model.n_heads

    def heads(self) -> pd.DataFrame:
        """layer, head, role, secondary, confidence (and the roles frame's `explained`, `lift`,
        `margin`, `stability` where the role rule gives them) and the metric columns."""
        extra = [c for c in ROLE_MEASURES if c in self.run.roles.columns]
        roles = self.run.roles[["layer", "head", "role", "secondary", "confidence", *extra]]
        numeric = {c: pd.to_numeric(roles[c], errors="coerce").astype(float) for c in ["confidence", *extra]}
        roles = roles.assign(**numeric)  # null: no resamples
        metrics = self.run.metrics.drop(columns=[c for c in ROLE_MEASURES if c in self.run.metrics.columns])
        return roles.merge(metrics, on=["layer", "head"]).sort_values(["layer", "head"], ignore_index=True)


# Per-head columns of the roles frame that track.csv carries when the role rule gives them.
ROLE_MEASURES = ("explained", "lift", "margin", "stability")


def one_line(err: BaseException) -> str:
    text = str(err).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(err, ValueError) and first:
        return first
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def stored_run(spec: ModelSpec, corpus, settings: ScoreSettings, *, store: Path, tokenizer: str | None = None):
    """(run, its directory) of this key from the store, or None (never stored, or damaged)."""
    from classifier.run import load_run

    identity = model_identity(spec, tokenizer)
    if not identity["complete"]:
        return None
    stored = run_path(store, spec, store_key(identity, corpus, settings))
    if not stored.is_dir():
        return None
    try:
        return load_run(stored), str(stored)
    except ValueError:  # InputError: unreadable files; recomputed and replaced
        return None


def score_and_store(
    spec: ModelSpec, corpus, settings: ScoreSettings, *, store: Path, tokenizer: str | None = None,
    progress: bool = True, figures: bool = False,
) -> str:
    """Score the model and put its run directory into the store; returns that directory."""
    from classifier.models import load_model
    from classifier.pipeline import analyse
    from classifier.report import write_report

    loaded = load_model(spec.model, revision=spec.revision, device=settings.device, tokenizer_path=tokenizer)
    analysis = analyse(loaded, corpus, settings, progress=progress)
    del loaded
    identity = model_identity(spec, tokenizer)  # a hub model now has its cached commit
    key = store_key(identity, corpus, settings)
    destination = run_path(store, spec, key)
    # key.json goes in before the directory gets its final name, in one rename.
    staging = store / f".staging-{destination.name}-{os.getpid()}"
    try:
        write_report(analysis, staging, figures=figures)
        (staging / "key.json").write_text(json.dumps(key, indent=1) + "\n")
        if destination.exists():  # a damaged entry
            shutil.rmtree(destination)
        os.replace(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(destination)


def score_or_reuse(
    spec: ModelSpec, label: str, corpus, settings: ScoreSettings, *, store: Path,
    tokenizer: str | None = None, progress: bool = True, figures: bool = False,
) -> TrackedModel:
    """The stored run of this key if there is one; otherwise score the model and store it."""
    from classifier.run import load_run

    found = stored_run(spec, corpus, settings, store=store, tokenizer=tokenizer)
    if found is not None:
        return TrackedModel(label, spec, "reused", run=found[0], path=found[1])
    path = score_and_store(spec, corpus, settings, store=store, tokenizer=tokenizer, progress=progress, figures=figures)
    return TrackedModel(label, spec, "computed", run=load_run(path), path=path)


def _limit_threads(threads: int) -> None:
    """In a worker: share the cores among the jobs instead of each job taking all of them."""
    import torch

    torch.set_num_threads(threads)


def _score_in_worker(spec, corpus, settings, store, tokenizer, figures):
    try:
        return score_and_store(spec, corpus, settings, store=store, tokenizer=tokenizer, progress=False, figures=figures), None
    except Exception as err:  # returned as text: some exceptions do not survive pickling
        return None, one_line(err)


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


def match_heads(a: pd.DataFrame, b: pd.DataFrame, *, floor: float = SIMILARITY_FLOOR) -> pd.DataFrame:
    """One-to-one assignment of b's heads to a's heads maximising total profile similarity
    (scipy's linear_sum_assignment). One row per head of b: its match in a, and the similarity;
    NaN when b has more heads than a or the assigned pair is less similar than `floor` (then
    `assigned_similarity` still says how close the best one-to-one partner came). `nearest_*`:
    b's single most similar head in a (which the assignment may have given to another head)."""
    similarity = profile_similarity(a, b)  # (Ha, Hb)
    rows, cols = linear_sum_assignment(-similarity)
    partner = dict(zip(cols, rows))
    nearest = similarity.argmax(0)
    out = []
    for j, head in enumerate(b[["layer", "head"]].itertuples(index=False)):
        i = partner.get(j)
        assigned = float(similarity[i, j]) if i is not None else np.nan
        matched = i is not None and assigned >= floor
        out.append({
            "layer": int(head.layer), "head": int(head.head),
            "matched_layer": int(a["layer"].iloc[i]) if matched else np.nan,
            "matched_head": int(a["head"].iloc[i]) if matched else np.nan,
            "similarity": assigned if matched else np.nan,
            "assigned_similarity": assigned,
            "nearest_layer": int(a["layer"].iloc[nearest[j]]),
            "nearest_head": int(a["head"].iloc[nearest[j]]),
            "nearest_similarity": float(similarity[nearest[j], j]),
        })
    return pd.DataFrame(out)


def identity_matches(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Checkpoints of one run: every head of b is the same head of a (similarity for reference)."""
    similarity = np.diag(profile_similarity(a, b))  # a and b are both sorted by layer, head
    return pd.DataFrame({
        "layer": b["layer"].astype(int), "head": b["head"].astype(int),
        "matched_layer": b["layer"].astype(float), "matched_head": b["head"].astype(float),
        "similarity": similarity, "assigned_similarity": similarity,
        "nearest_layer": b["layer"].astype(int), "nearest_head": b["head"].astype(int),
        "nearest_similarity": similarity,
    })


def pairs(n: int, compare: Compare) -> list[tuple[int, int]]:
    """(earlier, later) index pairs: each model against the one before it, or against the first."""
    if compare not in COMPARE_MODES:
        raise ValueError(f"unknown comparison {compare!r}; valid: {', '.join(COMPARE_MODES)}")
    return [(k - 1 if compare == "consecutive" else 0, k) for k in range(1, n)]


@dataclass(frozen=True)
class Comparison:
    """Model `b` against model `a`: by identity (checkpoints of one run) or by matching."""

    a: str
    b: str
    kind: Literal["identity", "similarity"]
    matches: pd.DataFrame  # one row per head of b (see match_heads), with role and matched_role
    same_head: pd.DataFrame | None  # identity only: layer, head, role_a, role_b, confidence_a, confidence_b


def compare_models(a: TrackedModel, b: TrackedModel) -> Comparison:
    """Same run and layout: head by head. Otherwise: one-to-one matching by profile."""
    heads_a, heads_b = a.heads(), b.heads()
    identity = a.series == b.series and a.step is not None and b.step is not None and a.shape == b.shape
    matches = identity_matches(heads_a, heads_b) if identity else match_heads(heads_a, heads_b)
    role_a = heads_a.set_index(["layer", "head"])["role"]
    matches.insert(2, "role", heads_b["role"].to_numpy())
    matches.insert(5, "matched_role", [
        role_a.get((r.matched_layer, r.matched_head), np.nan) if np.isfinite(r.matched_layer) else np.nan
        for r in matches.itertuples()
    ])
    same_head = None
    if identity:
        same_head = heads_a[["layer", "head", "role", "confidence"]].merge(
            heads_b[["layer", "head", "role", "confidence"]], on=["layer", "head"], suffixes=("_a", "_b")
        )
    return Comparison(a.label, b.label, "identity" if identity else "similarity", matches, same_head)


def comparison_pairs(models: Sequence[TrackedModel], compare: Compare) -> list[tuple[int, int]]:
    """Within each run, its checkpoints in step order; between runs, the last checkpoint of each."""
    series: dict[str, list[int]] = {}
    for k, m in enumerate(models):
        series.setdefault(m.series, []).append(k)
    within = [(idx[i], idx[j]) for idx in series.values() for i, j in pairs(len(idx), compare)]
    finals = [idx[-1] for idx in series.values()]
    return within + [(finals[i], finals[j]) for i, j in pairs(len(finals), compare)]


# --- the whole track ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tracking:
    """Every model of one track (each run's checkpoints together, in step order) and the
    comparisons between them."""

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

    def series(self) -> dict[str, list[TrackedModel]]:
        """Succeeded models by run, in order; a run of more than one checkpoint is a training run."""
        grouped: dict[str, list[TrackedModel]] = {}
        for m in self.succeeded:
            grouped.setdefault(m.series, []).append(m)
        return grouped


def track(
    models: Sequence[str], corpus: str, settings: ScoreSettings, *, store: str | Path,
    compare: Compare = "consecutive", tokenizer: str | None = None, progress: bool = True,
    figures: bool = False, jobs: int = 1, log: Callable[[str], None] | None = None,
) -> Tracking:
    """Score (or reuse) every model on one corpus sample and compare them.

    `models` may name folders of `step-*` / `checkpoint-*` checkpoints (classifier.track_series).
    Runs already in the store are reused first; the rest are scored, `jobs` at a time in
    separate processes (each holds its own model and scorer: memory grows with jobs).
    Raises ValueError for bad arguments (no models, a model given twice, a bad corpus, jobs < 1);
    a model that fails to load or score is recorded in the result instead.
    """
    from classifier.corpora import load_corpus
    from classifier.run import load_run

    if not models:
        raise ValueError("give at least one model")
    if compare not in COMPARE_MODES:
        raise ValueError(f"--compare {compare!r}: valid: {', '.join(COMPARE_MODES)}")
    if jobs < 1:
        raise ValueError(f"--jobs {jobs}: give 1 or more")
    checkpoints: list[Checkpoint] = expand_arguments(models)
    specs = [parse_model(c.argument) for c in checkpoints]
    labels = model_labels(specs, [c.series for c in checkpoints])
    sample = load_corpus(corpus, stories=settings.stories, seed=settings.seed)
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    log = log or (lambda message: None)
    if sample.notice:
        log(sample.notice)
    n = len(specs)

    def tracked(k: int, status, path=None, run=None, error=None) -> TrackedModel:
        c = checkpoints[k]
        if run is None and path:
            run = load_run(path)
        return TrackedModel(labels[k], specs[k], status, run=run, error=error,
                            series=c.series if c.series is not None else labels[k], step=c.step, path=path)

    def done(k: int, result: TrackedModel) -> TrackedModel:
        detail = f"failed: {result.error}" if result.error else f"{result.status} ({result.path})"
        log(f"[{k + 1}/{n}] {specs[k].argument}: {detail}")
        return result

    results: dict[int, TrackedModel] = {}
    for k, spec in enumerate(specs):  # the store first: reusing costs no model load
        try:
            found = stored_run(spec, sample, settings, store=store, tokenizer=tokenizer)
        except Exception as err:
            results[k] = done(k, tracked(k, "failed", error=one_line(err)))
            continue
        if found is not None:
            results[k] = done(k, tracked(k, "reused", path=found[1], run=found[0]))
    missing = [k for k in range(n) if k not in results]
    if jobs == 1 or len(missing) <= 1:
        for k in missing:
            log(f"[{k + 1}/{n}] {specs[k].argument}: scoring")
            try:
                path = score_and_store(specs[k], sample, settings, store=store, tokenizer=tokenizer,
                                       progress=progress, figures=figures)
                results[k] = done(k, tracked(k, "computed", path=path))
            except Exception as err:  # any one model's failure must not lose the others
                results[k] = done(k, tracked(k, "failed", error=one_line(err)))
    else:
        import multiprocessing

        workers = min(jobs, len(missing))
        threads = max(1, (os.cpu_count() or 1) // workers)
        log(f"scoring {len(missing)} model(s) in {workers} processes, {threads} thread(s) each")
        # spawn, not fork: a forked copy of a process that has run torch can deadlock in OpenMP.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_limit_threads, initargs=(threads,)) as pool:
            futures = {k: pool.submit(_score_in_worker, specs[k], sample, settings, store, tokenizer, figures)
                       for k in missing}
            for k, future in futures.items():
                try:
                    path, error = future.result()
                    result = tracked(k, "computed", path=path) if path else tracked(k, "failed", error=error)
                except Exception as err:  # a worker that died (out of memory, say)
                    result = tracked(k, "failed", error=one_line(err))
                results[k] = done(k, result)
    ordered = [results[k] for k in range(n)]
    succeeded = [m for m in ordered if m.run is not None]
    comparisons = [compare_models(succeeded[i], succeeded[j]) for i, j in comparison_pairs(succeeded, compare)]
    return Tracking(ordered, sample.describe(), settings, compare, store, comparisons)
