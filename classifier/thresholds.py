"""Every threshold the role rules use, in one place, each with the reason for its value.

Values were checked against the calibration models (`classifier.calibration`, planted heads whose
roles are known by construction; `head-roles selfcheck`) and against each metric's uniform-attention
baseline, not chosen by eye on a real model. Planted heads put >= 0.85 of their attention on their
target; random-weight noise heads put <= 0.15 on any one target. The values below sit between the
two with room on both sides, and are stated as shares of attention a researcher can read.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    """Role thresholds. Shares are fractions of a head's attention on eligible queries."""

    # A "attends to X" role needs X to hold at least this share of attention: a minority share
    # large enough that a researcher would say so (hand tables call 0.4 on one prompt a role),
    # far above noise heads (<= 0.15 on calibration models).
    target_share: float = 0.3
    # ...and at least this many times what uniform attention would give, so that targets that are
    # common anyway (delimiters are ~15% of GPT-2 tokens, the local window is 5 keys) need a
    # real preference, not just frequency.
    target_lift: float = 3.0
    # An attention sink parks most of its attention on BOS: a majority, not a share, because many
    # heads of trained models drop their spare attention there on top of another role.
    sink_share: float = 0.5
    # `positional` (Voita et al. 2019): one fixed offset >= 2 is the argmax for >= 90% of queries.
    positional_argmax_share: float = 0.9
    # `local`: most attention within the last five tokens...
    local_share: float = 0.5
    # ...while no single offset is the argmax for this share of queries (else it is a
    # current-, previous-token or positional head).
    local_max_offset_share: float = 0.6
    # `broad`: attention spread close to uniform (entropy normalised by its maximum, 1 = uniform)
    # and no key holding much on average. Calibration broad heads: entropy ~1, max weight < 0.1.
    broad_entropy: float = 0.8
    broad_max_weight: float = 0.25
    # `induction` needs a multi-layer model and a confirmation on a repeated random-token sequence
    # (BOS, then the same random tokens twice): attention on the token after the earlier copy.
    induction_repeated_share: float = 0.3


DEFAULT_THRESHOLDS = Thresholds()
