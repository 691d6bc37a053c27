"""Errors as one line: what the user sees when something outside the program is wrong."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when the message is empty (for one-line errors
    about files that libraries reject with multi-line or empty messages)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
