"""The one family of user-input errors.

An `InputError` is bad input (a missing file, an unknown model, a malformed table): the CLI
prints its message as one line and exits with status 2. Any other exception is a bug and keeps
its traceback. It subclasses ValueError so that library callers catching ValueError still work.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input; the message is one line naming the file, line or argument."""


def one_line(err: BaseException) -> str:
    """The first line of an error's message (its type name when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
