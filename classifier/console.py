"""How much the tool says on stderr, set once per command by the CLI.

Defaults suit a script's log: our own progress bars only when stderr is a terminal; other
libraries' bars ("Loading weights", "Writing model shards"), their log lines and Python warnings
off unless `--verbose`; `--quiet` leaves only errors and the notices about the input
(`classifier.errors.InputNotice`), which are printed at once as one line each. A library caller
(notebook) who never calls `configure` keeps Python's and the libraries' own defaults.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

from classifier.errors import InputNotice

# Read by huggingface_hub / transformers / datasets when they are first imported; set only when
# the user has not set them.
QUIET_ENVIRONMENT = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
QUIET_LOGGERS = ("transformers", "transformer_lens", "datasets", "huggingface_hub", "torch", "kernels")

_progress = True  # whether our own progress bars may show (a library caller's default)
_verbose = False  # whether other libraries' log lines may show (--verbose)


def progress_allowed() -> bool:
    """Whether our own progress bars may show now."""
    return _progress


def print_notice(message, category, filename, lineno, file=None, line=None) -> None:
    """`warnings.showwarning` for the CLI: an input notice as one line, others (verbose) as usual."""
    if issubclass(category, InputNotice):
        print(f"Note: {message}", file=sys.stderr, flush=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def quiet_kernel_probe() -> None:
    """Before a transformers model class is imported: it probes the hub's flash-attention kernels,
    and offline the `kernels` package logs "Skipping publisher trust check ..." once per kernel.
    Nothing of ours, so not shown (for library callers too) unless --verbose."""
    import logging

    if not _verbose:
        logging.getLogger("kernels").setLevel(logging.ERROR)


def apply(*, quiet: bool = False, verbose: bool = False) -> None:
    """Set the verbosity (inside `configured`): call again when a later option changes it."""
    global _progress, _verbose
    import logging

    _progress = sys.stderr.isatty() and not quiet
    _verbose = verbose
    warnings.showwarning = print_notice
    warnings.resetwarnings()
    if not verbose:
        for key, value in QUIET_ENVIRONMENT.items():
            os.environ.setdefault(key, value)
        warnings.simplefilter("ignore")
    else:
        warnings.simplefilter("default")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.ERROR)
    warnings.filterwarnings("always", category=InputNotice)
    _library_bars(verbose)


def _library_bars(enabled: bool) -> None:
    """Other libraries' progress bars on or off, for those already imported (the environment
    variables above cover the ones imported later); importing one here would cost seconds."""
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        (transformers_logging.enable_progress_bar if enabled else transformers_logging.disable_progress_bar)()
    if "datasets" in sys.modules:
        from datasets.utils import logging as datasets_logging

        (datasets_logging.enable_progress_bar if enabled else datasets_logging.disable_progress_bar)()


@contextlib.contextmanager
def configured(*, quiet: bool = False, verbose: bool = False):
    """The CLI's verbosity for the duration of one command; everything is restored afterwards."""
    global _progress, _verbose
    import logging

    saved_progress, saved_verbose = _progress, _verbose
    saved_levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    with warnings.catch_warnings():
        apply(quiet=quiet, verbose=verbose)
        try:
            yield
        finally:
            _progress, _verbose = saved_progress, saved_verbose
            _library_bars(True)  # their own default
            for name, level in saved_levels.items():
                logging.getLogger(name).setLevel(level)
