"""What every recipe does with a model and trials: score them on all processes, refuse broken outputs."""

from __future__ import annotations

import numpy as np
from torch import nn

from antispoof.experiment import Run
from antispoof.protocols import ProtocolError, Trial
from antispoof.scoring import predict_logits
from antispoof.training.distributed import gather_scores, sharded_indices, unwrap_model
from models import ConfigError, WeightLoadError, build_model, load_weights


def build(model_config: dict, run: Run) -> nn.Module:
    """The model to train: built from ``model_config``, started from ``init_weights`` when the config names one."""
    try:
        model = build_model(model_config)
        if run.config.init_weights:
            load_weights(model, run.config.init_weights)
            run.log(f"starting from {run.config.init_weights}")
        model = model.to(run.device)
    except (ConfigError, WeightLoadError) as exc:
        raise SystemExit(f"error: {exc}") from None
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    run.log(f"model {model_config['architecture']}: {n_params:,} parameters ({n_train:,} trainable)")
    return model


def score_trials(model: nn.Module, trials: list[Trial], run: Run, desc: str) -> np.ndarray:
    """(N, classes) logits for ``trials`` in order; each process scores its share, then they are gathered.

    Non-finite outputs are an error naming the first such file: a score file never holds NaN.
    """
    indices = sharded_indices(len(trials), run.info.rank, run.info.world_size)
    local = predict_logits(
        unwrap_model(model),
        [trials[i].path for i in indices],
        **run.config.scoring_options,
        batch_size=run.config.scoring_batch_size,
        device=run.device,
        num_workers=run.config.num_workers,
        desc=desc,
        precision=run.precision,
        progress=run.is_main,
    )
    logits = gather_scores(indices, local, len(trials), run.info)
    bad = np.flatnonzero(~np.isfinite(logits).all(axis=1))
    if bad.size:
        raise ProtocolError(
            f"{trials[bad[0]].path}: the model produced NaN/inf for {bad.size} of {len(trials)} trials "
            f"({desc}; first this file): are the weights broken?"
        )
    return logits
