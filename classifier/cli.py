"""The `head-roles` command line: thin click commands over the library functions."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path

import click

from classifier.settings import TRAINED_CONTEXT, ScoreSettings

DEFAULT_MODEL = "roneneldan/TinyStories-1Layer-21M"


class BadInput(click.ClickException):
    """User error: one line on stderr, exit status 2."""

    exit_code = 2


@contextlib.contextmanager
def user_errors():
    """Turn the library's input errors (ValueError and its kin) into one-line exit-2 errors."""
    try:
        yield
    except ValueError as err:
        raise BadInput(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__) from None


def scoring_options(function):
    """Options shared by every command that scores a model."""
    options = [
        click.option("--corpus", default="tinystories", show_default=True,
                     help="tinystories (validation split, streamed), bundled, or a .txt/.jsonl/.parquet file."),
        click.option("--stories", type=int, default=500, show_default=True, help="Stories to sample (0: all)."),
        click.option("--max-tokens", type=int, default=TRAINED_CONTEXT, show_default=True,
                     help="Longest sequence scored, BOS included (capped by the model's context)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Picks the stories; drives the bootstrap."),
        click.option("--batch-size", type=int, default=16, show_default=True, help="Stories per forward pass."),
        click.option("--bootstrap", type=int, default=1000, show_default=True, help="Bootstrap resamples over stories."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--revision", default=None, help="Hugging Face revision (branch, tag or commit)."),
        click.option("--tokenizer", "tokenizer", default=None, type=click.Path(exists=True, dir_okay=False),
                     help="Tokenizer file for a llama2.c .bin checkpoint (e.g. tok512.model)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def make_settings(stories, max_tokens, seed, batch_size, bootstrap, device) -> ScoreSettings:
    with user_errors():
        return ScoreSettings(
            stories=None if stories == 0 else stories, max_tokens=max_tokens, seed=seed,
            batch_size=batch_size, bootstrap=bootstrap, device=device,
        )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="head-roles")
def main():
    """Classify the attention heads of small language models by measured role.

    Runs a checkpoint over TinyStories stories, measures per-head attention metrics
    (current-token, previous-token, delimiter, clause-start, start-of-text, ...), and
    labels each head with a role and a confidence.
    """


@main.command()
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="TransformerLens name or alias, Hugging Face id, local checkpoint directory, or llama2.c .bin.")
@scoring_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Run directory to write [default: reports/<model name>].")
@click.option("--no-figures", is_flag=True, help="Skip the PNG figures.")
def report(model, corpus, stories, max_tokens, seed, batch_size, bootstrap, device, revision, tokenizer, out_dir, no_figures):
    """Score a checkpoint and write its role table.

    Writes DIR/report.md, DIR/metrics.csv (one row per head), DIR/roles.json,
    DIR/run.json and figures.

    Example:

        head-roles report --model tiny-stories-1L-21M --stories 500 --out reports/1L

        head-roles report --model path/to/checkpoint --corpus stories.txt --stories 200
    """
    from classifier.pipeline import analyse_model
    from classifier.report import invocation, write_report

    settings = make_settings(stories, max_tokens, seed, batch_size, bootstrap, device)
    out_dir = Path(out_dir) if out_dir else Path("reports") / Path(model.rstrip("/")).name
    with user_errors():
        run = analyse_model(model, corpus, settings, revision=revision, tokenizer=tokenizer, command=invocation())
    for notice in run.notices:
        click.echo(notice, err=True)
    write_report(run, out_dir, figures=not no_figures)
    counts = run.roles["role"].value_counts()
    click.echo(f"{out_dir}/report.md: {', '.join(f'{role} {n}' for role, n in counts.items())}")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where to write [default: RUN_DIR itself].")
@click.option("--no-figures", is_flag=True, help="Skip the PNG figures.")
def render(run_dir, out_dir, no_figures):
    """Render a finished run directory again, without the model.

    Reads the run's data files (run.json, metrics.csv, roles.json, ...) and writes report.md
    and the figures from them.

    Example:

        head-roles render reports/stories260K
    """
    from classifier.report import render_run

    with user_errors():
        written = render_run(run_dir, out_dir, figures=not no_figures)
    click.echo(f"{written}/report.md")


@main.command()
def models():
    """List the checkpoints known by name.

    Any Hugging Face id or local checkpoint directory works too.

    Example:

        head-roles models
    """
    from classifier.models import known_models

    for name, aliases in known_models().items():
        click.echo(name + (f"  (alias: {', '.join(aliases)})" if aliases else ""))


@main.command()
@click.option("--seeds", type=int, default=5, show_default=True, help="Calibration seeds per layout (0..N-1).")
@click.option("--stories", type=int, default=60, show_default=True, help="Bundled stories to score each model on.")
@click.option("--bootstrap", type=int, default=100, show_default=True, help="Bootstrap resamples per model.")
@click.option("--baselines", is_flag=True,
              help="Also print seed 0's heads as the ARENA-style rules and TransformerLens' detect_head see them.")
def selfcheck(seeds, stories, bootstrap, baselines):
    """Check that planted head roles are recovered.

    Builds calibration models (hand-set GPT-Neo weights, roles known by construction) for each
    seed and layout, labels them on the bundled stories, and prints per-role precision and
    recall. Exits 1 if any planted head is missed or any noise head is given a role.

    Example:

        head-roles selfcheck --seeds 5
    """
    from classifier.report import markdown_table
    from classifier.selfcheck import run_selfcheck

    if seeds < 1:
        raise BadInput(f"--seeds must be at least 1, got {seeds}")
    with user_errors():
        result = run_selfcheck(range(seeds), stories=stories, bootstrap=bootstrap)
    per_role = result.per_role.assign(
        precision=result.per_role["precision"].map("{:.2f}".format),
        recall=result.per_role["recall"].map("{:.2f}".format),
    )
    click.echo(markdown_table(per_role))
    misses = result.misses
    click.echo(f"\n{len(result.heads) - len(misses)} of {len(result.heads)} heads recovered "
               f"over {seeds} seed(s) x {result.heads['layout'].nunique()} layouts.")
    if baselines:
        from classifier.selfcheck import compare_baselines

        click.echo("\nSeed 0, head by head (detected: mean score > 0.4 over 20 bundled stories):\n")
        click.echo(markdown_table(compare_baselines(seed=0, bootstrap=bootstrap)))
    if len(misses):
        click.echo(markdown_table(misses), err=True)
        sys.exit(1)


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="reports/demo", show_default=True,
              help="Run directory to write.")
@click.option("--layout", type=click.Choice(["one-layer", "two-layer"]), default="one-layer", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Calibration seed (which head gets which role).")
@click.option("--stories", type=int, default=0, show_default=True, help="Bundled stories to score (0: all).")
def demo(out_dir, layout, seed, stories):
    """Write a report offline, from a calibration model.

    Builds a checkpoint whose head roles are planted by construction, scores it on the bundled
    stories, and writes the usual report plus a planted-versus-measured table.

    Example:

        head-roles demo --out reports/demo
    """
    import tempfile

    from classifier.calibration import build_calibration_model
    from classifier.pipeline import analyse_model
    from classifier.report import invocation, write_report
    from classifier.run import ModelInfo
    from classifier.selfcheck import demo_section

    settings = make_settings(stories, TRAINED_CONTEXT, 0, 16, 1000, "cpu")
    with tempfile.TemporaryDirectory(prefix="head-roles-demo-") as scratch:
        model_dir = Path(scratch) / f"calibration-{layout}-seed{seed}"
        truth = build_calibration_model(model_dir, layout=layout, seed=seed)
        with user_errors():
            run = analyse_model(str(model_dir), "bundled", settings, command=invocation())
        # The checkpoint lives in a scratch directory: name it by how it was built instead.
        name = f"calibration model ({layout}, seed {seed})"
        run = dataclasses.replace(run, model=dataclasses.replace(run.model, name=name, resolved=name))
        section = demo_section(run, truth)
        write_report(dataclasses.replace(run, appendix=section), out_dir)
    recovered = section.count("| yes |")
    click.echo(f"{out_dir}/report.md: {recovered} of {len(truth.heads)} planted roles recovered")


# --- validate command ---
@main.command()
@click.argument("descriptions", type=click.Path(exists=True, dir_okay=False))
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Run directory written by `head-roles report` (instead of running a model).")
@click.option("--model", default=None,
              help="Run this model instead of reading --run: name, alias, Hugging Face id or local directory.")
@scoring_options
@click.option("--prompt", default=None,
              help="Prompt the table was written from [default: the run's prompt, or the banana prompt].")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Write the Markdown here instead of stdout.")
@click.option("--strict", is_flag=True, help="Exit 1 when any head is contradicted over the corpus.")
def validate(descriptions, run_dir, model, corpus, stories, max_tokens, seed, batch_size, bootstrap, device,
             revision, tokenizer, prompt, out_file, strict):
    """Check a hand-written | Head | Description | table against measured roles.

    Says head by head whether the measurements support each claim, over the corpus and on the
    one prompt the table was written from, with agreement and Cohen's kappa.

    Example:

        head-roles validate notes.md --run reports/1L

        head-roles validate notes.md --model tiny-stories-1L-21M --stories 200 --strict
    """
    from classifier import validate as library
    from classifier.corpora import BANANA_PROMPT

    if (run_dir is None) == (model is None):
        raise BadInput("pass exactly one of --run DIR or --model M")
    with user_errors():
        rows = library.read_descriptions(descriptions)
        if run_dir is not None:
            measured = library.load_measurements(run_dir)
            if prompt is not None and prompt != measured.prompt_text:
                raise ValueError(f"--prompt: {run_dir} has no measurements on this prompt; pass --model to measure it")
        else:
            settings = make_settings(stories, max_tokens, seed, batch_size, bootstrap, device)
            measured = library.measure_model(model, corpus, settings, prompt=prompt or BANANA_PROMPT,
                                             revision=revision, tokenizer=tokenizer)
        result = library.judge(rows, measured)
    text = library.render_validation(result)
    if out_file:
        library.write_text_atomic(text, out_file)
        counts = result.summary["corpus"]["counts"]
        click.echo(f"{out_file}: " + ", ".join(f"{v} {n}" for v, n in counts.items() if n))
    else:
        click.echo(text, nl=False)
    if strict and result.any_contradicted:
        click.get_current_context().exit(1)


# --- end validate command ---

# --- track command ---
@main.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--corpus", default="tinystories", show_default=True,
              help="tinystories (validation split, streamed), bundled, or a .txt/.jsonl/.parquet file.")
@click.option("--stories", type=int, default=500, show_default=True, help="Stories to sample (0: all).")
@click.option("--max-tokens", type=int, default=TRAINED_CONTEXT, show_default=True,
              help="Longest sequence scored, BOS included (capped by each model's context).")
@click.option("--seed", type=int, default=0, show_default=True, help="Picks the stories; drives the bootstrap.")
@click.option("--batch-size", type=int, default=16, show_default=True, help="Stories per forward pass.")
@click.option("--bootstrap", type=int, default=1000, show_default=True, help="Bootstrap resamples over stories.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--tokenizer", "tokenizer", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Tokenizer file for llama2.c .bin checkpoints (e.g. tok512.model).")
@click.option("--compare", type=click.Choice(["consecutive", "reference"]), default="consecutive", show_default=True,
              help="Compare each checkpoint with the one before it, or with the first.")
@click.option("--jobs", type=int, default=1, show_default=True,
              help="Models scored at once, in separate processes (each holds its own model: memory grows with N).")
@click.option("--store", "store", type=click.Path(file_okay=False), default="reports/track/runs", show_default=True,
              help="Finished runs, reused when model, stories, settings and code are unchanged.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="reports/track", show_default=True,
              help="Where track.md, track.csv and the figures go.")
@click.option("--figures", is_flag=True, help="Also draw each run's own PNG figures in the store.")
@click.option("--no-figures", is_flag=True, help="Skip the track's PNG figures.")
def track(models, corpus, stories, max_tokens, seed, batch_size, bootstrap, device, tokenizer, compare, jobs,
          store, out_dir, figures, no_figures):
    """Compare head roles across checkpoints scored on the same stories.

    MODELS are TransformerLens names, Hugging Face ids (NAME@REVISION picks a revision),
    local checkpoint directories, llama2.c .bin files, or folders of training checkpoints
    (step-N or checkpoint-N subfolders, taken in step order). Checkpoints of one run are
    followed head by head; different models are matched by metric profile. Writes
    OUT/track.md (when each head's role settles, roles over steps, role counts, grids,
    matched heads), OUT/track.csv (one row per model, step and head) and, per training
    run, OUT/roles-RUN.png and OUT/headline-RUN.png. Finished runs are kept in --store and
    reused. A model that fails is listed under Failed and the exit status is 1; the others
    still complete.

    Example:

    \b
        head-roles track runs/my-model/checkpoints --corpus stories.txt --stories 200 --jobs 2
        head-roles track tiny-stories-1L-21M tiny-stories-instruct-1L-21M --stories 200
    """
    from classifier.outputs import check_output_dir
    from classifier.report import invocation
    from classifier.track import track as run_track
    from classifier.track_report import write_track

    settings = make_settings(stories, max_tokens, seed, batch_size, bootstrap, device)
    with user_errors():
        check_output_dir(out_dir)
        tracking = run_track(
            models, corpus, settings, store=store, compare=compare, tokenizer=tokenizer, figures=figures,
            jobs=jobs, log=lambda message: click.echo(message, err=True),
        )
    with user_errors():
        write_track(tracking, out_dir, command=invocation(), figures=not no_figures)
    click.echo(f"{Path(out_dir) / 'track.md'}: {len(tracking.succeeded)} model(s) compared"
               + (f", {len(tracking.failed)} failed" if tracking.failed else ""))
    if tracking.failed:
        click.get_current_context().exit(1)


# --- end track command ---


if __name__ == "__main__":
    sys.exit(main())
