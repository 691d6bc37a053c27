"""The one scoring loop: ``main.py --eval``, training's validation and ``inference.py`` all score through here,
so a file gets the same score through any of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from antispoof.audio import NB_SAMP
from antispoof.data import ScoringDataset, collate_scoring
from antispoof.runtime import autocast_context
from models import ConfigError, WeightLoadError, build_model, load_weights


class ScoringSetupError(ValueError):
    """The model cannot be set up for scoring: no weights, a config or weight error."""


def load_scoring_model(model_config: dict, weights: str | None, device: torch.device) -> nn.Module:
    """Build the model of ``model_config``, load ``weights`` strictly, eval mode, on ``device``.

    Raises ``ScoringSetupError`` with a one-line message."""
    if not weights:
        raise ScoringSetupError(
            "no weights to score with: set model_path in the config or --eval_model_weights"
        )
    try:
        model = build_model(model_config)
        load_weights(model, weights)
    except (ConfigError, WeightLoadError) as exc:
        raise ScoringSetupError(str(exc)) from None
    return model.to(device).eval()


def load_model_for_scoring(model_config: dict, weights: str | None, device: torch.device) -> nn.Module:
    """``load_scoring_model`` for a CLI: a setup error is a one-line ``SystemExit``."""
    try:
        return load_scoring_model(model_config, weights, device)
    except ScoringSetupError as exc:
        raise SystemExit(f"error: {exc}") from None


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    paths: Sequence[str | os.PathLike],
    nb_samp: int = NB_SAMP,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
    skip_unreadable: bool = False,
    desc: str = "scoring",
    errors: list[tuple[int, str]] | None = None,
    precision: str = "fp32",
    progress: bool = True,
) -> np.ndarray:
    """Run ``model`` in eval mode over audio files: the (N, classes) logits, in file order.

    This is the one scoring loop of the project (``main.py`` and ``inference.py`` both use it). With
    ``skip_unreadable`` a file that cannot be read gets a row of NaN and its (index, message) is appended to
    ``errors``; without it, the first unreadable file raises ``AudioError``. ``precision`` "bf16" runs the model
    under autocast; the logits come back in float32 either way.
    """
    device = torch.device(device)
    model.eval()
    loader = DataLoader(
        ScoringDataset(paths, nb_samp, skip_unreadable=skip_unreadable),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_scoring,
        pin_memory=device.type == "cuda",
    )
    logits_out: np.ndarray | None = None
    for waves, indices, batch_errors in tqdm(
        loader, desc=desc, unit="batch", leave=False, dynamic_ncols=True
    ):
        if errors is not None:
            errors.extend(batch_errors)
        if waves is None:
            continue
        with autocast_context(device, precision):
            _, logits = model(waves.to(device, non_blocking=True))
        logits = logits.float().cpu().numpy()
        if logits_out is None:
            logits_out = np.full((len(paths), logits.shape[1]), np.nan, dtype=np.float32)
        logits_out[indices.numpy()] = logits
    return logits_out if logits_out is not None else np.full((len(paths), 2), np.nan, dtype=np.float32)


@dataclass
class FileScores:
    """The score (bona fide logit) of each file, NaN where it has none, and why it has none (index -> line)."""

    scores: np.ndarray
    problems: dict[int, str]  # unreadable files, and files with a non-finite score
    non_finite: list[int]  # readable files whose score came out NaN or infinite

    @property
    def model_broken(self) -> bool:
        """Every file the model saw gave a non-finite score: the weights, not the audio, are at fault (then the
        non-finite files are not in ``problems``: the caller says it once)."""
        readable = len(self.scores) - len(set(self.problems) - set(self.non_finite))
        return readable > 0 and len(self.non_finite) == readable


def score_files(
    model: nn.Module,
    paths: Sequence[str | os.PathLike],
    batch_size: int = 8,
    num_workers: int = 0,
    **loop_options,
) -> FileScores:
    """Score each file through ``predict_logits`` (``loop_options`` go to it); an unreadable file or a non-finite
    score is a problem line naming the file, and the other files are still scored.

    DataLoader workers are capped at the number of batches (none for one batch) and of usable cores: one file
    needs no worker process, and more workers than cores only slow a run down (and torch warns about it)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    batches = -(-len(paths) // batch_size)
    num_workers = max(0, min(num_workers, cores, batches if batches > 1 else 0))
    errors: list[tuple[int, str]] = []
    logits = predict_logits(
        model,
        paths,
        batch_size=batch_size,
        num_workers=num_workers,
        skip_unreadable=True,
        errors=errors,
        **loop_options,
    )
    scores = logits[:, 1]
    problems = dict(errors)
    non_finite = [i for i, score in enumerate(scores) if i not in problems and not np.isfinite(score)]
    result = FileScores(scores, problems, non_finite)
    if not result.model_broken:  # a broken model is one line for the caller, not one per file
        problems.update((i, f"{paths[i]}: the model's score is not finite ({scores[i]})") for i in non_finite)
    return result
