"""Start-up and fixed cost (`python -m tools.bench`): the wall seconds of commands that score
nothing, and of a small report minus its measuring, against importing torch and transformer_lens.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tools.bench_setup import verdict


# Start-up cost: commands that score nothing, timed as users meet them (wall seconds of a fresh
# `python -m classifier.cli` process, the best of STARTUP_REPEATS). Target: under 1 s each.
STARTUP_TARGET_S = 1.0
STARTUP_REPEATS = 3


def wall_seconds(arguments: list[str], repeats: int = 1) -> tuple[float, int]:
    """Best wall time of `python -m classifier.cli ARGUMENTS` in fresh processes, and its exit status."""
    best, status = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "classifier.cli", *arguments], capture_output=True,
                              cwd=Path(__file__).resolve().parents[1])
        best, status = min(best, time.perf_counter() - start), done.returncode
    return best, status


def startup_costs(model_dir: Path, scratch: Path, corpus: str) -> None:
    """Print the start-up table: --help, models, a bad option, render, and a 20-story report."""
    run_dir = scratch / "startup-run"
    report_s, report_status = wall_seconds(
        ["report", "--model", str(model_dir), "--corpus", corpus, "--stories", "20", "--bootstrap", "1000",
         "--device", "cpu", "--out", str(run_dir)])
    cases = [
        ("head-roles --help", ["--help"], True),
        ("head-roles models", ["models"], True),
        ("head-roles report --bogus (bad option)", ["report", "--bogus"], True),
        ("head-roles report --stories -5 (bad value)", ["report", "--stories", "-5"], True),
        ("head-roles render RUN_DIR (20-story run)", ["render", str(run_dir), "--out", str(scratch / "rendered")], False),
    ]
    print(f"start-up, wall seconds of a fresh process (best of {STARTUP_REPEATS}):")
    for label, arguments, targeted in cases:
        seconds, status = wall_seconds(arguments, STARTUP_REPEATS)
        mark = f"  target < {STARTUP_TARGET_S:g} s  {verdict(seconds < STARTUP_TARGET_S)}" if targeted else ""
        print(f"  {label:<46} {seconds:6.2f} s  exit {status}{mark}")
    print(f"  {'head-roles report, 20 stories, 1L-21M shape':<46} {report_s:6.2f} s  exit {report_status}  (once)")
    sys.stdout.flush()


# Fixed cost of a report: a fresh `head-roles report` process's wall time minus the seconds it
# spends measuring (the forward passes and their reductions, which grow with stories and model:
# scoring, and head_importance's ablation, attribution and similarity), against a fresh process
# that only imports torch and transformer_lens, measured back to back (the import best of
# IMPORT_REPEATS: it varies by a second from run to run here). The floor beside it is what any
# report pays before its first forward pass: importing TransformerBridge, which imports
# transformers.modeling_utils (every Hugging Face model class needs it; `import transformer_lens`
# alone does not load it).
FIXED_COST_TARGET = 1.5
IMPORT_REPEATS = 3
FIXED_COST_REPORT = ["report", "--model", "stories260K", "--corpus", "tinystories-sample", "--stories", "16",
                     "--device", "cpu"]
BARE_IMPORT = "import torch, transformer_lens"
BRIDGE_IMPORT = BARE_IMPORT + "; from transformer_lens.model_bridge import TransformerBridge"
# What pipeline.analyse calls that measures, by kind: everything else in the process is the fixed cost.
MEASURING_FUNCTIONS = {"scoring": ("score_stories", "score_texts", "measure", "repeated_sequence_scores",
                                   "prompt_patterns"),
                       "importance": ("head_importance",)}
MEASURING_TIMER = """
import json, sys, time
import classifier.pipeline as pipeline
spent = {{kind: 0.0 for kind in {kinds!r}}}
def timed(function, kind):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[kind] += time.perf_counter() - start
    return wrapper
for kind, names in {kinds!r}.items():
    for name in names:
        setattr(pipeline, name, timed(getattr(pipeline, name), kind))
from classifier.cli import main
try:
    main(sys.argv[1:], prog_name="head-roles")
finally:
    print(json.dumps(spent))
"""


def import_seconds(statement: str, root: Path) -> float:
    """Best wall seconds of IMPORT_REPEATS fresh processes running `statement`."""
    best = float("inf")
    for _ in range(IMPORT_REPEATS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], capture_output=True, cwd=root, check=True)
        best = min(best, time.perf_counter() - start)
    return best


def fixed_cost(scratch: Path) -> dict:
    """Seconds of `import torch, transformer_lens` and of the TransformerBridge import in fresh
    processes, and of a fresh 16-story report of the embedded stories260K with its measuring seconds."""
    root = Path(__file__).resolve().parents[1]
    import_s = import_seconds(BARE_IMPORT, root)
    floor_s = import_seconds(BRIDGE_IMPORT, root)
    timer = MEASURING_TIMER.format(kinds=MEASURING_FUNCTIONS)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", timer, *FIXED_COST_REPORT, "--out", str(scratch / "fixed-cost")],
                          capture_output=True, text=True, cwd=root)
    report_s = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    spent = json.loads(lines[-1])
    fixed_s = report_s - sum(spent.values())
    return {"import_s": import_s, "floor_s": floor_s, "report_s": report_s, **spent, "fixed_s": fixed_s,
            "ratio": fixed_s / import_s}


def print_fixed_cost(scratch: Path) -> None:
    row = fixed_cost(scratch)
    if "error" in row:
        print(f"fixed cost of a report: failed ({row['error']})")
        return
    kinds = "; ".join(f"{kind} = {', '.join(names)}" for kind, names in MEASURING_FUNCTIONS.items())
    print(f"fixed cost of a report (head-roles {' '.join(FIXED_COST_REPORT)}, a fresh process; {kinds}):")
    print(f"  {BARE_IMPORT:<74} {row['import_s']:6.2f} s  (best of {IMPORT_REPEATS})")
    print(f"  {BRIDGE_IMPORT:<74} {row['floor_s']:6.2f} s  = {row['floor_s'] / row['import_s']:.2f}x, "
          "the floor of any report")
    print(f"  report {row['report_s']:6.2f} s: scoring {row['scoring']:5.2f} s, importance {row['importance']:5.2f} s, "
          f"fixed {row['fixed_s']:5.2f} s")
    print(f"  fixed / import = {row['ratio']:.2f}x  target <= {FIXED_COST_TARGET:g}x  "
          f"{verdict(row['ratio'] <= FIXED_COST_TARGET)}")
    sys.stdout.flush()


