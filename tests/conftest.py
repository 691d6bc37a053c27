"""Shared test helpers: where ../shared lives and how to skip cleanly without it."""

from pathlib import Path

import pytest
from local_server import server  # noqa: F401  (the local HTTP server fixture, shared by the download tests)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


def shared_path(*parts: str) -> Path:
    """Return a path under ../shared, skipping the calling test with a clear reason if it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: this test needs the project's read-only ../shared folder")
    return path


@pytest.fixture
def shared():
    return shared_path
