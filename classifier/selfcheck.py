"""Role recovery on calibration models: planted roles against measured primary roles.

`run_selfcheck` builds calibration checkpoints (`classifier.calibration`) for several seeds and
layouts, labels them on the bundled stories, and compares. A planted head must come out with its
planted role as primary; a noise head (planted "unclear") must come out unclear. `demo_section`
renders the same comparison for one model as Markdown.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.metrics import precision_recall_fscore_support

from classifier.roles import ROLES


@dataclass(frozen=True)
class SelfcheckResult:
    """heads: one row per (layout, seed, layer, head) with planted and measured roles;
    per_role: precision, recall and support per planted role."""

    heads: pd.DataFrame
    per_role: pd.DataFrame

    @property
    def misses(self) -> pd.DataFrame:
        return self.heads[self.heads["planted"] != self.heads["measured"]]


def compare_with_truth(analysis, truth) -> pd.DataFrame:
    """Planted against measured primary role, one row per head of one calibration model."""
    planted = {(h.layer, h.head): h.role for h in truth.heads}
    frame = analysis.roles[["layer", "head", "role", "confidence"]].rename(columns={"role": "measured"})
    frame.insert(2, "planted", [planted.get((r.layer, r.head), "unclear") for r in frame.itertuples()])
    return frame


def role_scores(heads: pd.DataFrame) -> pd.DataFrame:
    """Per planted role: precision, recall and support of the measured primary roles."""
    labels = [r for r in ROLES if r in set(heads["planted"]) | set(heads["measured"])]
    precision, recall, _, support = precision_recall_fscore_support(
        heads["planted"], heads["measured"], labels=labels, zero_division=0
    )
    return pd.DataFrame({"role": labels, "precision": precision, "recall": recall, "support": support})


def run_selfcheck(
    seeds, *, layouts=("one-layer", "two-layer"), corpus: str = "bundled", stories: int = 60,
    bootstrap: int = 100, progress: bool = True,
) -> SelfcheckResult:
    """Build, label and compare a calibration model per (layout, seed)."""
    from classifier.calibration import build_calibration_model
    from classifier.corpora import load_corpus
    from classifier.models import load_model
    from classifier.pipeline import analyse
    from classifier.settings import ScoreSettings

    settings = ScoreSettings(stories=stories, bootstrap=bootstrap, device="cpu")
    sample = load_corpus(corpus, stories=stories, seed=0)
    frames = []
    with tempfile.TemporaryDirectory(prefix="head-roles-selfcheck-") as scratch:
        for layout in layouts:
            for seed in seeds:
                directory = Path(scratch) / f"{layout}-{seed}"
                truth = build_calibration_model(directory, layout=layout, seed=seed)
                model = load_model(str(directory), device="cpu")
                analysis = analyse(model, sample, settings, progress=progress)
                frames.append(compare_with_truth(analysis, truth).assign(layout=layout, seed=seed))
    heads = pd.concat(frames, ignore_index=True)
    heads = heads[["layout", "seed", "layer", "head", "planted", "measured", "confidence"]]
    return SelfcheckResult(heads=heads, per_role=role_scores(heads))


def demo_section(analysis, truth) -> str:
    """Markdown: planted roles of a calibration model beside the measured ones."""
    from classifier.report import head_label, markdown_table

    heads = compare_with_truth(analysis, truth)
    n_layers = analysis.model.n_layers
    table = pd.DataFrame({
        "Head": [head_label(r.layer, r.head, n_layers) for r in heads.itertuples()],
        "Planted": heads["planted"],
        "Measured": heads["measured"],
        "Confidence": [f"{c:.0%}" for c in heads["confidence"]],
        "Recovered": ["yes" if p == m else "**no**" for p, m in zip(heads["planted"], heads["measured"])],
    })
    recovered = int((heads["planted"] == heads["measured"]).sum())
    return "\n".join([
        "## Planted roles (calibration model)",
        "",
        f"This checkpoint was built with hand-set weights (`classifier/calibration.py`, layout "
        f"`{truth.layout}`, seed {truth.seed}); {recovered} of {len(heads)} heads come out with their planted role.",
        "",
        markdown_table(table),
    ])


def compare_baselines(
    *, layouts=("one-layer", "two-layer"), seed: int = 0, corpus: str = "bundled", stories: int = 60,
    baseline_stories: int = 20, bootstrap: int = 100,
) -> pd.DataFrame:
    """Planted roles beside head-roles (on `stories`), the ARENA-style rules and TransformerLens'
    detect_head (on the first `baseline_stories` of them: they keep every pattern)."""
    from classifier.baselines import arena_scores, detected, transformer_lens_scores
    from classifier.calibration import build_calibration_model
    from classifier.corpora import load_corpus
    from classifier.models import load_model
    from classifier.pipeline import analyse
    from classifier.settings import ScoreSettings

    sample = load_corpus(corpus, stories=stories, seed=0)
    settings = ScoreSettings(stories=stories, bootstrap=bootstrap, device="cpu")
    frames = []
    with tempfile.TemporaryDirectory(prefix="head-roles-baselines-") as scratch:
        for layout in layouts:
            directory = Path(scratch) / layout
            truth = build_calibration_model(directory, layout=layout, seed=seed)
            model = load_model(str(directory), device="cpu")
            ours = compare_with_truth(analyse(model, sample, settings, progress=False), truth)
            texts = sample.texts[:baseline_stories]
            arena, lens = arena_scores(model, texts), transformer_lens_scores(model, texts)
            frames.append(ours.assign(layout=layout, arena=detected(arena, "arena_"), transformer_lens=detected(lens, "tl_")))
    frame = pd.concat(frames, ignore_index=True)
    return frame[["layout", "layer", "head", "planted", "measured", "arena", "transformer_lens"]]
