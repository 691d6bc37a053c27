"""Datasets: random training crops with labels, and first-``nb_samp`` scoring items that survive bad files.

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
    "collate_scoring",
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


class ScoringDataset(Dataset):
    """First ``nb_samp`` samples of each file (tile-padded), for evaluation and inference.

    With ``skip_unreadable`` an unreadable file yields ``(None, index, message)`` instead of raising, so one bad
    file in a folder does not stop the rest from being scored; ``collate_scoring`` sets it aside.
    """

    def __init__(
        self, paths: Sequence[str | os.PathLike], nb_samp: int = NB_SAMP, skip_unreadable: bool = False
    ):
        self.paths = list(paths)
        self.nb_samp = nb_samp
        self.skip_unreadable = skip_unreadable

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            x = crop_or_pad(load_audio(self.paths[index]), self.nb_samp)
        except AudioError as exc:
            if not self.skip_unreadable:
                raise
            return None, index, str(exc)
        return torch.from_numpy(np.ascontiguousarray(x)), index, None


def collate_scoring(batch):
    """Stack the readable items; return (waveforms or None, their indices, [(index, error), ...])."""
    good = [(x, i) for x, i, _ in batch if x is not None]
    errors = [(i, err) for x, i, err in batch if x is None]
    if not good:
        return None, torch.empty(0, dtype=torch.long), errors
    waves = torch.stack([x for x, _ in good])
    return waves, torch.tensor([i for _, i in good], dtype=torch.long), errors
