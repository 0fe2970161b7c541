"""Role recovery on calibration models: planted roles against measured primary roles.

`run_selfcheck` builds calibration checkpoints (`classifier.calibrate.planted`) for several seeds and
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

from classifier.formatting import percent, written_role
from classifier.label.roles import ROLES


@dataclass(frozen=True)
class SelfcheckResult:
    """heads: one row per (layout, seed, layer, head) with planted and measured roles;
    per_role: precision, recall and support per planted role."""

    heads: pd.DataFrame
    per_role: pd.DataFrame

    @property
    def misses(self) -> pd.DataFrame:
        """Heads whose measured role is not the planted one; a random-QK noise head may be broad
        (at a score spread of 0.5-1 logits it is close to uniform), never anything specific."""
        heads = self.heads
        random_qk = heads["score_std"].notna() if "score_std" in heads.columns else False
        near_uniform = (heads["planted"] == "unclear") & random_qk & (heads["measured"] == "broad")
        return heads[(heads["planted"] != heads["measured"]) & ~near_uniform]


# Strength bands of a random-QK noise head: the standard deviation of its scores (logits).
NOISE_BANDS = ((0.5, 1.5), (1.5, 2.5), (2.5, 4.0))
# Strength bands of a planted head: the share of attention its target gets (the planted role's
# headline metric, measured), from a clear minority to sharp.
STRENGTH_BANDS = (0.0, 0.3, 0.6, 0.9, 1.0001)
BAND_NAMES = ("soft (< 0.3)", "medium (0.3-0.6)", "strong (0.6-0.9)", "sharp (>= 0.9)")


def compare_with_truth(analysis, truth) -> pd.DataFrame:
    """Planted against measured primary role, one row per head of one calibration model, with the
    planted target's measured share (`share`, NaN for noise heads) and its strength band."""
    planted = {(h.layer, h.head): h for h in truth.heads}
    frame = analysis.roles[["layer", "head", "role", "confidence"]].rename(columns={"role": "measured"})
    frame.insert(2, "planted", [planted[(r.layer, r.head)].role if (r.layer, r.head) in planted else "unclear"
                                for r in frame.itertuples()])
    metrics = analysis.metrics.set_index(["layer", "head"])
    shares = []
    for r in frame.itertuples():
        head = planted.get((r.layer, r.head))
        metric = head.metric if head is not None else None
        shares.append(float(metrics.loc[(r.layer, r.head), metric]) if metric in metrics.columns else float("nan"))
    frame["share"] = shares
    frame["band"] = pd.cut(frame["share"], STRENGTH_BANDS, labels=BAND_NAMES, right=False).astype(object)
    # a BOS sink beside the planted role (a holder's random-QK noise is no second role)
    frame["mixture"] = [bool(planted.get((r.layer, r.head)) and planted[(r.layer, r.head)].minor == "start-of-text")
                        for r in frame.itertuples()]
    frame["score_std"] = [getattr(planted.get((r.layer, r.head)), "score_std", None) for r in frame.itertuples()]
    return frame


def recovery_by_band(heads: pd.DataFrame) -> pd.DataFrame:
    """Planted (non-noise) heads per strength band and how many came out with their planted role;
    two-role mixtures get a row of their own; noise heads a row with the false-role count."""
    planted = heads[heads["planted"] != "unclear"]
    rows = []
    for band in BAND_NAMES:
        group = planted[(planted["band"] == band) & ~planted["mixture"]]
        rows.append({"heads": band, "planted": len(group), "recovered": int((group["planted"] == group["measured"]).sum()),
                     "roles": ", ".join(sorted(set(group["planted"])))})
    mixtures = planted[planted["mixture"]]
    rows.append({"heads": "two-role mixtures (dominant role + BOS sink)", "planted": len(mixtures),
                 "recovered": int((mixtures["planted"] == mixtures["measured"]).sum()),
                 "roles": ", ".join(sorted(set(mixtures["planted"])))})
    holders = planted[planted["planted"] == "hold"]
    if len(holders):
        rows.append({"heads": "holders (sharp and soft)", "planted": len(holders),
                     "recovered": int((holders["measured"] == "hold").sum()),
                     "roles": "measured: " + ", ".join(sorted(set(holders["measured"])))})
    noise = heads[heads["planted"] == "unclear"]
    if "score_std" not in noise.columns:  # results from before the random-QK noise heads
        noise = noise.assign(score_std=float("nan"))
    random_qk = noise["score_std"].notna()
    groups = [("noise (no role planted)", noise[~random_qk])]
    groups += [(f"random-QK noise, score std {low}-{high} logits",
                noise[random_qk & (noise["score_std"] >= low) & (noise["score_std"] <= high if high == NOISE_BANDS[-1][1]
                                                                  else noise["score_std"] < high)])
               for low, high in NOISE_BANDS]
    for name, group in groups:
        if not len(group) and name != "noise (no role planted)":
            continue
        given = sorted(set(group["measured"]) - {"unclear", "broad"})
        rows.append({"heads": name, "planted": len(group),
                     "recovered": int(group["measured"].isin(["unclear", "broad"]).sum()),
                     "roles": f"hold: {int((group['measured'] == 'hold').sum())}; given a specific role: "
                              + (", ".join(given) or "none")})
    return pd.DataFrame(rows)


def role_scores(heads: pd.DataFrame) -> pd.DataFrame:
    """Per planted role: precision, recall and support of the measured primary roles."""
    labels = [r for r in ROLES if r in set(heads["planted"]) | set(heads["measured"])]
    precision, recall, _, support = precision_recall_fscore_support(
        heads["planted"], heads["measured"], labels=labels, zero_division=0
    )
    return pd.DataFrame({"role": labels, "precision": precision, "recall": recall, "support": support})


def run_selfcheck(
    seeds, *, layouts=("one-layer", "two-layer", "soft", "hold"), corpus: str = "bundled", stories: int = 60,
    bootstrap: int = 100, progress: bool = True,
) -> SelfcheckResult:
    """Build, label and compare a calibration model per (layout, seed)."""
    from classifier.calibrate.planted import build_calibration_model
    from classifier.load.corpora import load_corpus
    from classifier.load.models import load_model
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
                analysis = analyse(model, sample, settings, progress=progress, importance=False)  # roles only
                frames.append(compare_with_truth(analysis, truth).assign(layout=layout, seed=seed))
    heads = pd.concat(frames, ignore_index=True)
    heads = heads[["layout", "seed", "layer", "head", "planted", "measured", "confidence", "share", "band", "mixture",
                   "score_std"]]
    return SelfcheckResult(heads=heads, per_role=role_scores(heads))


@dataclass(frozen=True)
class SelfcheckReport:
    """What `head-roles selfcheck` prints: the tables (Markdown), and the missed heads (empty when
    every planted role was recovered and no noise head got a role)."""

    text: str
    misses: str


def selfcheck_report(seeds: int, *, stories: int = 60, bootstrap: int = 100, baselines: bool = False) -> SelfcheckReport:
    """Run the selfcheck over seeds 0..seeds-1 and format it: per-role precision and recall,
    recovery by strength band and, with `baselines`, seed 0 beside the ARENA-style rules and
    TransformerLens' detect_head."""
    from classifier.errors import InputError
    from classifier.formatting import markdown_table
    from classifier.load.corpora import BUNDLED_PATH, split_stories
    from classifier.settings import ScoreSettings

    if seeds < 1:
        raise InputError(f"--seeds must be at least 1, got {seeds}")
    ScoreSettings(stories=stories, bootstrap=bootstrap)  # says a bad --stories or --bootstrap
    result = run_selfcheck(range(seeds), stories=stories or None, bootstrap=bootstrap)
    per_role = result.per_role.assign(
        precision=result.per_role["precision"].map("{:.2f}".format),
        recall=result.per_role["recall"].map("{:.2f}".format),
    )
    parts = [
        markdown_table(per_role),
        "\nBy strength (the planted target's measured share of attention):\n",
        markdown_table(recovery_by_band(result.heads)),
        f"\n{len(result.heads) - len(result.misses)} of {len(result.heads)} heads recovered "
        f"over {seeds} seed(s) x {result.heads['layout'].nunique()} layouts.",
    ]
    if baselines:
        # The baselines keep every pattern in memory: they see at most 20 of the stories.
        available = len(split_stories(BUNDLED_PATH.read_text()))
        shown = min(20, stories or available, available)
        parts += [
            f"\nSeed 0, head by head (head-roles over {min(stories or available, available)} bundled stories; "
            f"detected: mean score > 0.4 over the first {shown} of them):\n",
            markdown_table(compare_baselines(seed=0, stories=stories or None, baseline_stories=shown, bootstrap=bootstrap)),
        ]
    return SelfcheckReport("\n".join(parts), markdown_table(result.misses) if len(result.misses) else "")


def demo_section(analysis, truth) -> str:
    """Markdown: planted roles of a calibration model beside the measured ones."""
    from classifier.render.report import head_label, markdown_table

    heads = compare_with_truth(analysis, truth)
    n_layers = analysis.model.n_layers
    table = pd.DataFrame({
        "Head": [head_label(r.layer, r.head, n_layers) for r in heads.itertuples()],
        "Planted": heads["planted"],
        "Measured": [written_role(m, c) for m, c in zip(heads["measured"], heads["confidence"])],
        "Confidence": ["" if m == "unclear" else percent(c) for m, c in zip(heads["measured"], heads["confidence"])],
        "Recovered": ["yes" if p == m else "**no**" for p, m in zip(heads["planted"], heads["measured"])],
    })
    recovered = int((heads["planted"] == heads["measured"]).sum())
    return "\n".join([
        "## Planted roles (calibration model)",
        "",
        f"This checkpoint was built with hand-set weights (`classifier/calibrate/planted.py`, layout "
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
    from classifier.calibrate.baselines import arena_scores, detected, transformer_lens_scores
    from classifier.calibrate.planted import build_calibration_model
    from classifier.load.corpora import load_corpus
    from classifier.load.models import load_model
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
            ours = compare_with_truth(analyse(model, sample, settings, progress=False, importance=False), truth)
            texts = sample.texts[:baseline_stories]
            arena, lens = arena_scores(model, texts), transformer_lens_scores(model, texts)
            frames.append(ours.assign(layout=layout, arena=detected(arena, "arena_"), transformer_lens=detected(lens, "tl_")))
    frame = pd.concat(frames, ignore_index=True)
    return frame[["layout", "layer", "head", "planted", "measured", "arena", "transformer_lens"]]
