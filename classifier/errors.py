"""The one family of user-input errors, and the one kind of input notice.

An `InputError` is bad input (a missing file, an unknown model, a malformed table): the CLI
prints its message as one line and exits with status 2. Any other exception is a bug and keeps
its traceback. It subclasses ValueError so that library callers catching ValueError still work.

An `InputNotice` is a warning about input that works but not as the user may think (a file that
looks unsplit, fewer stories than asked, a fallback corpus). It is raised with `warnings.warn`
when the input is read, before any scoring, so the CLI can print it at once as one line and a
notebook shows it; the same text is kept in the run's `notices` (run.json, report header).
"""

from __future__ import annotations

import warnings


class InputError(ValueError):
    """Bad input; the message is one line naming the file, line or argument."""


class InputNotice(UserWarning):
    """Usable input with a catch; the message is one line, said before scoring."""


def notify(message: str) -> str:
    """Warn with an `InputNotice` (pointing at the caller's caller) and return the message."""
    warnings.warn(message, InputNotice, stacklevel=3)
    return message


def one_line(err: BaseException | str) -> str:
    """The first line of an error's message (or of a message). An error outside the ValueError
    family (a bug, a damaged file read by a library) keeps its type name in front, so that a
    one-line reason still says what kind of failure it was; with no message, the type name alone."""
    text = str(err).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(err, (str, ValueError)) and first:
        return first
    return f"{type(err).__name__}: {first}" if first else type(err).__name__
