"""The one scoring loop: ``main.py --eval``, training's validation and ``inference.py`` all score through here,
so a file gets the same score through any of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from antispoof.audio import NB_SAMP
from antispoof.data import ScoringDataset, collate_scoring
from antispoof.runtime import autocast_context
from models import ConfigError, WeightLoadError, build_model, load_weights


def load_model_for_scoring(model_config: dict, weights: str | None, device: torch.device) -> nn.Module:
    """Build the model of ``model_config``, load ``weights`` strictly, eval mode, on ``device``."""
    try:
        model = build_model(model_config)
        if not weights:
            raise SystemExit(
                "error: no weights to score with: set model_path in the config or --eval_model_weights"
            )
        load_weights(model, weights)
    except (ConfigError, WeightLoadError) as exc:
        raise SystemExit(f"error: {exc}") from None
    return model.to(device).eval()


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
