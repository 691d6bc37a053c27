"""Shared test helpers: where ../shared lives and how to skip cleanly without it; scoring on several thread
counts."""

from pathlib import Path

import pytest
import torch
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


def logits_on_thread_counts(model: torch.nn.Module, waveforms: torch.Tensor, counts=(1, 2, 3)) -> list:
    """``model``'s logits for ``waveforms`` scored with each intra-op thread count (torch's count is restored)."""
    threads = torch.get_num_threads()
    logits = []
    try:
        for n in counts:
            torch.set_num_threads(n)
            with torch.inference_mode():
                logits.append(model(waveforms)[1])
    finally:
        torch.set_num_threads(threads)
    return logits
