"""How well claims are read: the claimed primary role against a hand-made answer key.

`reading_check(notes, answers)` reads a notes file (any table shape `classifier.validate.notes` reads)
and an answer key (a JSON list of {"layer", "head", "acceptable": [role names], "confident":
optional, default true}) and returns one row per keyed head: the primary role read, the
acceptable ones, and whether it is right. An empty `acceptable` list means the author makes no
checkable claim (the right reading is none). Bare head ids in a notes file are layer 0.

    python -m tools.claims_check NOTES.md ANSWERS.json [NOTES.md ANSWERS.json ...]
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from classifier.validate.claims import extract_claims
from classifier.errors import InputError
from classifier.validate.notes import combine, read_descriptions
from classifier.registry import check_role_names


@dataclass(frozen=True)
class ReadingScore:
    """One row per keyed head; the share read right over the confidently described ones."""

    rows: pd.DataFrame  # layer, head, text, claimed, acceptable, confident, right

    @property
    def confident(self) -> pd.DataFrame:
        return self.rows[self.rows["confident"]]

    @property
    def accuracy(self) -> float:
        """Share of confidently described heads whose claimed primary role is acceptable."""
        return float(self.confident["right"].mean()) if len(self.confident) else float("nan")

    def misses(self) -> pd.DataFrame:
        return self.rows[~self.rows["right"]]


def read_answers(path: str | Path) -> list[dict]:
    path = Path(path)
    try:
        answers = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: broken JSON ({err.msg})") from None
    if isinstance(answers, dict) and "heads" in answers:  # a development model's labels (devmodels/labels)
        answers = answers["heads"]
    if not isinstance(answers, list) or not all(isinstance(a, dict) and {"layer", "head", "acceptable"} <= set(a)
                                                 for a in answers):
        raise InputError(f"{path}: expected a list of {{layer, head, acceptable}} objects")
    try:
        check_role_names([r for a in answers for r in a["acceptable"]])
    except ValueError as err:
        raise InputError(f"{path}: {err}") from None
    return answers


def reading_check(notes: str | Path, answers: str | Path) -> ReadingScore:
    """The claimed primary role of every keyed head of `notes` against `answers`."""
    rows = [replace(d, layer=d.layer if d.layer is not None else 0) for d in read_descriptions(notes)]
    described = {(d.layer, d.head): d for d in combine(rows)}
    rows = []
    for answer in read_answers(answers):
        key = (int(answer["layer"]), int(answer["head"]))
        if key not in described:
            raise InputError(f"{answers}: head {key[0]}.{key[1]} is not described in {notes}")
        claimed = extract_claims(described[key].text).claimed_primary
        acceptable = tuple(answer["acceptable"])
        right = claimed in acceptable if acceptable else claimed is None
        rows.append({"layer": key[0], "head": key[1], "text": described[key].text, "claimed": claimed,
                     "acceptable": acceptable, "confident": bool(answer.get("confident", True)), "right": right})
    return ReadingScore(pd.DataFrame(rows))


def main(argv: list[str]) -> int:
    if not argv or len(argv) % 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    total, right = 0, 0
    for notes, answers in zip(argv[::2], argv[1::2]):
        score = reading_check(notes, answers)
        confident = score.confident
        total, right = total + len(confident), right + int(confident["right"].sum())
        print(f"{notes}: {int(confident['right'].sum())}/{len(confident)} confident heads read right "
              f"({100 * score.accuracy:.0f}%); all keyed heads {int(score.rows['right'].sum())}/{len(score.rows)}")
        for row in score.misses().itertuples():
            print(f"  miss {row.layer}.{row.head}: read {row.claimed}, expected {list(row.acceptable)}"
                  f"{'' if row.confident else ' (not confident)'}: {row.text[:100]}")
    if len(argv) > 2:
        print(f"overall: {right}/{total} confident heads read right ({100 * right / max(total, 1):.0f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
