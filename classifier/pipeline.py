"""One analysis of one checkpoint: load, score, measure, label. The library side of `report`.

`analyse` returns a `classifier.run.Run` (plain data); `classifier.render.report` renders it. Nothing
here prints or renders.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from classifier.console import progress_allowed
from classifier.errors import notify
from classifier.load.corpora import BANANA_PROMPT, Corpus, load_corpus
from classifier.load.models import LoadedModel, ModelRef, load_model
from classifier.label.roles import assign_roles, characteristic_pairs, top_keys_lists
from classifier.run import ModelInfo, PatternView, Run
from classifier.measure.importance import head_importance
from classifier.measure.batches import Stories, model_stories, return_freed_memory
from classifier.measure.scorer import (
    budget_frame, measure, metrics_frame, prompt_patterns, repeated_sequence_scores, score_stories, score_texts,
)
from classifier.settings import ScoreSettings
from classifier.load.tokens import vocab_classes
from classifier.versions import package_versions

# Corpus stories whose full patterns are kept for the HTML view, and their length in tokens
# (long enough for a few sentences, short enough to keep report.html small).
STORIES_SHOWN = 3
STORY_TOKENS_SHOWN = 96


def model_info(model: LoadedModel) -> ModelInfo:
    return ModelInfo(
        name=model.name, resolved=model.resolved, revision=model.revision, n_layers=model.n_layers,
        n_heads=model.n_heads, n_ctx=model.n_ctx, device=model.device,
        tokenizer=getattr(model, "tokenizer_path", None),
    )


def pattern_view(model: LoadedModel, text: str, max_tokens: int, vocab) -> PatternView:
    """Every head's pattern on one text, rounded to float16 once, here."""
    ids, patterns = prompt_patterns(model, text, max_tokens)
    return PatternView(text=text, tokens=tuple(vocab.texts[k] for k in ids), patterns=patterns.astype(np.float16))


def cut_notice(stories: Stories, max_tokens: int) -> str | None:
    """A remark when stories are longer than the tokens scored (BOS included): they are cut there."""
    cut, count, limit = int(stories.cut.sum()), len(stories), stories.limit
    if not cut:
        return None
    why = f"--max-tokens {max_tokens}" if limit == max_tokens else f"the model's context ({limit} tokens)"
    return (f"{why}: {cut} of {count} stor{'y' if count == 1 else 'ies'} {'is' if cut == 1 else 'are'} longer than {limit} "
            "tokens (BOS included) and cut there; their later tokens are not scored.")


def analyse(
    model: LoadedModel, corpus: Corpus, settings: ScoreSettings, *,
    prompt: str = BANANA_PROMPT, progress: bool = True, command: str | None = None,
    notices: tuple[str, ...] = (), stories_shown: int = STORIES_SHOWN, importance: bool = True,
) -> Run:
    """Score `corpus` with `model` and label every head; with `importance`, also measure whether
    each head matters and which heads are alike (`classifier.measure.importance`)."""
    progress = progress and progress_allowed()  # the CLI shows bars on a terminal only
    return_freed_memory()  # the passes below stay within their memory budget in resident memory too
    stories = model_stories(model, corpus.texts, settings.max_tokens)
    cut = cut_notice(stories, settings.max_tokens)
    if cut is not None:
        notify(cut)
    vocab = vocab_classes(model.tokenizer)
    scored = score_stories(model, stories, settings, vocab=vocab, progress=progress)
    measurement = measure(scored.stats, bootstrap=settings.bootstrap, seed=settings.seed)
    # Induction needs an earlier layer to write "previous token" first.
    induction_repeated = (
        repeated_sequence_scores(model, seed=settings.seed, vocab=vocab) if model.n_layers >= 2 else None
    )
    roles = assign_roles(measurement, induction_repeated=induction_repeated)
    role_frame = roles.frame.assign(top_keys=top_keys_lists(scored.top_keys, roles.frame, vocab))
    metrics = metrics_frame(measurement)
    if induction_repeated is not None:
        metrics["induction_repeated"] = induction_repeated.ravel()
    if importance:
        measured = head_importance(model, stories, settings, progress=progress)
        metrics = metrics.merge(measured.metrics, on=["layer", "head"])
        role_frame = role_frame.merge(measured.roles, on=["layer", "head"])

    view = pattern_view(model, prompt, settings.max_tokens, vocab)
    prompt_scored = score_texts(model, [prompt], settings, vocab=vocab, progress=False, collect_pairs=False)
    prompt_measurement = measure(prompt_scored.stats, bootstrap=0, seed=settings.seed)
    prompt_roles = assign_roles(prompt_measurement, induction_repeated=induction_repeated)
    stories = tuple(
        pattern_view(model, text, min(settings.max_tokens, STORY_TOKENS_SHOWN), vocab)
        for text in corpus.texts[:stories_shown]
    )
    notice = tuple(n for n in getattr(corpus, "notices", ()) if n not in notices) + ((cut,) if cut else ())
    return Run(
        model=model_info(model), corpus=corpus.describe(), settings=settings, n_tokens=scored.n_tokens,
        metrics=metrics, budget=budget_frame(measurement), roles=role_frame,
        pairs=characteristic_pairs(scored.pairs, role_frame, vocab),
        prompt=view, prompt_metrics=metrics_frame(prompt_measurement), prompt_roles=prompt_roles.frame,
        stories=stories, notices=tuple(notices) + notice, command=command,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), versions=package_versions(),
    )


def analyse_model(
    model: str | ModelRef, corpus: str, settings: ScoreSettings, *, revision: str | None = None,
    tokenizer: str | None = None, progress: bool = True, command: str | None = None,
    notices: tuple[str, ...] = (),
) -> Run:
    """`analyse` from names: read the corpus sample (cheap input errors first), load the model."""
    sample = load_corpus(corpus, stories=settings.stories, seed=settings.seed)
    loaded = load_model(model, revision=revision, device=settings.device, tokenizer_path=tokenizer)
    return analyse(loaded, sample, settings, progress=progress, command=command, notices=notices)
