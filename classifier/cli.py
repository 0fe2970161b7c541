"""The `head-roles` command line: thin click commands, each parsing its options and calling one
library function (which checks its output location and input before it imports the heavy
libraries and loads a model; `--help`, `models`, option errors and `render` import none of them).

The group maps bad input (the `classifier.errors.InputError` family) to one line on stderr and
exit status 2, Ctrl-C to exit status 130; a command that finds what it was asked to look for
(a contradicted claim, a failed model) exits 1 through `ctx.exit(1)`. Any other exception is a
bug and keeps its traceback. Verbosity (progress bars, other libraries' output, warnings) is set
by `classifier.console`.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from classifier import console
from classifier.errors import InputError, one_line
from classifier.load.models import DEFAULT_MODEL
from classifier.outputs import check_output_dir, check_output_file
from classifier.settings import ScoreSettings, option_fields

MODEL_HELP = ("TransformerLens name or alias, Hugging Face id, local checkpoint directory, "
              "or llama2.c .bin file (with --tokenizer).")
CORPUS_HELP = ("tinystories (validation split, streamed; offline: tinystories-sample), bundled (written stories), "
               "tinystories-sample (300 real stories, embedded), or a .txt/.jsonl/.parquet file.")


class BadInput(click.ClickException):
    """User error: one line on stderr, exit status 2."""

    exit_code = 2


@contextlib.contextmanager
def user_errors():
    """Turn the library's input errors (the InputError family) into one-line exit-2 errors."""
    try:
        yield
    except InputError as err:
        raise BadInput(one_line(err)) from None


@contextlib.contextmanager
def one_line_usage_errors():
    """click's usage errors (unknown option, bad value) as one line too, naming the help to read."""
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:
        raise
    except click.UsageError as err:
        command = err.ctx.command_path.replace(err.ctx.find_root().info_name or "", "head-roles", 1) if err.ctx else "head-roles"
        raise BadInput(f"{one_line(err.format_message())} (see `{command} --help`)") from None


class HeadRolesGroup(click.Group):
    """Runs every command with the CLI's verbosity and the one-line rule for input errors."""

    def make_context(self, *args, **kwargs):
        with one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        try:
            with console.configured(), user_errors(), one_line_usage_errors():
                return super().invoke(ctx)
        except KeyboardInterrupt:  # 128 + SIGINT, as shells report it; not click's "Aborted!" and 1
            click.echo("Interrupted.", err=True)
            raise click.exceptions.Exit(130) from None


def _set_verbosity(ctx, param, value):
    if value:
        flags = ctx.find_root().meta.setdefault("head_roles.verbosity", {})
        flags[param.name] = True
        console.apply(**flags)
    return value


def verbosity_options(function):
    """--quiet and --verbose, accepted on the group and on every command."""
    function = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_set_verbosity,
                            help="Only errors and notices about the input (no progress bars).")(function)
    return click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_set_verbosity,
                        help="Also other libraries' progress bars, log lines and warnings.")(function)


def force_option(function):
    return click.option("--force", is_flag=True,
                        help="Replace files in the output folder that have an output's name but were not "
                        "written by head-roles (by default the command refuses and changes nothing).")(function)


def settings_options(function, omit: tuple[str, ...] = ()):
    """One option per `ScoreSettings` field (help from the field), named after the field; none
    for the fields in `omit`."""
    for spec in reversed([spec for spec in option_fields() if spec.name not in omit]):
        function = click.option(f"--{spec.name.replace('_', '-')}", spec.name, type=type(spec.default),
                                default=spec.default, show_default=True, help=spec.metadata["help"])(function)
    return function


def tokenizer_option(function):
    return click.option("--tokenizer", "tokenizer", default=None, type=click.Path(exists=True, dir_okay=False),
                        help="Tokenizer file for a llama2.c .bin checkpoint (e.g. tok512.model).")(function)


def corpus_option(function):
    return click.option("--corpus", default="tinystories", show_default=True, help=CORPUS_HELP)(function)


def scoring_options(function, omit: tuple[str, ...] = ()):
    """Options shared by every command that scores one model: the corpus, the settings (but
    `omit`), the model's revision and tokenizer."""
    function = tokenizer_option(function)
    function = click.option("--revision", default=None, help="Hugging Face revision (branch, tag or commit).")(function)
    return corpus_option(settings_options(function, omit))


def validate_scoring_options(function):
    """scoring_options without --ablation-stories: validate checks what heads attend to, not
    whether they matter, so it measures no importance."""
    return scoring_options(function, omit=("ablation_stories",))


def make_settings(stories, max_tokens, seed, batch_size, bootstrap, device, ablation_stories) -> ScoreSettings:
    """The settings options as `ScoreSettings` (a bad value is an InputError: exit 2)."""
    return ScoreSettings(stories=stories, max_tokens=max_tokens, seed=seed, batch_size=batch_size,
                         bootstrap=bootstrap, device=device, ablation_stories=ablation_stories)


@click.group(cls=HeadRolesGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="head-roles")
@verbosity_options
def main():
    """Classify the attention heads of small language models by measured role.

    Runs a checkpoint over TinyStories stories, measures per-head attention metrics
    (current-token, previous-token, delimiter, clause-start, start-of-text, ...), and
    labels each head with a role and a confidence.
    """


@main.command()
@click.option("--model", default=None,
              help="TransformerLens name or alias, Hugging Face id, local checkpoint directory, or llama2.c .bin "
              f"[default: {DEFAULT_MODEL}; when it is neither cached nor reachable, the embedded stories260K].")
@scoring_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Run directory to write [default: reports/<model name>]. Other files there are kept.")
@click.option("--no-figures", is_flag=True, help="Skip the PNG figures.")
@force_option
@verbosity_options
def report(model, corpus, stories, max_tokens, seed, batch_size, bootstrap, device, ablation_stories, revision, tokenizer, out_dir, no_figures,
           force):
    """Score a checkpoint and write its role table.

    Writes DIR/report.md, DIR/metrics.csv (one row per head), DIR/roles.json,
    DIR/run.json and figures. Files of yours in DIR are left as they are.

    Without --model it reports TinyStories-1Layer-21M, or, where that is neither cached nor
    reachable, the stories260K model embedded in the package (on the embedded TinyStories
    sample), and says so on stderr. An explicit --model never falls back.

    Example:

    \b
        head-roles report --model tiny-stories-1L-21M --stories 500 --out reports/1L
        head-roles report --model path/to/checkpoint --corpus stories.txt --stories 200
        head-roles report --model stories260K --corpus tinystories-sample
    """
    from classifier.render.report import invocation
    from classifier.reporting import report as write

    written = write(model, corpus, make_settings(stories, max_tokens, seed, batch_size, bootstrap, device, ablation_stories),
                    revision=revision, tokenizer=tokenizer, out_dir=out_dir, figures=not no_figures, force=force,
                    command=invocation())
    counts = written.run.roles["role"].value_counts()
    click.echo(f"{written.out_dir / 'report.md'}: {', '.join(f'{role} {n}' for role, n in counts.items())}")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where to write [default: RUN_DIR itself].")
@click.option("--no-figures", is_flag=True, help="Skip the PNG figures.")
@force_option
@verbosity_options
def render(run_dir, out_dir, no_figures, force):
    """Render a finished run directory again, without the model.

    Reads the run's data files (run.json, metrics.csv, roles.json, ...) and writes report.md
    and the figures from them.

    Example:

    \b
        head-roles render reports/stories260K
    """
    from classifier.run import REPORT_OUTPUTS

    if out_dir is not None:
        check_output_dir(out_dir, outputs=REPORT_OUTPUTS, force=force)
    else:
        check_output_dir(run_dir)
    from classifier.render.report import render_run

    written = render_run(run_dir, out_dir, figures=not no_figures, force=force)
    click.echo(f"{Path(written) / 'report.md'}")


@main.command()
@verbosity_options
def models():
    """List the checkpoints known by name.

    Any Hugging Face id, local checkpoint directory or llama2.c .bin file works too.

    Example:

    \b
        head-roles models
    """
    from classifier.load.models import embedded_models, known_models

    embedded = embedded_models()
    for name, aliases in known_models().items():
        click.echo(name + (f"  (alias: {', '.join(aliases)})" if aliases else "")
                   + ("  (embedded in the package: no download)" if name in embedded else ""))


@main.command()
@click.option("--seeds", type=int, default=5, show_default=True, help="Calibration seeds per layout (0..N-1).")
@click.option("--stories", type=int, default=60, show_default=True, help="Bundled stories to score each model on.")
@click.option("--bootstrap", type=int, default=100, show_default=True, help="Bootstrap resamples per model.")
@click.option("--baselines", is_flag=True,
              help="Also print seed 0's heads as the ARENA-style rules and TransformerLens' detect_head see them.")
@verbosity_options
def selfcheck(seeds, stories, bootstrap, baselines):
    """Check that planted head roles are recovered.

    Builds calibration models (hand-set GPT-Neo weights, roles known by construction) for each
    seed and layout (one-layer and two-layer sharp heads; soft: graded strengths and two-role
    mixtures, as trained heads are), labels them on the bundled stories, and prints per-role
    precision and recall, recovery per strength band and the noise heads given a role. Exits 1
    if any planted head is missed or any noise head is given a role.

    Example:

    \b
        head-roles selfcheck --seeds 5
    """
    from classifier.calibrate.selfcheck import selfcheck_report

    checked = selfcheck_report(seeds, stories=stories, bootstrap=bootstrap, baselines=baselines)
    click.echo(checked.text)
    if checked.misses:
        click.echo(checked.misses, err=True)
        click.get_current_context().exit(1)


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="reports/demo", show_default=True,
              help="Run directory to write. Other files there are kept.")
@click.option("--layout", type=click.Choice(["one-layer", "two-layer"]), default="one-layer", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Calibration seed (which head gets which role).")
@click.option("--stories", type=int, default=0, show_default=True, help="Bundled stories to score (0: all).")
@force_option
@verbosity_options
def demo(out_dir, layout, seed, stories, force):
    """Write a report offline, from a calibration model.

    Builds a checkpoint whose head roles are planted by construction, scores it on the bundled
    stories, and writes the usual report plus a planted-versus-measured table.

    Example:

    \b
        head-roles demo --out reports/demo
    """
    from classifier.calibrate.demo import write_demo
    from classifier.render.report import invocation

    demo = write_demo(out_dir, layout=layout, seed=seed, stories=stories, force=force, command=invocation())
    click.echo(f"{demo.out_dir / 'report.md'}: {demo.recovered} of {demo.planted} planted roles recovered")


# --- validate command ---
@main.command()
@click.argument("descriptions", type=click.Path(exists=True, dir_okay=False))
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Run directory written by `head-roles report` (instead of running a model).")
@click.option("--model", default=None, help="Run this model instead of reading --run: " + MODEL_HELP)
@validate_scoring_options
@click.option("--prompt", default=None,
              help="Prompt the table was written from [default: the run's prompt, or the banana prompt].")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Write the Markdown here instead of stdout.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), default=None,
              help="Also write one JSON object per head (claims, verdict, measured role, evidence) here.")
@click.option("--strict", is_flag=True, help="Exit 1 when any head is contradicted over the corpus.")
@verbosity_options
def validate(descriptions, run_dir, model, corpus, stories, max_tokens, seed, batch_size, bootstrap, device,
             revision, tokenizer, prompt, out_file, json_file, strict):
    """Check researchers' notes on heads against measured roles.

    Reads what DESCRIPTIONS says about heads: tables whose rows are heads (3, 0.3, L0H3, a
    Layer and a Head column; with or without a header), summary tables that list heads per
    kind, bullet lists and `Head N:` / `L1H5:` paragraphs (anything else is skipped with one
    Note). Says head by head whether the primary claim is supported, only a secondary role,
    contradicted or not checkable, with the share of attention and lift behind it, over the
    corpus and on the prompt, and checks every written number (14%, 13x, entropy 0.42) against
    the metric its words name.

    Example:

    \b
        head-roles validate notes.md --run reports/1L
        head-roles validate notes.md --run reports/1L --json verdicts.json
        head-roles validate notes.md --model tiny-stories-1L-21M --stories 200 --strict
    """
    from classifier.validate.check import validate_notes
    from classifier.validate.report import render_validation

    settings = None if model is None else make_settings(stories, max_tokens, seed, batch_size, bootstrap, device,
                                                        ablation_stories=0)
    result = validate_notes(descriptions, run_dir=run_dir, model=model, revision=revision, tokenizer=tokenizer,
                            corpus=corpus, settings=settings, prompt=prompt,
                            out=out_file, json_file=json_file)
    if out_file:
        counts = result.summary["corpus"]["counts"]
        click.echo(f"{out_file}: " + ", ".join(f"{v} {n}" for v, n in counts.items() if n))
    else:
        click.echo(render_validation(result), nl=False)
    if strict and result.any_contradicted:
        click.get_current_context().exit(1)


# --- end validate command ---

# --- track command ---
@main.command()
@click.argument("models", nargs=-1, required=True)
@corpus_option
@settings_options
@tokenizer_option
@click.option("--compare", type=click.Choice(["consecutive", "reference"]), default="consecutive", show_default=True,
              help="Compare each checkpoint with the one before it, or with the first.")
@click.option("--jobs", type=int, default=1, show_default=True,
              help="Models scored at once, in separate processes (each holds its own model: memory grows with N).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Score each model as a Ray task (needs head-roles[ray]): on a new local Ray instance, or the "
                   "cluster at ADDRESS (`auto`: the one `ray start` runs here). See docs/sweeps.md.")
@click.option("--store", "store", type=click.Path(file_okay=False), default=None,
              help="Finished runs, reused when model, stories, settings and code are unchanged "
              "[default: OUT/runs].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="reports/track", show_default=True,
              help="Where track.md, track.csv, track.html and the figures go. Other files there are kept.")
@click.option("--figures", is_flag=True, help="Also draw each run's own PNG figures in the store.")
@click.option("--no-figures", is_flag=True, help="Skip the track's PNG figures.")
@force_option
@verbosity_options
def track(models, corpus, stories, max_tokens, seed, batch_size, bootstrap, device, ablation_stories, tokenizer, compare, jobs,
          ray_address, store, out_dir, figures, no_figures, force):
    """Compare head roles across checkpoints scored on the same stories.

    MODELS are TransformerLens names, Hugging Face ids (NAME@REVISION picks a revision),
    local checkpoint directories, llama2.c .bin files, or folders of training checkpoints
    (step-N or checkpoint-N subfolders, taken in step order). Checkpoints of one run are
    followed head by head; different models are matched by metric profile. Writes
    OUT/track.md (when each head's role settles, roles over steps, role counts, grids,
    matched heads), OUT/track.csv (one row per model, step and head), OUT/track.html (a page
    to step through the checkpoints) and, per training run, OUT/roles-RUN.png and
    OUT/headline-RUN.png. Finished runs are kept in --store and
    reused. A model that fails is listed under Failed and the exit status is 1; the others
    still complete.

    Example:

    \b
        head-roles track runs/my-model/checkpoints --corpus stories.txt --stories 200 --jobs 2
        head-roles track tiny-stories-1L-21M tiny-stories-instruct-1L-21M --stories 200
        head-roles track runs/*/checkpoints --stories 200 --ray auto
    """
    from classifier.render.report import invocation
    from classifier.track.report import track_and_write

    tracking = track_and_write(
        models, corpus, make_settings(stories, max_tokens, seed, batch_size, bootstrap, device, ablation_stories), out_dir=out_dir,
        store=store, compare=compare, tokenizer=tokenizer, jobs=jobs, run_figures=figures, figures=not no_figures, force=force,
        command=invocation(), log=lambda message: click.echo(message, err=True), ray=ray_address,
    )
    click.echo(f"{Path(out_dir) / 'track.md'}: {len(tracking.succeeded)} model(s) compared"
               + (f", {len(tracking.failed)} failed" if tracking.failed else ""))
    if tracking.failed:
        click.get_current_context().exit(1)


# --- end track command ---


if __name__ == "__main__":
    sys.exit(main())
