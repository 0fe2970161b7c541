"""Check hand-written head descriptions against measured roles: the library side of `validate`.

Three steps, each a function: `read_descriptions` finds the `| Head | Description |` tables of a
Markdown file; `extract_claims` (in `classifier.claims`, re-exported here) turns one description
into claims (a phrase lexicon first, TF-IDF similarity to per-role glossaries as the fallback);
`judge` compares the claims with the roles measured over a corpus and on the one prompt the table
was written from. `render_validation` writes the Markdown. This module does not run models
itself: `measure_model` calls the pipeline.

Every input error is a `ValidateError` whose message is one line, "FILE:LINE: what is wrong".
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from classifier.claims import (  # the claim names are re-exported: callers import them from here
    GENERIC_WORDS, GLOSSARY, LEXICON, NOTE, QUOTED_WORD, SECONDARY, UNCHECKABLE, UNSURE, Claim, ClaimKind,
    ClaimMatcher, default_matcher, extract_claims,
)
from classifier.errors import InputError
from classifier.roles import HEADLINE_METRIC
from classifier.scoring import OFFSETS
from classifier.thresholds import DEFAULT_THRESHOLDS

SUPPORTED, PARTLY, CONTRADICTED, NOT_CHECKABLE = "supported", "partly supported", "contradicted", "not checkable"
VERDICTS = (SUPPORTED, PARTLY, CONTRADICTED, NOT_CHECKABLE)
# A claimed role that did not pass still counts as "partly supported" when the head clearly leans
# that way: its headline metric at least PARTLY_LIFT x uniform attention AND at least PARTLY_SHARE
# of attention (lift alone is cheap where uniform is tiny: 2 x 1% is no role). `broad` and
# `positional` have no lift; they lean at these fractions of their role thresholds.
PARTLY_LIFT = 2.0
PARTLY_SHARE = 0.1
PARTLY_ENTROPY = 0.75 * DEFAULT_THRESHOLDS.broad_entropy
PARTLY_ARGMAX = 0.5


class ValidateError(InputError):
    """Bad descriptions input; the message is one line, "FILE:LINE: message"."""


# --- reading tables ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadDescription:
    """One row of a hand-written table. `layer` is None for a bare index ("3", "Head 3")."""

    label: str  # the head id as written
    layer: int | None
    head: int
    text: str  # the description as written, hedges included
    line: int
    source: str


HEAD_ID_FORMS = (  # (pattern, has a layer); matched on the cell stripped of ** and backticks
    (r"(?:head\s*|h)?(\d+)", False),
    (r"l(?:ayer)?\s*(\d+)\s*[.:,/_-]?\s*h(?:ead)?\s*(\d+)", True),
    (r"(\d+)\s*[.:]\s*(\d+)", True),
)
DESCRIPTION_COLUMNS = {"description", "descriptions", "role", "behaviour", "behavior", "what it does"}


def _cells(line: str) -> list[str]:
    """Cells of a Markdown table row; `\\|` is a literal bar."""
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", body)]


def _plain(cell: str) -> str:
    return re.sub(r"[*_`]", "", cell).strip().lower()


def parse_head_id(label: str) -> tuple[int | None, int] | None:
    """(layer or None, head) from `3`, `Head 3`, `L0H3`, `0.3`, `0:3`, `L0.H3`; None if unreadable."""
    plain = re.sub(r"[*`]", "", label).strip().lower()
    for pattern, has_layer in HEAD_ID_FORMS:
        found = re.fullmatch(pattern, plain)
        if found:
            numbers = [int(g) for g in found.groups()]
            return (numbers[0], numbers[1]) if has_layer else (None, numbers[0])
    return None


def parse_descriptions(text: str, *, source: str = "<text>") -> list[HeadDescription]:
    """Every row of every `| Head | Description |` table in `text` (fenced code is skipped)."""
    lines = text.splitlines()
    rows: list[HeadDescription] = []
    seen: dict[tuple[int | None, int], int] = {}
    fenced = False
    k = 0
    while k < len(lines):
        line = lines[k]
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        header = [_plain(c) for c in _cells(line)] if line.lstrip().startswith("|") and not fenced else []
        rule = lines[k + 1] if k + 1 < len(lines) else ""
        is_rule = bool(re.fullmatch(r"\s*\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*\|?\s*", rule))
        if not ("head" in header and DESCRIPTION_COLUMNS & set(header) and is_rule):
            k += 1
            continue
        head_col = header.index("head")
        text_col = next(i for i, name in enumerate(header) if name in DESCRIPTION_COLUMNS)
        k += 2
        while k < len(lines) and lines[k].lstrip().startswith("|"):
            rows.append(_table_row(lines[k], k + 1, head_col, text_col, source, seen))
            k += 1
    if not rows:
        raise ValidateError(f"{source}:1: no `| Head | Description |` table found")
    return rows


def _table_row(line: str, number: int, head_col: int, text_col: int, source: str, seen: dict) -> HeadDescription:
    cells = _cells(line)
    label = cells[head_col] if head_col < len(cells) else ""
    parsed = parse_head_id(label)
    if parsed is None:
        raise ValidateError(f"{source}:{number}: cannot read head id {label!r} (write 3, Head 3, L0H3, 0.3 or 0:3)")
    description = cells[text_col] if text_col < len(cells) else ""
    if not re.search(r"\w", description):
        raise ValidateError(f"{source}:{number}: head {label} has an empty description")
    if parsed in seen:
        raise ValidateError(f"{source}:{number}: head {label} is described twice (first at line {seen[parsed]})")
    seen[parsed] = number
    return HeadDescription(label=label, layer=parsed[0], head=parsed[1], text=description, line=number, source=source)


def read_descriptions(path: str | Path) -> list[HeadDescription]:
    """`parse_descriptions` of a file; a binary or non-UTF-8 file is a ValidateError."""
    path = Path(path)
    data = path.read_bytes()
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise ValidateError(f"{path}:{line}: not a text file (binary data)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ValidateError(f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x})") from None
    return parse_descriptions(text, source=str(path))


def resolve_heads(descriptions: list[HeadDescription], n_layers: int, n_heads: int) -> list[HeadDescription]:
    """Give every head its layer and check it exists; a bare index needs a one-layer model."""
    resolved, seen = [], {}
    for d in descriptions:
        where = f"{d.source}:{d.line}"
        if d.layer is None and n_layers != 1:
            raise ValidateError(
                f"{where}: head {d.label!r} is ambiguous for a {n_layers}-layer model (write L0H{d.head} or 0.{d.head})"
            )
        layer = 0 if d.layer is None else d.layer
        if not (0 <= layer < n_layers and 0 <= d.head < n_heads):
            raise ValidateError(
                f"{where}: head {d.label} is out of range: the model has {n_layers} layer(s) x {n_heads} heads"
            )
        if (layer, d.head) in seen:
            raise ValidateError(f"{where}: head {d.label} is described twice (first at line {seen[(layer, d.head)]})")
        seen[(layer, d.head)] = d.line
        resolved.append(HeadDescription(d.label, layer, d.head, d.text, d.line, d.source))
    return resolved


# --- measurements --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """One side of the measurements (the corpus, or the prompt alone), indexed by (layer, head)."""

    metrics: pd.DataFrame  # as metrics.csv
    roles: pd.DataFrame  # role, secondary (tuple), confidence


@dataclass(frozen=True)
class Measurements:
    """What the descriptions are judged against."""

    model: str
    n_layers: int
    n_heads: int
    corpus: Measured
    prompt: Measured | None
    prompt_text: str | None
    source: str  # where the numbers come from, for the report header


def _measured(metrics: pd.DataFrame, roles: pd.DataFrame) -> Measured:
    roles = roles.assign(secondary=[tuple(s) for s in roles["secondary"]])
    index = ["layer", "head"]
    return Measured(metrics.set_index(index, drop=False), roles.set_index(index, drop=False))


def _read_side(path: Path, metrics_name: str, roles_name: str, n_layers: int, n_heads: int) -> Measured:
    """metrics.csv + roles.json (or the prompt-* pair), checked to cover every head."""
    try:
        roles = pd.DataFrame(json.loads((path / roles_name).read_text()))
    except json.JSONDecodeError as err:
        raise ValidateError(f"{path / roles_name}:{err.lineno}: broken JSON ({err.msg})") from None
    side = _measured(pd.read_csv(path / metrics_name), roles)
    for name, frame in ((metrics_name, side.metrics), (roles_name, side.roles)):
        missing = pd.MultiIndex.from_product([range(n_layers), range(n_heads)]).difference(frame.index)
        if len(missing):
            layer, head = missing[0]
            raise ValidateError(f"{path / name}: no row for head L{layer}H{head} ({len(missing)} heads missing)")
    return side


def load_measurements(path: str | Path) -> Measurements:
    """A run directory written by `head-roles report`; the prompt files are optional."""
    from classifier.run import load_run

    run = load_run(path)
    path = Path(path)
    model, corpus = {"name": run.model.name}, run.corpus
    n_layers, n_heads = run.model.n_layers, run.model.n_heads
    has_prompt = (path / "prompt-metrics.csv").is_file() and (path / "prompt-roles.json").is_file()
    sample = f" ({corpus.get('name')}, {corpus.get('stories')} stories)" if corpus else ""
    return Measurements(
        model=model.get("name", str(path)), n_layers=n_layers, n_heads=n_heads,
        corpus=_read_side(path, "metrics.csv", "roles.json", n_layers, n_heads),
        prompt=_read_side(path, "prompt-metrics.csv", "prompt-roles.json", n_layers, n_heads) if has_prompt else None,
        prompt_text=run.prompt.text if has_prompt else None,
        source=f"run directory `{path}`{sample}",
    )


def measurements_from_analysis(analysis) -> Measurements:
    """Measurements of a `classifier.run.Run`."""
    return Measurements(
        model=analysis.model.name, n_layers=analysis.model.n_layers, n_heads=analysis.model.n_heads,
        corpus=_measured(analysis.metrics, analysis.roles),
        prompt=_measured(analysis.prompt_metrics, analysis.prompt_roles),
        prompt_text=analysis.prompt.text,
        source=f"{analysis.corpus.get('name')} ({analysis.corpus.get('stories')} stories, {analysis.n_tokens:,} tokens)",
    )


def measure_model(model: str, corpus: str, settings, *, prompt: str, revision: str | None = None,
                  tokenizer: str | None = None, progress: bool = True) -> Measurements:
    """Run `model` over `corpus` and `prompt` (as `report` does) and return the measurements."""
    from classifier.corpora import load_corpus
    from classifier.models import load_model
    from classifier.pipeline import analyse

    loaded = load_model(model, revision=revision, device=settings.device, tokenizer_path=tokenizer)
    sample = load_corpus(corpus, stories=settings.stories, seed=settings.seed)
    return measurements_from_analysis(analyse(loaded, sample, settings, prompt=prompt, progress=progress))


# --- verdicts ------------------------------------------------------------------------------------


def headline(role: str, metrics: pd.Series) -> str:
    """The numbers behind a role, e.g. "previous 0.81 [0.79, 0.83], 24x uniform"."""
    if role == "positional":
        shares = {o: metrics.get(f"argmax_offset_{o}", np.nan) for o in OFFSETS[2:]}
        offset = max(shares, key=lambda o: np.nan_to_num(shares[o]))
        share = shares[offset]
        return f"argmax at offset {offset} for {'n/a' if not np.isfinite(share) else f'{100 * share:.0f}%'} of queries"
    if role == "broad":
        return f"entropy {_with_interval('entropy', metrics)}, max weight {_number(metrics['max_weight'])}"
    if role == "unclear":
        return "no role passes"
    metric = HEADLINE_METRIC[role]
    lift = metrics.get(f"{metric}_lift", np.nan)
    lift_text = "" if not np.isfinite(lift) else f", {lift:.0f}x uniform" if lift >= 10 else f", {lift:.1f}x uniform"
    return f"{metric} {_with_interval(metric, metrics)}{lift_text}"


def _number(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.2f}"


def _with_interval(metric: str, metrics: pd.Series) -> str:
    low, high = metrics.get(f"{metric}_lo", np.nan), metrics.get(f"{metric}_hi", np.nan)
    interval = f" [{_number(low)}, {_number(high)}]" if np.isfinite(low) and np.isfinite(high) else ""
    return _number(metrics[metric]) + interval


def leans(role: str, metrics: pd.Series) -> bool:
    """Whether a head clearly leans towards `role` without passing it (see PARTLY_*)."""
    if role == "positional":
        return max(np.nan_to_num(metrics.get(f"argmax_offset_{o}", 0.0)) for o in OFFSETS[2:]) >= PARTLY_ARGMAX
    if role == "broad":
        return np.nan_to_num(metrics["entropy"]) >= PARTLY_ENTROPY
    metric = HEADLINE_METRIC[role]
    share, lift = np.nan_to_num(metrics[metric]), np.nan_to_num(metrics[f"{metric}_lift"])
    return bool(share >= PARTLY_SHARE and lift >= PARTLY_LIFT)


def judge_claim(role: str, metrics: pd.Series, roles: pd.Series) -> str:
    """supported: the measured primary role; partly: a measured secondary role, or leaning."""
    if role == roles["role"]:
        return SUPPORTED
    if role in roles["secondary"] or leans(role, metrics):
        return PARTLY
    return CONTRADICTED


def combine(main: list[str], others: list[str]) -> str:
    """A head's verdict from its main claims' verdicts and its secondary claims' verdicts.

    supported: a main claim is the measured primary role and no claim is contradicted;
    contradicted: every claim is; partly supported: anything between. Without main claims the
    secondary claims decide alone.
    """
    if not main:
        main, others = others, []
    if not main:
        return NOT_CHECKABLE
    if SUPPORTED in main and CONTRADICTED not in main + others:
        return SUPPORTED
    if all(v == CONTRADICTED for v in main + others):
        return CONTRADICTED
    return PARTLY


@dataclass(frozen=True)
class Judgement:
    """One head judged on one side (corpus or prompt)."""

    verdict: str
    measured: str  # measured primary role
    secondary: tuple[str, ...]
    confidence: float
    claimed: str | None  # claimed primary role (for agreement statistics)
    claims: tuple[tuple[str, str, str], ...]  # (role, verdict, numbers) per checkable claim
    measured_numbers: str


def judge_head(claims: tuple[Claim, ...], layer: int, head: int, side: Measured) -> Judgement:
    metrics, roles = side.metrics.loc[(layer, head)], side.roles.loc[(layer, head)]
    checkable = [c for c in claims if c.kind in ("main", "secondary")]
    judged = [(c.role, judge_claim(c.role, metrics, roles), headline(c.role, metrics)) for c in checkable]
    main = [v for c, (_, v, _) in zip(checkable, judged) if c.kind == "main"]
    others = [v for c, (_, v, _) in zip(checkable, judged) if c.kind != "main"]
    listed = [c.role for c in checkable if c.kind == "main"] or [c.role for c in checkable]
    # A list of targets ("BOS, commas, full stops") agrees when any listed target is the primary.
    claimed = roles["role"] if roles["role"] in listed else (listed[0] if listed else None)
    return Judgement(
        verdict=combine(main, others), measured=roles["role"], secondary=tuple(roles["secondary"]),
        # null in roles.json (no bootstrap resamples, as on the prompt) reads as unknown
        confidence=np.nan if roles.get("confidence") is None else float(roles["confidence"]),
        claimed=claimed, claims=tuple(judged),
        measured_numbers=headline(roles["role"], metrics),
    )


@dataclass(frozen=True)
class HeadResult:
    description: HeadDescription
    claims: tuple[Claim, ...]
    corpus: Judgement
    prompt: Judgement | None


@dataclass(frozen=True)
class Validation:
    """Every described head judged, and the agreement statistics."""

    source: str
    measurements: Measurements
    heads: tuple[HeadResult, ...]
    summary: dict = field(default_factory=dict)

    @property
    def any_contradicted(self) -> bool:
        return any(h.corpus.verdict == CONTRADICTED for h in self.heads)

    def frame(self) -> pd.DataFrame:
        """One row per described head (tidy): ids, claimed and measured roles, verdicts."""
        return pd.DataFrame([{
            "layer": h.description.layer, "head": h.description.head, "label": h.description.label,
            "description": h.description.text, "claimed": h.corpus.claimed,
            "corpus_role": h.corpus.measured, "corpus_verdict": h.corpus.verdict,
            "prompt_role": h.prompt.measured if h.prompt else None,
            "prompt_verdict": h.prompt.verdict if h.prompt else None,
        } for h in self.heads])


def agreement(judgements: list[Judgement]) -> dict:
    """Counts per verdict; over heads with a checkable claim, the share whose claimed primary
    role is the measured one and Cohen's kappa between the two (NaN with fewer than 2 heads)."""
    from sklearn.metrics import cohen_kappa_score

    counts = {v: sum(j.verdict == v for j in judgements) for v in VERDICTS}
    pairs = [(j.claimed, j.measured) for j in judgements if j.claimed is not None]
    rate = float(np.mean([a == b for a, b in pairs])) if pairs else float("nan")
    kappa = float("nan")
    if len(pairs) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kappa = float(cohen_kappa_score([a for a, _ in pairs], [b for _, b in pairs]))
    return {"counts": counts, "checkable": len(pairs), "agreement": rate, "kappa": kappa}


def judge(descriptions: list[HeadDescription], measurements: Measurements, *,
          matcher: ClaimMatcher | None = None) -> Validation:
    """Judge every description on the corpus and on the prompt."""
    resolved = resolve_heads(descriptions, measurements.n_layers, measurements.n_heads)
    heads = []
    for d in resolved:
        claims = extract_claims(d.text, matcher)
        prompt = measurements.prompt
        heads.append(HeadResult(
            d, claims, judge_head(claims, d.layer, d.head, measurements.corpus),
            judge_head(claims, d.layer, d.head, prompt) if prompt is not None else None,
        ))
    summary = {"corpus": agreement([h.corpus for h in heads])}
    if measurements.prompt is not None:
        summary["prompt"] = agreement([h.prompt for h in heads])
    source = descriptions[0].source if descriptions else "<text>"
    return Validation(source=source, measurements=measurements, heads=tuple(heads), summary=summary)


def validate(path: str | Path, measurements: Measurements, *, matcher: ClaimMatcher | None = None) -> Validation:
    """Read a descriptions file and judge it."""
    return judge(read_descriptions(path), measurements, matcher=matcher)


# --- rendering -----------------------------------------------------------------------------------

ORDER = {SUPPORTED: 3, PARTLY: 2, CONTRADICTED: 1, NOT_CHECKABLE: 0}


def _hedged(text: str, hedge: str) -> str:
    """`~~clause-start?`: the roughly-marks in front, the question mark behind, as written."""
    return f"{hedge.replace('?', '')}{text}{'?' if '?' in hedge else ''}"


def _claims_cell(claims: tuple[Claim, ...]) -> str:
    parts = []
    labels = {"main": "", "secondary": "secondary: ", "uncheckable": "not checkable: ", "note": "note: "}
    for kind, label in labels.items():
        chosen = [c for c in claims if c.kind == kind]
        if chosen and kind in ("main", "secondary"):
            parts.append(label + ", ".join(_hedged(c.role, c.hedge) for c in chosen))
        elif chosen:
            parts.append(label + "; ".join(_hedged(f"“{c.phrase}”", c.hedge) for c in chosen))
    return "; ".join(parts)


def _phrases_cell(claims: tuple[Claim, ...]) -> str:
    shown = []
    for c in claims:
        if c.role is None:
            continue
        if c.source == "tf-idf":
            shown.append(f"≈“{c.phrase}” (tf-idf {c.similarity:.2f}) → {c.role}")
        else:
            shown.append(f"“{c.phrase}” → {c.role}")
    return "; ".join(shown) or "none"


def _measured_cell(j: Judgement | None) -> str:
    if j is None:
        return "not measured"
    extra = f" (+{', '.join(j.secondary)})" if j.secondary else ""
    confidence = f", confidence {100 * j.confidence:.0f}%" if np.isfinite(j.confidence) else ""
    return f"{j.measured}{extra}{confidence}"


def _evidence_cell(j: Judgement) -> str:
    parts = [f"{role}: {verdict} ({numbers})" for role, verdict, numbers in j.claims]
    if j.measured not in [role for role, _, _ in j.claims]:
        parts.append(f"measured {j.measured}: {j.measured_numbers}")
    return "; ".join(parts)


def _verdict_cell(h: HeadResult) -> str:
    if h.prompt is None or h.prompt.verdict == h.corpus.verdict:
        return f"**{h.corpus.verdict}**"
    return f"**{h.corpus.verdict}** (prompt: {h.prompt.verdict})"


def _format(x: float, percent: bool = False) -> str:
    if not np.isfinite(x):
        return "n/a"
    return f"{100 * x:.0f}%" if percent else f"{x:.2f}"


def render_validation(validation: Validation) -> str:
    """The Markdown report: a per-head table, then the summary."""
    from classifier.report import head_label, markdown_table

    m = validation.measurements
    rows = [{
        "Head": head_label(h.description.layer, h.description.head, m.n_layers),
        "Claim (as written)": h.description.text,
        "Claimed roles": _claims_cell(h.claims),
        "Matched phrase": _phrases_cell(h.claims),
        "Corpus: measured": _measured_cell(h.corpus),
        "Prompt: measured": _measured_cell(h.prompt),
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
        "A claimed role is **supported** when it is the head's measured primary role, **partly supported** "
        f"when it is a measured secondary role or its headline metric is at least {PARTLY_LIFT:g}x uniform and "
        f"{PARTLY_SHARE:g} of attention, and **contradicted** otherwise. A head is supported when a main claim "
        "is its primary role and no claim is contradicted, contradicted when every claim is. Hedges "
        "(`~` roughly, `~~` very roughly, `?` unsure) are kept on the claims. Notes about single tokens are "
        "shown, not judged.",
        "",
        "## Heads",
        "",
        markdown_table(pd.DataFrame(rows)),
        "",
        "## Summary",
        "",
        "| Verdict | " + " | ".join(s.capitalize() for s in sides) + " |",
        "| --- | " + " | ".join("---" for _ in sides) + " |",
        *[f"| {v} | " + " | ".join(str(validation.summary[s]["counts"][v]) for s in sides) + " |" for v in VERDICTS],
        "",
    ]
    for side in sides:
        s = validation.summary[side]
        lines.append(
            f"- {side.capitalize()}: claimed primary role = measured primary role on "
            f"{_format(s['agreement'], percent=True)} of {s['checkable']} heads with a checkable claim; "
            f"Cohen's kappa {_format(s['kappa'])}."
        )
    flipped = [h for h in validation.heads if h.prompt and ORDER[h.prompt.verdict] > ORDER[h.corpus.verdict] > 0]
    if flipped:
        lines += ["", "Where the one-prompt impression does not hold over the corpus:", ""]
        lines += [
            f"- {head_label(h.description.layer, h.description.head, m.n_layers)}: {h.prompt.verdict} on the prompt "
            f"(measured {h.prompt.measured}), {h.corpus.verdict} over the corpus (measured {h.corpus.measured})"
            for h in flipped
        ]
    hedged = [h for h in validation.heads if any(c.hedge for c in h.claims)]
    if hedged:
        tally = pd.Series([h.corpus.verdict for h in hedged]).value_counts().reindex(VERDICTS).dropna()
        tally = ", ".join(f"{v} {int(n)}" for v, n in tally.items())
        lines += ["", f"- Hedged heads (`~`, `~~`, `?`): {len(hedged)} ({tally})."]
    return "\n".join(lines) + "\n"


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write `text` to a temporary sibling of `path`, then rename it into place."""
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return path
