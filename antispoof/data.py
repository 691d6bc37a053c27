"""Datasets: random training crops with labels, and scoring items (the first ``nb_samp`` samples, every window,
or the whole file) that survive bad files.

Everything a user imports from ``data_utils`` is re-exported here: audio (``antispoof.audio``), protocols
(``antispoof.protocols``) and the datasets defined below.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from antispoof.audio import (
    AUDIO_EXTENSIONS,
    NB_SAMP,
    SAMPLE_RATE,
    AudioError,
    crop_or_pad,
    find_audio_files,
    load_audio,
    tile_pad,
)
from antispoof.config import SCORING_MODES
from antispoof.emotions import EMOTIONS, normalize_emotion
from antispoof.protocols import (
    ASVSPOOF_PROTOCOL_DIR,
    ASVSPOOF_SPLITS,
    BONAFIDE,
    BONAFIDE_SYSTEM_DIR,
    DSES_PROTOCOL_FIELDS,
    SPOOF,
    DSESScanReport,
    ProtocolError,
    Trial,
    asvspoof_protocol_path,
    asvspoof_trials,
    check_asvspoof_layout,
    check_audio_exists,
    scan_dses,
    write_dses_protocol,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "NB_SAMP",
    "SAMPLE_RATE",
    "AudioError",
    "crop_or_pad",
    "find_audio_files",
    "load_audio",
    "tile_pad",
    "EMOTIONS",
    "normalize_emotion",
    "ASVSPOOF_PROTOCOL_DIR",
    "ASVSPOOF_SPLITS",
    "BONAFIDE",
    "BONAFIDE_SYSTEM_DIR",
    "DSES_PROTOCOL_FIELDS",
    "SPOOF",
    "DSESScanReport",
    "ProtocolError",
    "Trial",
    "asvspoof_protocol_path",
    "asvspoof_trials",
    "check_asvspoof_layout",
    "check_audio_exists",
    "scan_dses",
    "write_dses_protocol",
    "TrainDataset",
    "ScoringDataset",
    "collate_by_length",
    "collate_scoring",
    "scoring_rows",
    "window_starts",
]


class TrainDataset(Dataset):
    """``nb_samp`` crops (tile-padded when short) with their labels; optional waveform augmentation.

    ``crop`` "random" takes a random crop each epoch (AASIST); "first" the first ``nb_samp`` samples
    (SSL_Anti-spoofing and AMSDF). ``augment_on`` "crop" boosts the crop; "utterance" boosts the whole file
    before cutting (SSL_Anti-spoofing's ``data_utils_SSL.py``).

    Randomness comes from a per-item generator seeded by (seed, epoch, index), so runs repeat exactly whatever
    the number of DataLoader workers; call ``set_epoch`` once per epoch.
    """

    def __init__(
        self,
        trials: Sequence[Trial],
        nb_samp: int = NB_SAMP,
        seed: int = 0,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        label_of: Callable[[Trial], int] | None = None,
        crop: str = "random",
        augment_on: str = "crop",
    ):
        if crop not in ("random", "first") or augment_on not in ("crop", "utterance"):
            raise ValueError(
                f"crop must be random|first and augment_on crop|utterance, got {crop!r}, {augment_on!r}"
            )
        self.crop, self.augment_on = crop, augment_on
        self.trials = list(trials)
        self.nb_samp = nb_samp
        self.seed = seed
        self.epoch = 0
        self.augment = augment
        self.label_of = label_of or (lambda t: t.label)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.trials)

    def __getitem__(self, index: int):
        trial = self.trials[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        x = load_audio(trial.path)
        if self.augment is not None and self.augment_on == "utterance":  # SSL_Anti-spoofing: boost, then cut
            x = np.asarray(self.augment(x, rng), dtype=np.float32)
        x = crop_or_pad(x, self.nb_samp, rng if self.crop == "random" else None)
        if self.augment is not None and self.augment_on == "crop":  # AASIST recipe: cut, then boost
            x = np.asarray(self.augment(x, rng), dtype=np.float32)
        return torch.from_numpy(np.ascontiguousarray(x)), self.label_of(trial)


def window_starts(n_samples: int, nb_samp: int, hop: int) -> list[int]:
    """Where each ``nb_samp``-sample window of a file starts, ``hop`` apart; the last window is aligned to the
    end of the file, so no sample is left out. A file of at most ``nb_samp`` samples has one window, at 0."""
    if hop < 1:
        raise ValueError(f"the window hop must be >= 1 sample, got {hop}")
    if n_samples <= nb_samp:
        return [0]
    starts = list(range(0, n_samples - nb_samp + 1, hop))
    if starts[-1] + nb_samp < n_samples:
        starts.append(n_samples - nb_samp)
    return starts


def scoring_rows(x: np.ndarray, nb_samp: int, scoring: str = "first", hop: int | None = None) -> np.ndarray:
    """What the model sees of one file, as rows (n, length): "first": its first ``nb_samp`` samples (one row);
    "windows": every ``nb_samp`` window at ``hop`` (default ``nb_samp``, see ``window_starts``); "full": the whole
    file (one row). A file shorter than ``nb_samp`` is tile-padded to one row in every mode, as for "first"."""
    if len(x) < nb_samp or scoring == "first":
        return crop_or_pad(x, nb_samp)[None]
    if scoring == "full":
        return x[None]
    if scoring == "windows":
        return np.stack([x[s : s + nb_samp] for s in window_starts(len(x), nb_samp, hop or nb_samp)])
    raise ValueError(f"scoring must be one of {', '.join(SCORING_MODES)}, got {scoring!r}")


class ScoringDataset(Dataset):
    """For evaluation and inference: each file's rows for the model (``scoring_rows``): by default its first
    ``nb_samp`` samples (tile-padded) as a (1, nb_samp) tensor.

    With ``skip_unreadable`` an unreadable file yields ``(None, index, message)`` instead of raising, so one bad
    file in a folder does not stop the rest from being scored; ``collate_scoring`` sets it aside.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        nb_samp: int = NB_SAMP,
        skip_unreadable: bool = False,
        scoring: str = "first",
        hop: int | None = None,
    ):
        # checked here rather than in a DataLoader worker, file after file
        if scoring not in SCORING_MODES:
            raise ValueError(f"scoring must be one of {', '.join(SCORING_MODES)}, got {scoring!r}")
        if hop is not None and not 1 <= hop <= nb_samp:
            raise ValueError(f"the window hop must be 1 .. nb_samp ({nb_samp}) samples, got {hop}")
        self.paths = list(paths)
        self.nb_samp = nb_samp
        self.skip_unreadable = skip_unreadable
        self.scoring, self.hop = scoring, hop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            rows = scoring_rows(load_audio(self.paths[index]), self.nb_samp, self.scoring, self.hop)
        except AudioError as exc:
            if not self.skip_unreadable:
                raise
            return None, index, str(exc)
        return torch.from_numpy(np.ascontiguousarray(rows)), index, None


def _stack_rows(items) -> tuple[torch.Tensor, torch.Tensor]:
    """[(rows (n_i, T), file index), ...] -> (all rows (sum n_i, T), the file index of each row)."""
    rows = [torch.atleast_2d(x) for x, _ in items]
    owners = torch.cat([torch.full((len(r),), i, dtype=torch.long) for r, (_, i) in zip(rows, items)])
    return torch.cat(rows), owners


def collate_scoring(batch):
    """Stack the readable items' rows (equal lengths: "first", "windows"); return (rows or None, the file index
    of each row, [(index, error), ...])."""
    good = [(x, i) for x, i, _ in batch if x is not None]
    errors = [(i, err) for x, i, err in batch if x is None]
    if not good:
        return None, torch.empty(0, dtype=torch.long), errors
    waves, owners = _stack_rows(good)
    return waves, owners, errors


def collate_by_length(batch):
    """``collate_scoring`` for rows of any length ("full"): ([(rows, file index of each row), ...] one entry per
    distinct length, in order of first appearance; [(index, error), ...])."""
    groups: dict[int, list] = {}
    for x, i, _ in batch:
        if x is not None:
            groups.setdefault(x.shape[-1], []).append((x, i))
    errors = [(i, err) for x, i, err in batch if x is None]
    return [_stack_rows(items) for items in groups.values()], errors
