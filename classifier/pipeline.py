"""One analysis of one checkpoint: load, score, measure, label. The library side of `report`.

`analyse` returns plain data (`Analysis`); `classifier.report` renders it and writes the run
directory; `load_run` reads a run directory back. Nothing here prints or renders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from classifier.corpora import BANANA_PROMPT, Corpus, load_corpus
from classifier.models import LoadedModel, load_model
from classifier.roles import RoleLabels, assign_roles
from classifier.scorer import measure, metrics_frame, prompt_patterns, repeated_sequence_scores, score_texts
from classifier.settings import ScoreSettings
from classifier.tokens import vocab_classes


@dataclass(frozen=True)
class PromptView:
    """Every head on one prompt: token texts (BOS first), patterns (L, H, T, T), the metrics
    measured on the prompt alone (one row per head) and the roles they give (no bootstrap)."""

    text: str
    tokens: tuple[str, ...]
    patterns: np.ndarray
    metrics: pd.DataFrame
    roles: RoleLabels


@dataclass(frozen=True)
class Analysis:
    """Everything measured about one checkpoint on one corpus sample."""

    model: dict  # name, resolved, revision, n_layers, n_heads, n_ctx, device
    corpus: Corpus
    settings: ScoreSettings
    n_tokens: int
    metrics: pd.DataFrame  # one row per head (see classifier.scorer.metrics_frame)
    roles: RoleLabels
    pairs: pd.DataFrame  # layer, head, query, key, count, share: typical argmax token pairs
    prompt: PromptView
    induction_repeated: np.ndarray | None  # (L, H), multi-layer models only


def model_info(model: LoadedModel) -> dict:
    return {
        "name": model.name, "resolved": model.resolved, "revision": model.revision,
        "n_layers": model.n_layers, "n_heads": model.n_heads, "n_ctx": model.n_ctx, "device": model.device,
    }


def analyse(
    model: LoadedModel, corpus: Corpus, settings: ScoreSettings, *,
    prompt: str = BANANA_PROMPT, progress: bool = True,
) -> Analysis:
    """Score `corpus` with `model` and label every head."""
    vocab = vocab_classes(model.tokenizer)
    scored = score_texts(model, corpus.texts, settings, vocab=vocab, progress=progress)
    measurement = measure(scored.stats, bootstrap=settings.bootstrap, seed=settings.seed)
    # Induction needs an earlier layer to write "previous token" first.
    induction_repeated = (
        repeated_sequence_scores(model, seed=settings.seed, vocab=vocab) if model.n_layers >= 2 else None
    )
    roles = assign_roles(measurement, induction_repeated=induction_repeated)
    metrics = metrics_frame(measurement)
    if induction_repeated is not None:
        metrics["induction_repeated"] = induction_repeated.ravel()
    pairs = scored.pairs.assign(
        query=[vocab.texts[k] for k in scored.pairs["query_id"]],
        key=[vocab.texts[k] for k in scored.pairs["key_id"]],
    )
    view = prompt_view(model, prompt, settings, vocab=vocab, induction_repeated=induction_repeated)
    return Analysis(
        model=model_info(model), corpus=corpus, settings=settings, n_tokens=scored.n_tokens,
        metrics=metrics, roles=roles, pairs=pairs, prompt=view, induction_repeated=induction_repeated,
    )


def prompt_view(
    model: LoadedModel, prompt: str, settings: ScoreSettings, *, vocab=None,
    induction_repeated: np.ndarray | None = None,
) -> PromptView:
    """Patterns, metrics and roles of every head on one prompt: what a hand-written table sees."""
    vocab = vocab if vocab is not None else vocab_classes(model.tokenizer)
    ids, patterns = prompt_patterns(model, prompt, settings.max_tokens)
    scored = score_texts(model, [prompt], settings, vocab=vocab, progress=False, collect_pairs=False)
    measurement = measure(scored.stats, bootstrap=0, seed=settings.seed)
    return PromptView(
        text=prompt, tokens=tuple(vocab.texts[k] for k in ids), patterns=patterns,
        metrics=metrics_frame(measurement),
        roles=assign_roles(measurement, induction_repeated=induction_repeated),
    )


def analyse_model(
    model: str, corpus: str, settings: ScoreSettings, *, revision: str | None = None,
    tokenizer: str | None = None, progress: bool = True,
) -> Analysis:
    """`analyse` from names: read the corpus sample (cheap input errors first), load the model."""
    sample = load_corpus(corpus, stories=settings.stories, seed=settings.seed)
    loaded = load_model(model, revision=revision, device=settings.device, tokenizer_path=tokenizer)
    return analyse(loaded, sample, settings, progress=progress)


@dataclass(frozen=True)
class RunDirectory:
    """A finished run read back from disk: metrics.csv, roles.json and run.json."""

    path: Path
    metrics: pd.DataFrame
    roles: pd.DataFrame  # layer, head, role, secondary (list), confidence
    run: dict


def load_run(path: str | Path) -> RunDirectory:
    """Read a run directory written by `head-roles report`; ValueError naming what is missing."""
    path = Path(path)
    missing = [name for name in ("metrics.csv", "roles.json", "run.json") if not (path / name).is_file()]
    if missing:
        raise ValueError(f"{path}: not a head-roles run directory (missing {', '.join(missing)})")
    try:
        roles = pd.DataFrame(json.loads((path / "roles.json").read_text()))
        run = json.loads((path / "run.json").read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: broken JSON ({err.msg}, line {err.lineno})") from None
    return RunDirectory(path=path, metrics=pd.read_csv(path / "metrics.csv"), roles=roles, run=run)
