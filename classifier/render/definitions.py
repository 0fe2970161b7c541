"""What every column and figure of a report means, in one place: report.md prints them in its
Definitions section and report.html carries them inline, so that both pages read on their own.
The exact formulas are in docs/metrics.md; a test checks that every term here is defined there.
"""

from __future__ import annotations

from classifier.formatting import percent
from classifier.thresholds import (
    DEFAULT_THRESHOLDS, DOUBT_CONFIDENCE, HOLD_MAX_GAP, HOLD_MIN_QUERIES, HOLD_PEAK_LIFT, HOLD_POSITION_LIFT, HOLD_RETURN_SHARE, KEYS_NAMED, MATTERS_SHARE_OF_LOSS, MIN_STORIES_FOR_BOOTSTRAP,
    TOP_KEY_NOTABLE_LIFT,
)

METRICS_DOC = "docs/metrics.md"

BUDGET = ("Each query's attention is split into disjoint parts by the most specific target each key is: BOS, itself, "
          "the previous token, the word's first piece, the opening quote of the current quotation, the latest delimiter, the clause start, names, other delimiters, "
          "earlier copies, induction targets, the rest of the last five tokens, everything else (budget.csv). "
          "Shares are token-weighted over the scored queries of every story.")

# (term, definition), in the order the pages use them.
DEFINITIONS: tuple[tuple[str, str], ...] = (
    ("Role", "the primary role: the most specific target the head prefers (at least "
     f"{DEFAULT_THRESHOLDS.target_lift:g}x what uniform attention gives it and a real share of its non-sink attention), "
     "else `local`, `hold`, `start-of-text` or `broad`, else `unclear`. Written with a `?` (`*` in grids of codes) when "
     f"in doubt: confidence under {percent(DOUBT_CONFIDENCE)} or not measured. Roles in brackets (+...) also pass; "
     "a scope (`on multi-piece words:`) marks one that holds only on the few queries that have its target."),
    ("Explained", "share of all the head's attention in the budget part(s) the role names."),
    ("Lift", "that share divided by the share uniform attention (1/(i+1) on every key of query i) would give the same parts."),
    ("Margin", "how far the role's share above uniform leads the best other target's, each taken over the queries "
     "that have its target (n/a for broad, positional and unclear heads)."),
    ("Sink", "share of all attention on BOS (position 0)."),
    ("Hold", "share of queries that hold an earlier position: their top key (BOS, itself and the previous token aside, "
     f"at least {HOLD_PEAK_LIFT:g}x uniform) is the top key of a run of at least {HOLD_MIN_QUERIES} queries (up to "
     f"{HOLD_MAX_GAP} queries between two of them may look elsewhere), the head does not keep coming back to it after "
     f"the run (at most {HOLD_RETURN_SHARE:g}x the run's queries), and it gets at least {HOLD_POSITION_LIFT:g}x the mean "
     "weight of the other keys of its token (a held position, not a preferred token)."),
    ("Top keys", "the key tokens (by text; BOS, itself and the previous token aside) with the largest share of the head's "
     f"attention, those it prefers ({TOP_KEY_NOTABLE_LIFT:g}x uniform or more) first, each with its share and its lift "
     f"over uniform attention; the role table shows the first {KEYS_NAMED}, the head card all of them."),
    ("Stability", "share of bootstrap resamples over stories (stories drawn with replacement) that give the same primary role."),
    ("Confidence", f"stability, scaled down when the margin is under {percent(DEFAULT_THRESHOLDS.margin_full)} of attention "
     "and when the role explains under "
     f"{percent(DEFAULT_THRESHOLDS.primary_share)} of all attention; none for `unclear`."),
    ("n/a", f"not measured: intervals, stability and confidence need at least {MIN_STORIES_FOR_BOOTSTRAP} stories for the "
     "bootstrap; explained, lift and margin have no value for some roles."),
    ("Ablation (nats)", "loss increase, in nats per predicted token, when the head's output z is replaced at every position "
     "by its mean over the ablation stories (exact: one forward pass per head), with its 95% bootstrap interval over stories."),
    ("Clean loss", "mean next-token cross-entropy of the unablated model over the same stories, nats per predicted token."),
    ("Share of loss", "the ablation divided by the clean loss."),
    ("Matters", f"the ablation's interval lies above zero and above {percent(MATTERS_SHARE_OF_LOSS, 1)} of the clean loss."),
    ("Attribution", "attribution patching: the one-pass linear estimate of the ablation (mean z - z) . dLoss/dz, shown "
     "only with its rank agreement (Spearman) with the exact values on the same stories."),
    ("Similarity", "1 - total-variation distance of two heads' attention over the same queries, averaged over queries; "
     "groups: average-linkage clusters of heads at distance under "
     f"{DEFAULT_THRESHOLDS.group_distance:g}."),
)
