"""Errors as one line: what the user sees when something outside the program is wrong."""

from __future__ import annotations

import contextlib
import os


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when the message is empty (for one-line errors
    about files that libraries reject with multi-line or empty messages)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def one_line_errors():
    """Turn the project's input errors (bad files, weights, checkpoints, configs) into ``SystemExit("error: ...")``
    so a CLI prints one line and exits 1; set ANTISPOOF_DEBUG=1 to see the traceback instead."""
    from antispoof.training.checkpoints import CheckpointError
    from models import WeightLoadError

    try:
        yield
    except (ValueError, WeightLoadError, CheckpointError, OSError) as exc:
        if os.environ.get("ANTISPOOF_DEBUG"):
            raise
        raise SystemExit(f"error: {exc}") from None
