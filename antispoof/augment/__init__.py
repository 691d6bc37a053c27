"""Waveform augmentation for training (RawBoost)."""

from antispoof.augment.rawboost import RawBoost, make_rawboost

__all__ = ["RawBoost", "make_rawboost"]
