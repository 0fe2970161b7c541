"""Rendering a `Validation`: the Markdown report and the JSON list, nothing else.

Markdown: one row per described head (the sentence holding the primary claim, the claimed
roles with their hedges, the measured role, the verdict and its evidence), then the scoped
statements and notes, then the summary (verdict counts, agreement, Cohen's kappa). JSON: one
object per head with `layer`, `head`, `claim`, `claimed_primary`, `claimed_secondary`,
`conditions`, `listed` (summary-table kinds), `verdict`, `measured_role`, `evidence` and `numbers`
(each written number: `written`, `metric` (the metrics.csv column, `<column>_lift` for a
multiplier, null when not checked), `measured`, `low`, `high`, `agrees`). All numbers go through
`classifier.formatting`.
"""

from __future__ import annotations

import json
import math
import re

import pandas as pd

from classifier.validate.claims import Claim, HeadClaims
from classifier.formatting import head_label, markdown_table, number, percent, times
from classifier.thresholds import NUMBER_AGREEMENT
from classifier.validate.results import HeadResult, Validation
from classifier.validate.verdicts import VERDICTS, Evidence, Judgement, NumberCheck, Verdict

ORDER = {Verdict.SUPPORTED: 3, Verdict.SECONDARY: 2, Verdict.CONTRADICTED: 1, Verdict.NOT_CHECKABLE: 0}


def _hedged(text: str, claim: Claim) -> str:
    """`~~clause-start?`: the roughly-marks in front, the question mark behind, as written."""
    marks = claim.hedge.replace(" weak", "")
    text = f"{marks.replace('?', '')}{text}{'?' if '?' in marks else ''}"
    return f"weak {text}" if "weak" in claim.hedge else text


def evidence_text(e: Evidence | None) -> str:
    """`previous-token 45% [44%, 46%], 35x uniform`."""
    if e is None:
        return ""
    if e.role == "unclear" or not e.measure:
        return f"{e.role}: no single target" if e.role == "unclear" else e.role
    if e.role == "positional":
        return f"positional: {e.measure} for {percent(e.share)} of queries"
    finite = math.isfinite(e.low) and math.isfinite(e.high)
    if e.measure == "entropy":  # each measure under its own name: entropy is no share of attention
        interval = f" [{number(e.low)}, {number(e.high)}]" if finite else ""
        return f"{e.role}: entropy {number(e.share)}{interval} of its maximum"
    interval = f" [{percent(e.low)}, {percent(e.high)}]" if finite else ""
    lift = f", {times(e.lift)} uniform" if math.isfinite(e.lift) else ""
    what = "explains" if e.measure == "explained" else f"{e.measure}"
    return f"{e.role}: {what} {percent(e.share)}{interval}{lift}"


def _measured_number(check: NumberCheck, value: float) -> str:
    """A measured value in the written number's form: 13.8% for "14%", 13.2x for "13x"."""
    if check.number.kind == "lift":
        return f"{value:.1f}x"
    if check.number.kind == "share":
        return percent(value, 1)
    return number(value, 1 if check.metric == "distance" else 3)


def number_text(check: NumberCheck) -> str:
    """`“16%” vs word_start 14.0% [13.0%, 15.0%]: disagrees`, or why it is not checked."""
    written = check.number.text
    if check.agrees is None:
        return f"“{written}”: not checked ({check.reason})"
    interval = f" [{_measured_number(check, check.low)}, {_measured_number(check, check.high)}]"
    bound = f"{check.number.bound} " if check.number.bound else ""
    return (f"“{bound}{written}” vs {check.metric} {_measured_number(check, check.measured)}{interval}: "
            f"{'agrees' if check.agrees else 'disagrees'}")


def _evidence_cell(j: Judgement) -> str:
    parts = []
    if j.claimed_evidence is not None and j.claimed != j.measured:
        parts.append("claimed " + evidence_text(j.claimed_evidence))
    parts.append("measured " + evidence_text(j.measured_evidence))
    parts += [number_text(c) for c in j.numbers]
    return "; ".join(parts)


def _claimed_cell(claims: HeadClaims) -> str:
    primary = claims.primary
    text = _hedged(primary.role, primary) if primary else "none checkable"
    secondary = [_hedged(c.role, c) for c in claims.of_kind("secondary")]
    return text + (f" (also {', '.join(secondary)})" if secondary else "")


def _measured_cell(j: Judgement | None) -> str:
    if j is None:
        return "not measured"
    extra = f" (+{', '.join(j.secondary)})" if j.secondary else ""
    confidence = f", confidence {percent(j.confidence)}" if math.isfinite(j.confidence) else ""
    return f"{j.measured}{extra}{confidence}"


def _listed_text(h: HeadResult) -> list[str]:
    """Each summary-table kind of the head, its verdict, and where it disagrees with the head's row."""
    own = h.claims.claimed_primary
    return [f"summary line {item.line} lists it as {item.claimed or 'nothing checkable'} ({item.verdict.value})"
            + (f", its own row claims {own}" if item.claimed != own and h.description.line != item.line else "")
            for item in h.listed]


def _verdict_cell(h: HeadResult) -> str:
    also = [f"{role} {verdict.value}" for role, verdict in h.corpus.also]
    text = f"**{h.corpus.verdict.value}**"
    if h.prompt is not None and h.prompt.verdict != h.corpus.verdict:
        text += f" (prompt: {h.prompt.verdict.value})"
    return "; ".join([text + (f"; also-claims: {', '.join(also)}" if also else ""), *_listed_text(h)])


# A primary claim's sentence this short is a bare verdict ("Local:"): the table shows the cell's
# opening instead, cut at this many characters.
CLAIM_TEXT_CHARS = 160


def _claim_text(claims: HeadClaims) -> str:
    """The sentence holding the primary claim (the whole text when there is none); for a bare
    verdict such as "Local:", the cell's opening, which says what the author saw."""
    if claims.primary is None:
        return claims.text
    sentence = claims.primary.sentence
    if len(re.findall(r"[A-Za-z]+", sentence)) > 3:
        return sentence
    text = " ".join(claims.text.split())
    return text if len(text) <= CLAIM_TEXT_CHARS else text[: CLAIM_TEXT_CHARS - 1].rstrip() + "…"


def _label(h: HeadResult, n_layers: int) -> str:
    return head_label(h.description.layer, h.description.head, n_layers)


def render_validation(validation: Validation) -> str:
    """The Markdown report: a per-head table, scoped statements and notes, then the summary."""
    m = validation.measurements
    rows = [{
        "Head": _label(h, m.n_layers),
        "Primary claim (as written)": _claim_text(h.claims),
        "Claimed": _claimed_cell(h.claims),
        "Measured (corpus)": _measured_cell(h.corpus),
        "Measured (prompt)": _measured_cell(h.prompt),
        "Verdict": _verdict_cell(h),
        "Evidence": _evidence_cell(h.corpus),
    } for h in validation.heads]
    sides = [s for s in ("corpus", "prompt") if s in validation.summary]
    lines = [
        f"# Validation: {validation.source}",
        "",
        f"- Model: {m.model}, {m.n_layers} layer(s) x {m.n_heads} heads",
        f"- Corpus measurements: {m.source}",
        f"- Prompt: `{m.prompt_text}`" if m.prompt_text else "- Prompt: not measured",
        f"- Heads described: {len(validation.heads)}",
        "",
        "Each head is judged on its **primary claim** (the head-level statement, normally the first role "
        "named): **supported** when it is the measured primary role, **secondary** when the role's own "
        "test passes as a measured secondary role, **contradicted** otherwise, **not checkable** when no role "
        "could be read. Evidence is the share of attention a role explains and its lift over uniform "
        "attention. Every written number is compared with the metrics.csv column its own words name (a "
        "multiplier with that column's lift): it agrees when the interval its writing stands for (16% is "
        f"[15.5%, 16.5%]), widened by {percent(NUMBER_AGREEMENT.tolerance)} "
        f"({percent(NUMBER_AGREEMENT.hedged_tolerance)} when hedged), overlaps the measured 95% interval; "
        "a number whose metric its words do not name is not checked. Hedges (`~` roughly, `~~` very roughly, `?` unsure, weak) lower a claim's weight. "
        "Statements scoped to a kind of query (\"inside a word\", \"punctuation attends to itself\") "
        "are listed below the table, not judged as head-level claims.",
        "",
        "## Heads",
        "",
        markdown_table(pd.DataFrame(rows)),
        "",
    ]
    scoped = [(h, c) for h in validation.heads for c in h.claims.claims
              if c.kind in ("condition", "note", "uncheckable")]
    if scoped:
        lines += ["## Scoped statements, notes and claims no metric checks", ""]
        for h, c in scoped:
            what = {"condition": f"condition on {c.scope} queries → {c.role}", "note": "note",
                    "uncheckable": "not checkable"}[c.kind]
            lines.append(f"- {_label(h, m.n_layers)}: {what}: “{_hedged(c.phrase, c)}”"
                         + (" (not measured per kind of query)" if c.kind == "condition" else ""))
        lines.append("")
    if validation.skipped:
        lines += ["## Heads not checked", "", *[f"- Note: {note}" for note in validation.skipped], ""]
    lines += [
        "## Summary",
        "",
        "| Verdict | " + " | ".join(s.capitalize() for s in sides) + " |",
        "| --- | " + " | ".join("---" for _ in sides) + " |",
        *[f"| {v.value} | " + " | ".join(str(validation.summary[s]["counts"][v.value]) for s in sides) + " |"
          for v in VERDICTS],
        "",
    ]
    for side in sides:
        s = validation.summary[side]
        lines.append(
            f"- {side.capitalize()}: claimed primary role = measured primary role on {percent(s['agreement'])} "
            f"of {s['checkable']} heads with a checkable primary claim ({percent(s['weighted_agreement'])} "
            f"weighted by hedges); Cohen's kappa {number(s['kappa'])}."
        )
    flipped = [h for h in validation.heads if h.prompt and ORDER[h.prompt.verdict] > ORDER[h.corpus.verdict] > 0]
    if flipped:
        lines += ["", "Where the one-prompt impression does not hold over the corpus:", ""]
        lines += [
            f"- {_label(h, m.n_layers)}: {h.prompt.verdict.value} on the prompt (measured {h.prompt.measured}), "
            f"{h.corpus.verdict.value} over the corpus (measured {h.corpus.measured})"
            for h in flipped
        ]
    hedged = [h for h in validation.heads if h.claims.primary is not None and h.claims.weight < 1]
    if hedged:
        tally = pd.Series([h.corpus.verdict.value for h in hedged]).value_counts()
        tally = ", ".join(f"{v.value} {int(tally[v.value])}" for v in VERDICTS if v.value in tally)
        lines += ["", f"- Hedged primary claims (`~`, `~~`, `?`, weak): {len(hedged)} ({tally})."]
    return "\n".join(lines) + "\n"


def _plain(x):
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _evidence_json(e: Evidence | None) -> dict | None:
    if e is None:
        return None
    return {"role": e.role, "measure": e.measure, "share": _plain(e.share), "low": _plain(e.low),
            "high": _plain(e.high), "lift": _plain(e.lift), "text": evidence_text(e)}


def _judgement_json(j: Judgement) -> dict:
    return {
        "verdict": j.verdict.value, "measured_role": j.measured, "measured_secondary": list(j.secondary),
        "confidence": _plain(j.confidence),
        "evidence": {"claimed": _evidence_json(j.claimed_evidence), "measured": _evidence_json(j.measured_evidence),
                     "text": _evidence_cell(j)},
        "numbers": [{"written": c.number.text, "metric": c.metric or None, "measured": _plain(c.measured),
                     "low": _plain(c.low), "high": _plain(c.high), "agrees": c.agrees,
                     **({"bound": c.number.bound} if c.number.bound else {}),
                     **({"not_checked": c.reason} if c.agrees is None else {})} for c in j.numbers],
        "secondary_verdicts": {role: verdict.value for role, verdict in j.also},
    }


def validation_records(validation: Validation) -> list[dict]:
    """One JSON-ready object per described head."""
    records = []
    for h in validation.heads:
        claims = h.claims
        record = {
            "layer": h.description.layer, "head": h.description.head, "label": h.description.label,
            "line": h.description.line, "claim": _claim_text(claims), "description": h.description.text,
            "claimed_primary": claims.claimed_primary,
            "claimed_secondary": list(claims.claimed_secondary),
            "hedge": claims.primary.hedge if claims.primary else "", "weight": claims.weight,
            "conditions": [{"scope": c.scope, "role": c.role, "text": c.phrase, "sentence": c.sentence}
                           for c in claims.conditions],
            "notes": [c.phrase for c in claims.claims if c.kind in ("note", "uncheckable")],
            "listed": [{"line": item.line, "text": item.text, "claimed": item.claimed, "verdict": item.verdict.value,
                        "same_as_own_row": item.claimed == claims.claimed_primary} for item in h.listed],
            **_judgement_json(h.corpus),
            "prompt": _judgement_json(h.prompt) if h.prompt is not None else None,
        }
        records.append(record)
    return records


def render_json(validation: Validation) -> str:
    return json.dumps(validation_records(validation), indent=1, ensure_ascii=False, allow_nan=False) + "\n"
