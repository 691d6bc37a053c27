"""Robust checkpoints: atomic saves, the newest loadable one on resume (a truncated file falls back to the one
before), per-epoch files with pruning, and the random generators' state so that a resumed run repeats exactly."""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from antispoof.errors import first_line
from antispoof.fileio import atomic_open
from models import WeightLoadError, safe_load


class CheckpointError(RuntimeError):
    """No usable checkpoint although some exist."""


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform; the rename itself is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint_atomically(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace``: a reader (or a run
    killed at any moment) sees either the old complete file or the new complete file, never a partial one."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    _fsync_folder(path.parent)
    return path


def load_latest_good_checkpoint(
    paths_newest_first: Iterable[str | os.PathLike], map_location: str | torch.device = "cpu"
) -> tuple[Path, object] | None:
    """The first of ``paths_newest_first`` that loads with ``models.safe_load`` (``torch.load(weights_only=True)``),
    as (path, object).

    A truncated or corrupt file is skipped with a warning naming it, and the previous one is tried. Missing
    files are skipped silently. None when no file exists; ``CheckpointError`` when files exist but none loads.
    """
    bad: list[str] = []
    for path in map(Path, paths_newest_first):
        if not path.is_file():
            continue
        try:
            obj = safe_load(path, map_location, what="checkpoint")
        except WeightLoadError as exc:  # truncated zip, bad pickle, disallowed globals ...
            reason = first_line(exc.__cause__ or exc)
            warnings.warn(f"{path}: unreadable checkpoint ({reason}); trying the previous one", stacklevel=2)
            bad.append(f"{path} ({reason})")
            continue
        return path, obj
    if bad:
        raise CheckpointError("no usable checkpoint: " + "; ".join(bad))
    return None


def epoch_checkpoint_path(folder: str | os.PathLike, epoch: int, stem: str = "state") -> Path:
    """``folder/<stem>_epochNNN.pth``: one file per completed epoch, so an older one is there to fall back on."""
    return Path(folder) / f"{stem}_epoch{epoch:03d}.pth"


def epoch_checkpoints_newest_first(folder: str | os.PathLike, stem: str = "state") -> list[Path]:
    """Every ``<stem>_epochNNN.pth`` in ``folder``, highest epoch first."""
    found = []
    for path in Path(folder).glob(f"{stem}_epoch*.pth"):
        number = path.stem[len(stem) + len("_epoch") :]
        if number.isdigit():
            found.append((int(number), path))
    return [p for _, p in sorted(found, reverse=True)]


def prune_epoch_checkpoints(
    folder: str | os.PathLike, keep: int, stem: str = "state", protect: Iterable[str | os.PathLike] = ()
) -> list[Path]:
    """Delete all but the ``keep`` newest ``<stem>_epochNNN.pth`` (and any in ``protect``); returns the removed."""
    protected = {Path(p).resolve() for p in protect}
    removed = []
    for path in epoch_checkpoints_newest_first(folder, stem)[max(keep, 0) :]:
        if path.resolve() not in protected:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def capture_rng_state() -> dict:
    """Python, NumPy (global), torch CPU and CUDA generator states, in a form ``weights_only=True`` loads."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {
            "version": py_version,
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss": py_gauss,
        },
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping) -> None:
    """Undo ``capture_rng_state``; CUDA states are restored when present and the device count matches."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["name"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            warnings.warn(
                f"checkpoint holds {len(cuda)} CUDA generator states, this machine has {torch.cuda.device_count()} "
                "GPUs: CUDA random streams are not restored",
                stacklevel=2,
            )


class CheckpointManager:
    """The files of ``<experiment>/weights/``, written by rank 0 only:

    - ``best.pth``: the selected weights (best validation value so far);
    - ``weights_epochNNN.pth``: each epoch's weights, kept while averaging may need them (else the newest only);
    - ``state_epochNNN.pth``: everything needed to resume (model, optimiser, scheduler, scaler, early stopping,
      history, RNG states, SWA average); the newest two are kept, so a truncated newest falls back to the other.
    """

    def __init__(self, folder: str | os.PathLike, is_main: bool = True):
        self.folder = Path(folder)
        self.is_main = is_main

    @property
    def best_path(self) -> Path:
        return self.folder / "best.pth"

    def weights_path(self, epoch: int) -> Path:
        return epoch_checkpoint_path(self.folder, epoch, "weights")

    def existing(self) -> list[Path]:
        """Every checkpoint file a run left here (resume states, epoch weights, best and averaged weights)."""
        named = [p for p in (self.best_path, self.folder / "averaged.pth") if p.is_file()]
        return (
            epoch_checkpoints_newest_first(self.folder)
            + epoch_checkpoints_newest_first(self.folder, "weights")
            + named
        )

    def latest(self) -> tuple[Path, dict] | None:
        return load_latest_good_checkpoint(epoch_checkpoints_newest_first(self.folder))

    def save_epoch(
        self, epoch: int, weights: Mapping, state: Mapping, improved: bool, keep_weights=()
    ) -> None:
        """Save one finished epoch: ``best.pth`` if ``improved``, its weights, its resume state; prune the rest
        (epoch weights survive when listed in ``keep_weights``, for top-k averaging)."""
        if not self.is_main:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        if improved:
            save_checkpoint_atomically(weights, self.best_path)
        save_checkpoint_atomically(weights, self.weights_path(epoch))
        save_checkpoint_atomically(state, epoch_checkpoint_path(self.folder, epoch))
        prune_epoch_checkpoints(self.folder, keep=2)
        prune_epoch_checkpoints(self.folder, keep=1, stem="weights", protect=list(keep_weights))

    def save_averaged(self, weights: Mapping) -> None:
        if self.is_main:
            save_checkpoint_atomically(weights, self.folder / "averaged.pth")
