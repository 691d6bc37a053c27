"""What every recipe does with a model and trials: score them on all processes, refuse broken outputs."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
from torch import nn

from antispoof.experiment import Run
from antispoof.fileio import atomic_open, write_text_atomically
from antispoof.protocols import ProtocolError, Trial
from antispoof.scoring import predict_logits
from antispoof.training.distributed import barrier, gather_scores, sharded_indices, unwrap_model
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
    local = _local_logits(model, [trials[i] for i in indices], run, desc)
    logits = gather_scores(indices, local, len(trials), run.info)
    _refuse_non_finite(logits, trials, desc)
    return logits


SHARD_MANIFEST = "manifest.json"


def _shard_path(shard_dir: Path, index: int) -> Path:
    return shard_dir / f"shard_{index:06d}.npy"


def _reset_stale_shards(shard_dir: Path, manifest: dict, run: Run) -> None:
    """Shards of other trials, another shard size or other weights are not this run's: remove them."""
    path = shard_dir / SHARD_MANIFEST
    if path.is_file() and json.loads(path.read_text()) == manifest:
        return
    stale = sorted(shard_dir.glob("shard_*.npy")) if shard_dir.is_dir() else []
    if stale:
        run.log(
            f"{shard_dir}: {len(stale)} shards of a different scoring (trials, weights or shard size) removed"
        )
    for shard in stale:
        shard.unlink()
    write_text_atomically(path, json.dumps(manifest, indent=2) + "\n")


def scoring_manifest(trials: list[Trial], shard_size: int, identity: dict) -> dict:
    """What shards must agree on to be reused: the trials (ids and paths, in order), the shard size, the crop
    length and the weights' identity."""
    digest = hashlib.sha256("\n".join(f"{t.utt_id}\t{t.path}" for t in trials).encode()).hexdigest()
    return {"n_trials": len(trials), "trials_sha256": digest, "shard_size": shard_size, **identity}


def score_trials_resumably(
    model: nn.Module, trials: list[Trial], run: Run, shard_dir: Path, desc: str, identity: dict
) -> np.ndarray:
    """(N, classes) logits for ``trials``, scored in shards of ``eval_shard_size`` written atomically under
    ``shard_dir``: shards already there (from an interrupted run of the same scoring) are not scored again.

    Shards are dealt round-robin to the processes (torchrun); each logs its progress and an ETA. All processes
    then read every shard, so the folder must be shared by them (one machine)."""
    size = run.config.eval_shard_size
    manifest = {**scoring_manifest(trials, size, identity), "nb_samp": run.config.nb_samp}
    if run.is_main:
        shard_dir.mkdir(parents=True, exist_ok=True)
        _reset_stale_shards(shard_dir, manifest, run)
    barrier(run.info)
    n_shards = -(-len(trials) // size)
    todo = [k for k in range(n_shards) if not _shard_path(shard_dir, k).is_file()]
    if len(todo) < n_shards:
        run.log(f"{desc}: {n_shards - len(todo)} of {n_shards} shards already scored: resuming")
    mine = todo[run.info.rank :: run.info.world_size]
    started = time.monotonic()
    for done, k in enumerate(mine, 1):
        part = trials[k * size : (k + 1) * size]
        logits = _checked_logits(model, part, run, f"{desc} shard {k + 1}/{n_shards}")
        with atomic_open(_shard_path(shard_dir, k), "wb") as handle:
            np.save(handle, logits)
        elapsed = time.monotonic() - started
        eta = elapsed / done * (len(mine) - done)
        run.log(f"{desc}: shard {k + 1}/{n_shards} done ({done}/{len(mine)} of this run, ETA {_clock(eta)})")
    barrier(run.info)
    return np.concatenate([np.load(_shard_path(shard_dir, k)) for k in range(n_shards)])


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _local_logits(model: nn.Module, trials: list[Trial], run: Run, desc: str) -> np.ndarray:
    """This process's logits of ``trials`` with the run's scoring (first crop, windows or full), batch and
    precision."""
    return predict_logits(
        unwrap_model(model),
        [t.path for t in trials],
        **run.config.scoring_options,
        batch_size=run.config.scoring_batch_size,
        device=run.device,
        num_workers=run.config.num_workers,
        parallel_batches=run.config.parallel_batches,
        desc=desc,
        precision=run.precision,
        progress=run.is_main,
    )


def _checked_logits(model: nn.Module, trials: list[Trial], run: Run, desc: str) -> np.ndarray:
    """The logits of ``trials`` on this process alone; non-finite outputs are an error naming the first file."""
    logits = _local_logits(model, trials, run, desc)
    _refuse_non_finite(logits, trials, desc)
    return logits


def _refuse_non_finite(logits: np.ndarray, trials: list[Trial], desc: str) -> None:
    bad = np.flatnonzero(~np.isfinite(logits).all(axis=1))
    if bad.size:
        raise ProtocolError(
            f"{trials[bad[0]].path}: the model produced NaN/inf for {bad.size} of {len(trials)} trials "
            f"({desc}; first this file): are the weights broken?"
        )
