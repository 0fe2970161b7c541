"""Compare head roles across checkpoints scored on the same stories: the library side of `track`.

`track` loads the corpus sample once, takes every model's finished run from the store
(classifier.track.store) or scores it (`jobs` > 1: the missing ones in parallel processes), then
compares. Checkpoints of one training run (classifier.track.series groups and orders them by
step) share a layout and are compared head by head by identity; models of different runs or
shapes are matched one-to-one by metric profile, and a pair less similar than SIMILARITY_FLOOR
is left unmatched. One model that fails is recorded with a one-line reason; the others still
complete. Rendering is classifier.track.report's job (and classifier.track.figures' for PNGs).

Matching compares metric values (section 3 shares, `distance` left out), each standardised over
the heads of the two models. Not lifts: a lift is the value over its uniform-attention
expectation, which depends only on the tokens, so for models sharing a tokenizer standardised
lifts equal standardised values; and unstandardised, the lifts of rare targets (names are ~1% of
keys) reach 50x and would swamp every other metric in a cosine. Standardising also centres the
profiles, so that what all heads share (some attention on BOS, say) does not make every pair
look alike.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal, Sequence, get_args

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from classifier.errors import InputError, InputNotice, one_line
from classifier.registry import METRICS
from classifier.settings import ScoreSettings
from classifier.track.series import Checkpoint, expand_arguments
from classifier.track.store import (
    ModelSpec,
    limit_threads,
    score_in_worker,
    model_labels,
    model_spec,
    put_in_store,
    score_and_store,
    stored_run,
)

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
# Per-head columns of the roles frame that track.csv carries when the role rule gives them.
# Headline metrics that are not shares of attention: shown as numbers, not percentages.
UNSHARED_METRICS = ("entropy", "max_weight", "distance")
ROLE_MEASURES = ("explained", "lift", "margin", "stability")
Compare = Literal["consecutive", "reference"]
COMPARE_MODES: tuple[Compare, ...] = get_args(Compare)


# --- tracked models ---------------------------------------------------------------------------


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
        raise InputError(f"unknown comparison {compare!r}; valid: {', '.join(COMPARE_MODES)}")
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


@contextlib.contextmanager
def notices_once():
    """Within: an input notice whose text was already shown is not shown again (scoring many
    checkpoints on one sample says the same note about it for each)."""
    said: set[str] = set()
    with warnings.catch_warnings():
        show = warnings.showwarning

        def show_once(message, category, *args, **kwargs):
            if issubclass(category, InputNotice):
                if str(message) in said:
                    return
                said.add(str(message))
            show(message, category, *args, **kwargs)

        warnings.showwarning = show_once
        yield


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
    figures: bool = False, jobs: int = 1, log: Callable[[str], None] | None = None, ray: str | None = None,
) -> Tracking:
    """Score (or reuse) every model on one corpus sample and compare them.

    `models` may name folders of `step-*` / `checkpoint-*` checkpoints (classifier.track.series).
    Runs already in the store are reused first; the rest are scored, `jobs` at a time in
    separate processes (each holds its own model and scorer: memory grows with jobs), or with
    `ray` (an address, or "local") as Ray tasks (classifier.track.cluster) whose runs the store
    receives here.
    Raises InputError for bad arguments (no models, a model given twice, a bad corpus, jobs < 1);
    a model that fails to load or score is recorded in the result instead.
    """
    from classifier.load.corpora import load_corpus
    from classifier.run import load_run

    if not models:
        raise InputError("give at least one model")
    if compare not in COMPARE_MODES:
        raise InputError(f"--compare {compare!r}: valid: {', '.join(COMPARE_MODES)}")
    if jobs < 1:
        raise InputError(f"--jobs {jobs}: give 1 or more")
    if ray is not None:
        from classifier.track.cluster import check_ray

        if jobs > 1:
            raise InputError(f"--jobs {jobs} and --ray: give one (Ray schedules the tasks itself)")
        check_ray()
    checkpoints: list[Checkpoint] = expand_arguments(models)
    specs = [model_spec(c.argument) for c in checkpoints]
    labels = model_labels(specs, [c.series for c in checkpoints])
    from classifier.load.corpora import check_corpus_spec
    from classifier.load.models import parse_model

    check_corpus_spec(corpus)
    unloadable: dict[int, str] = {}
    for k, spec in enumerate(specs):  # a bad argument is bad input (exit 2), said before any corpus or model
        try:
            specs[k] = replace(spec, ref=parse_model(spec.model, revision=spec.revision, tokenizer=tokenizer,
                                                     option="model"))
        except InputError as err:
            if checkpoints[k].argument in models:  # named by the user
                raise
            unloadable[k] = one_line(err)  # found in a folder of checkpoints (an empty one, say): the others go on
    if len(checkpoints) == 1 and checkpoints[0].argument in models:  # not a folder of checkpoints
        raise InputError(f"{models[0]}: one model, nothing to compare; give two or more models or a folder of "
                         "training checkpoints (`head-roles report` describes one model)")
    sample = load_corpus(corpus, stories=settings.stories, seed=settings.seed)
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    log = log or (lambda message: None)
    # load_corpus has already warned each of sample.notices (the CLI prints them at once).
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

    results: dict[int, TrackedModel] = {k: done(k, tracked(k, "failed", error=error)) for k, error in unloadable.items()}
    for k, spec in enumerate(specs):  # the store first: reusing costs no model load
        if k in results:
            continue
        try:
            found = stored_run(spec, sample, settings, store=store, tokenizer=tokenizer)
        except Exception as err:
            results[k] = done(k, tracked(k, "failed", error=one_line(err)))
            continue
        if found is not None:
            results[k] = done(k, tracked(k, "reused", path=found[1], run=found[0]))
    missing = [k for k in range(n) if k not in results]
    if ray is not None and missing:
        from classifier.track.cluster import score_on_ray

        outcomes = score_on_ray({k: specs[k] for k in missing}, sample, settings, address=ray, tokenizer=tokenizer, log=log)
        for k, outcome in outcomes:
            result = tracked(k, "failed", error=outcome.error)
            if outcome.error is None:
                try:
                    path = put_in_store(outcome.run, outcome.identity, specs[k], sample, settings, store=store,
                                        figures=figures)
                    result = tracked(k, "computed", path=path)
                except Exception as err:
                    result = tracked(k, "failed", error=one_line(err))
            results[k] = done(k, result)
    elif jobs == 1 or len(missing) <= 1:
        with notices_once():  # the same note (stories cut at the context, say) for every checkpoint: once
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
                                 initializer=limit_threads, initargs=(threads,)) as pool:
            futures = {k: pool.submit(score_in_worker, specs[k], sample, settings, store, tokenizer, figures)
                       for k in missing}
            for k, future in futures.items():
                try:
                    path, error = future.result()
                    result = tracked(k, "computed", path=path) if path else tracked(k, "failed", error=error)
                except Exception as err:  # a worker that died (out of memory, say)
                    result = tracked(k, "failed", error=one_line(err))
                results[k] = done(k, result)
    return compared([results[k] for k in range(n)], sample.describe(), settings, compare, store)


def compared(models: Sequence[TrackedModel], corpus: dict, settings: ScoreSettings, compare: Compare,
             store: Path) -> Tracking:
    """The Tracking of these models (in order) with their comparisons; `track` and the training
    watcher (classifier.track.watch) both end here."""
    succeeded = [m for m in models if m.run is not None]
    comparisons = [compare_models(succeeded[i], succeeded[j]) for i, j in comparison_pairs(succeeded, compare)]
    return Tracking(list(models), corpus, settings, compare, store, comparisons)
