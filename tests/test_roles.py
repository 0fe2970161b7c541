"""Role rules on synthetic metric values whose right answer is plain."""

import numpy as np
import pytest

from classifier.roles import ROLES, assign_roles, check_role_names
from classifier.scorer import Measurement
from classifier.scoring import METRICS, OFFSETS

# Uniform-attention expectations of a typical story (shares; entropy 1; distance in tokens).
EXPECTED = {m: 0.03 for m in METRICS} | {"local": 0.1, "delimiter": 0.15, "entropy": 1.0, "max_weight": 0.03, "distance": 60.0}
BACKGROUND = {m: 0.03 for m in METRICS} | {"local": 0.1, "delimiter": 0.12, "entropy": 0.5, "max_weight": 0.5, "distance": 50.0}


def measurement(heads: list[dict], offsets: list[dict] | None = None, resamples: int = 0, noise: float = 0.0) -> Measurement:
    values = np.array([[[h.get(m, BACKGROUND[m]) for m in METRICS] for h in heads]])  # (1, H, M)
    shares = np.full((1, len(heads), len(OFFSETS) + 1), 1.0 / (len(OFFSETS) + 1))
    for k, offset_share in enumerate(offsets or [{}] * len(heads)):
        for offset, share in offset_share.items():
            shares[0, k] = (1 - share) / len(OFFSETS)
            shares[0, k, offset] = share
    expected = np.array([EXPECTED[m] for m in METRICS])
    rng = np.random.default_rng(0)
    boot = values[None] + rng.normal(scale=noise, size=(resamples, *values.shape))
    return Measurement(
        values=values, expected=expected, boot_values=boot, boot_expected=np.repeat(expected[None], resamples, 0),
        offset_shares=shares, boot_offset_shares=np.repeat(shares[None], resamples, 0), n_texts=100,
    )


def test_each_target_role_is_primary_where_its_target_dominates():
    heads = [
        {"current": 0.9, "local": 0.95},
        {"previous": 0.85, "local": 0.9},
        {"start_of_text": 0.8},
        {"delimiter": 0.7, "last_delimiter": 0.6},
        {"clause_start": 0.6},
        {"proper_noun": 0.5},
        {"duplicate": 0.6},
        {"word_start": 0.7},
    ]
    offsets = [{0: 0.95}, {1: 0.95}, {}, {}, {}, {}, {}, {}]
    labels = assign_roles(measurement(heads, offsets))
    assert labels.frame["role"].tolist() == [
        "current-token", "previous-token", "start-of-text", "delimiter", "clause-start", "proper-noun",
        "duplicate-token", "word-start",
    ]
    # local attention is implied by a current-token head but is not a role for it: one offset dominates
    assert "local" not in labels.frame.loc[0, "secondary"]


def test_noise_head_is_unclear_and_a_common_target_needs_real_lift():
    # delimiter share 0.35 passes the share threshold but is only 2.3x its uniform expectation 0.15
    labels = assign_roles(measurement([{}, {"delimiter": 0.35}]))
    assert labels.frame["role"].tolist() == ["unclear", "unclear"]


def test_positional_needs_one_offset_of_two_or_more_as_argmax_for_ninety_percent():
    heads = [{"offset2": 0.8}, {"offset2": 0.8}, {}]
    offsets = [{2: 0.95}, {2: 0.85}, {3: 0.92}]
    labels = assign_roles(measurement(heads, offsets))
    assert labels.frame["role"].tolist() == ["positional", "unclear", "positional"]
    assert labels.frame["offset"].tolist()[::2] == [2, 3]


def test_broad_and_local_heads():
    heads = [{"entropy": 0.95, "max_weight": 0.1}, {"local": 0.7, "current": 0.2, "previous": 0.2}]
    offsets = [{}, {0: 0.3}]
    labels = assign_roles(measurement(heads, offsets))
    assert labels.frame["role"].tolist() == ["broad", "local"]


def test_secondary_roles_are_the_other_passing_roles_strongest_first():
    labels = assign_roles(measurement([{"previous": 0.5, "start_of_text": 0.6, "proper_noun": 0.35}], [{1: 0.6}]))
    row = labels.frame.iloc[0]
    assert row["role"] == "start-of-text"
    assert row["secondary"] == ("previous-token", "proper-noun")


def test_induction_needs_a_repeated_sequence_confirmation_and_several_layers():
    heads = [{"induction": 0.6}]
    m = measurement(heads)
    assert assign_roles(m).frame["role"].tolist() == ["unclear"]
    two_layers = Measurement(**{**m.__dict__, "values": np.repeat(m.values, 2, 0),
                                "offset_shares": np.repeat(m.offset_shares, 2, 0)})
    confirmed = assign_roles(two_layers, induction_repeated=np.array([[0.1], [0.8]]))
    assert confirmed.frame["role"].tolist() == ["unclear", "induction"]


def test_confidence_is_the_share_of_resamples_agreeing_with_the_primary_role():
    sure = assign_roles(measurement([{"current": 0.9}], [{0: 0.95}], resamples=200, noise=0.01))
    assert sure.frame.loc[0, "confidence"] == 1.0
    # current 0.31 sits at the 0.3 threshold: resamples with noise 0.02 fall either side
    borderline = assign_roles(measurement([{"current": 0.31}], [{0: 0.5}], resamples=400, noise=0.02))
    assert 0.4 < borderline.frame.loc[0, "confidence"] < 0.9


def test_roles_json_records_have_the_contract_fields():
    records = assign_roles(measurement([{"current": 0.9}], [{0: 0.95}])).to_records()
    # no resamples: the confidence is unknown (null in JSON), not 1
    assert records == [{"layer": 0, "head": 0, "role": "current-token", "secondary": [], "confidence": None}]


def test_unknown_role_name_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown role.*bogus.*valid: current-token"):
        check_role_names(["bogus"])
    assert ROLES[-1] == "unclear"
