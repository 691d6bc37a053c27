"""Checks before a run starts: every audio file it will touch exists and opens (header read, not a full decode),
so a missing or corrupt file stops the run in seconds, never after hours of training."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from antispoof.errors import first_line

MAX_LISTED = 20


class PreflightError(ValueError):
    """Files a run needs are missing or unreadable; ``problems`` holds one line per file."""

    def __init__(self, summary: str, problems: list[str]):
        self.problems = problems
        listed = "\n".join(problems[:MAX_LISTED])
        more = f"\n... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        super().__init__(f"{summary}\n{listed}{more}")


def audio_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be used as audio (one line naming it), or None when its header reads fine."""
    path = Path(path)
    if not path.is_file():
        return f"{path}: missing" if not path.is_symlink() else f"{path}: broken link"
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError... by version
        return f"{path}: cannot read audio ({first_line(exc)})"
    if info.frames == 0:
        return f"{path}: empty audio (0 samples)"
    return None


def check_audio(sets: Mapping[str, Sequence], progress: bool = True, workers: int = 8) -> None:
    """Read the header of every trial's audio in ``sets`` ({what: trials}), in parallel threads, with a
    progress bar; raise :class:`PreflightError` listing every problem (``<what>: <path>: <reason>``)."""
    jobs = [(what, t.path) for what, trials in sets.items() for t in trials]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda job: audio_problem(job[1]), jobs, chunksize=256)
        problems = [
            f"{what}: {problem}"
            for (what, _), problem in zip(
                jobs,
                tqdm(
                    results,
                    total=len(jobs),
                    desc="checking audio",
                    unit="file",
                    leave=False,
                    disable=not progress,
                ),
            )
            if problem is not None
        ]
    if problems:
        counts = Counter(what for what, _ in jobs)
        bad = Counter(line.split(": ", 1)[0] for line in problems)
        summary = "; ".join(
            f"{what}: {n} of {counts[what]} audio files are missing or unreadable" for what, n in bad.items()
        )
        raise PreflightError(summary, problems)
