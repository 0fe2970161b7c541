"""Role recovery on calibration models: every planted role as primary, nothing for noise heads."""

import pandas as pd
import pytest
from click.testing import CliRunner

from classifier.cli import main
from classifier.calibrate.selfcheck import SelfcheckResult, role_scores, run_selfcheck

pytestmark = pytest.mark.slow


def test_every_planted_role_is_recovered_as_primary_and_noise_heads_stay_unclear():
    result = run_selfcheck([0, 1], stories=40, bootstrap=50, progress=False)
    assert len(result.heads) == 2 * (16 + 16 + 16 + 16)  # one-layer, two-layer, soft, hold
    assert result.misses.empty, result.misses.to_string()
    planted = set(result.heads["planted"])
    assert planted >= {"current-token", "previous-token", "positional", "start-of-text", "delimiter",
                       "clause-start", "proper-noun", "broad", "induction", "hold", "quote-start", "unclear"}
    recall = result.per_role.set_index("role")["recall"]
    assert (recall.drop("unclear") == 1).all(), recall  # every planted role recovered
    # the only heads given a role not planted: random-QK noise heads so weak (score std under 1.5
    # logits) that they are near uniform, measured broad; none gets hold or a specific role
    others = result.heads[result.heads["planted"] != result.heads["measured"]]
    assert set(others["measured"]) <= {"broad"} and (others["score_std"] < 1.5).all(), others.to_string()
    random_qk = result.heads[result.heads["score_std"].notna()]
    assert len(random_qk) == 2 * 10 and not random_qk["measured"].isin(["hold"]).any()


def test_role_scores_count_a_noise_head_given_a_role_against_precision():
    heads = pd.DataFrame({"planted": ["previous-token", "unclear", "unclear"],
                          "measured": ["previous-token", "previous-token", "unclear"]})
    scores = role_scores(heads).set_index("role")
    assert scores.loc["previous-token", "precision"] == 0.5
    assert scores.loc["unclear", "recall"] == 0.5


def test_selfcheck_exits_1_on_a_miss(monkeypatch):
    heads = pd.DataFrame({"layout": ["one-layer"], "seed": [0], "layer": [0], "head": [3],
                          "planted": ["delimiter"], "measured": ["unclear"], "confidence": [0.4],
                          "share": [0.2], "band": ["soft (< 0.3)"], "mixture": [False]})
    monkeypatch.setattr("classifier.calibrate.selfcheck.run_selfcheck",
                        lambda *a, **k: SelfcheckResult(heads=heads, per_role=role_scores(heads)))
    result = CliRunner().invoke(main, ["selfcheck", "--seeds", "1"])
    assert result.exit_code == 1
    assert "0 of 1 heads recovered" in result.output


def test_demo_report_shows_the_planted_roles_recovered(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--stories", "30", "--seed", "2"])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert "16 of 16 heads come out with their planted role" in report
    assert "| **no** |" not in report


def test_baseline_detection_uses_the_0_4_rule_and_lists_every_passing_pattern():
    from classifier.calibrate.baselines import detected

    scores = pd.DataFrame({"layer": [0, 0], "head": [0, 1], "arena_current-token": [0.41, 0.1],
                           "arena_previous-token": [0.5, 0.39]})
    assert detected(scores, "arena_") == ["current-token, previous-token", "-"]
