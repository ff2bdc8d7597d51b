"""The one error type a user sees: `UserError` is printed as one line (never a traceback)
and exits non-zero; `error_text` turns any exception into that line."""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input: reported as one line, exit status 2."""


def error_text(e: Exception) -> str:
    """The one line shown for a UserError, or for an OSError (its reason and file)."""
    if isinstance(e, OSError):
        return f"{e.strerror or e}: {e.filename or ''}".rstrip(": ")
    return str(e)
