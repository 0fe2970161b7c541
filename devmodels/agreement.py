"""How often the classifier's primary role is one the hand labels accept, per development model.

For each `devmodels/labels/<model>.json` (the acceptable and forbidden primary roles of the
confidently described heads) this scores the model with `head-roles report` settings (or reads
a finished run directory) and writes `devmodels/agreement.md`: per model the agreement (primary
role acceptable), the forbidden roles given, and every labelled head with its measured role.

    python -m devmodels.agreement                 # both models, into devmodels/agreement.md
    python -m devmodels.agreement --runs reports/dev   # keep the run directories there too
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
LABELS_DIR = ROOT / "devmodels" / "labels"
CORPUS = ROOT / "corpora" / "tinystories-train-2316.txt"
# The development models have a 256-token context; 200 stories give tight intervals.
SETTINGS = {"stories": 200, "max_tokens": 256, "bootstrap": 200, "seed": 0, "device": "cpu"}


@dataclass(frozen=True)
class Agreement:
    """One model's labelled heads against the classifier's primary roles."""

    model: str
    n_layers: int
    heads: pd.DataFrame  # layer, head, role (measured), acceptable, forbidden, agrees, forbidden_given

    @property
    def agreed(self) -> int:
        return int(self.heads["agrees"].sum())

    @property
    def forbidden(self) -> int:
        return int(self.heads["forbidden_given"].sum())

    @property
    def share(self) -> float:
        return self.agreed / len(self.heads) if len(self.heads) else float("nan")


def read_labels(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def compare(labels: dict, roles: pd.DataFrame) -> Agreement:
    """Each labelled head's measured primary role against its acceptable and forbidden roles."""
    measured = roles.set_index(["layer", "head"])["role"]
    rows = []
    for entry in labels["heads"]:
        role = measured[(entry["layer"], entry["head"])]
        rows.append({
            "layer": entry["layer"], "head": entry["head"], "role": role,
            "acceptable": tuple(entry["acceptable"]), "forbidden": tuple(entry.get("forbidden", ())),
            "agrees": role in entry["acceptable"], "forbidden_given": role in entry.get("forbidden", ()),
        })
    return Agreement(labels["model"], labels["n_layers"], pd.DataFrame(rows))


def untrained(labels: dict, runs: Path | None) -> bool:
    """Whether the labelled model is neither trained here nor kept as a run under `runs` (a clone
    has no 1L model until `make devmodels` trains it into devmodels/build/)."""
    kept = runs is not None and (runs / labels["model"] / "run.json").is_file()
    return not kept and not (ROOT / labels["checkpoint"] / "training.json").is_file()  # written last


def score(labels: dict, runs: Path | None):
    """The model's Run: read from runs/<model> when it is there, else scored (and saved there)."""
    from classifier.pipeline import analyse_model
    from classifier.render.report import write_report
    from classifier.run import load_run
    from classifier.settings import ScoreSettings

    run_dir = runs / labels["model"] if runs is not None else None
    if run_dir is not None and (run_dir / "run.json").is_file():
        return load_run(run_dir)
    run = analyse_model(str(ROOT / labels["checkpoint"]), str(CORPUS), ScoreSettings(**SETTINGS))
    if run_dir is not None:
        write_report(run, run_dir, figures=False)
    return run


def render(agreements: list[Agreement], command: str) -> str:
    from classifier.formatting import head_label, markdown_table, percent

    lines = [
        "# Agreement with the development set's hand labels",
        "",
        f"Made by `{command}`: each model scored on {SETTINGS['stories']} stories of "
        f"`{CORPUS.relative_to(ROOT)}` (at most {SETTINGS['max_tokens']} tokens, "
        f"{SETTINGS['bootstrap']} bootstrap resamples); a head agrees when its primary role is one its "
        "hand label accepts (`devmodels/labels/<model>.json`, confidently described heads only).",
        "",
        markdown_table(pd.DataFrame([{
            "Model": a.model, "Labelled heads": len(a.heads), "Agree": a.agreed,
            "Agreement": percent(a.share), "Forbidden roles given": a.forbidden,
        } for a in agreements])),
    ]
    for a in agreements:
        lines += ["", f"## {a.model}", "", markdown_table(pd.DataFrame([{
            "Head": head_label(r.layer, r.head, a.n_layers), "Measured": r.role,
            "Acceptable": ", ".join(r.acceptable), "Forbidden": ", ".join(r.forbidden),
            "": "yes" if r.agrees else ("FORBIDDEN" if r.forbidden_given else "no"),
        } for r in a.heads.itertuples()]))]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Agreement of the classifier with the development labels.")
    parser.add_argument("--runs", type=Path, help="keep (and reuse) each model's run directory here")
    parser.add_argument("--out", type=Path, default=ROOT / "devmodels" / "agreement.md")
    args = parser.parse_args(argv)
    from classifier.outputs import write_file

    labelled = [read_labels(path) for path in sorted(LABELS_DIR.glob("*.json"))]
    missing = [labels["checkpoint"] for labels in labelled if untrained(labels, args.runs)]
    if missing:  # one line before any scoring, not a traceback from the loader
        raise SystemExit(f"{', '.join(missing)} is missing: train it first with `make devmodels` "
                         "(python -m devmodels.train; about 14 min on one idle core)")
    agreements = []
    for labels in labelled:
        agreements.append(compare(labels, score(labels, args.runs).roles))
        a = agreements[-1]
        print(f"{a.model}: {a.agreed}/{len(a.heads)} agree ({a.share:.0%}), {a.forbidden} forbidden")
    command = "python -m devmodels.agreement" + (f" --runs {args.runs}" if args.runs else "")
    write_file(args.out, render(agreements, command))
    print(args.out)


if __name__ == "__main__":
    main()
