"""Shared plumbing of the emotion fusion detectors (AASIST_Concat, AASIST_FiLM, AASIST_GFiLM).

A fusion model holds a frozen AASIST (``aasist``) and a frozen ACRNN emotion encoder (``ser``) and trains
only its head. Frozen means: no gradients, and eval mode even while the model trains (``models.freeze`` plus a
``train`` override calling ``models.keep_frozen_in_eval``), so their BatchNorm statistics never drift and
their dropout stays off. (The upstream left them in train mode; its published fused checkpoints therefore
carry AASIST/ACRNN BatchNorm statistics that drifted during its training; loading such a checkpoint restores
them.)

Submodule and head names follow the upstream (akzykova/aasist_ser), so its published fused checkpoints
(``aasist.*``, ``ser.*``, ``test_linear.*`` / ``film.*``, ``gated_block.*``, ``classifier.*``) load strictly.

model_config keys (fusion models):
    aasist_config          the AASIST model_config (architecture "AASIST")
    aasist_path            AASIST weights; null builds a randomly initialised AASIST (tests only; warns)
    ser_path               ACRNN weights; null builds a randomly initialised ACRNN (tests only; warns)
    ser_num_classes        classes of the ACRNN's head in the ser_path file (default 4: the published
                           ser_acrnn.pth, an IEMOCAP 4-emotion model; 5 for one trained with config/SER.conf)
    ser_features           "logfbank" (default: the recipe ser_acrnn.pth was trained on) or "melspec" (the
                           recipe of the upstream fusion models)
    legacy_swap_time_freq  false (default); true reproduces the upstream's time/frequency swap of the emotion
                           features (see models/ACRNN.py)
    legacy_gate_class_order  (AASIST_GFiLM) false (default); true reproduces the upstream's gate class
                           order (see models/AASIST_GFiLM.py)
Upstream configs keep ``aasist_path`` inside ``aasist_config`` and ``ser_path`` inside ``ser_config``; those
places are read when the top-level keys are absent.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch
from torch import nn

from models import ConfigError, build_model, canonical_architecture, freeze, keep_frozen_in_eval, load_weights
from models.ACRNN import EMBEDDING_DIM as EMOTION_DIM
from models.ACRNN import Model as ACRNN

DEFAULT_SER_NUM_CLASSES = 4  # the published ser_acrnn.pth (AMSDF): neutral, happy, angry, sad of IEMOCAP
FILM_HIDDEN = 128


def _weights_path(model_config: Mapping, key: str, nested: str) -> str | None:
    """``model_config[key]``, else the upstream's ``model_config[nested][key]``; absent from both: error."""
    if key in model_config:
        return model_config[key]
    inner = model_config.get(nested)
    if isinstance(inner, Mapping) and key in inner:
        return inner[key]
    raise ConfigError(
        f"model_config of {model_config.get('architecture')} has no {key!r} key (a weight file, or null for "
        "a randomly initialised frozen part, tests only)"
    )


def _require(model_config: Mapping, key: str):
    if key not in model_config:
        raise ConfigError(f"model_config of {model_config.get('architecture')} has no {key!r} key")
    return model_config[key]


def _load_or_warn(module: nn.Module, path: str | None, key: str, architecture: str) -> None:
    if path is None:
        warnings.warn(
            f"{architecture}: {key} is null, so its frozen {type(module).__module__} part is randomly "
            "initialised (fine for tests; set the path to use trained weights)",
            stacklevel=3,
        )
        return
    load_weights(module, path, what=f"{path} ({key})")


def build_frozen_aasist(model_config: Mapping) -> tuple[nn.Module, int]:
    """The AASIST of a fusion model, loaded from ``aasist_path`` and frozen, and its embedding size."""
    aasist_config = _require(model_config, "aasist_config")
    if canonical_architecture(aasist_config.get("architecture", "AASIST")) != "AASIST":
        raise ConfigError(
            f"aasist_config.architecture must be AASIST, got {aasist_config.get('architecture')!r}"
        )
    aasist = build_model({**aasist_config, "architecture": "AASIST"})
    _load_or_warn(
        aasist,
        _weights_path(model_config, "aasist_path", "aasist_config"),
        "aasist_path",
        model_config.get("architecture", "fusion model"),
    )
    return freeze(aasist), 5 * int(aasist_config["gat_dims"][1])


def build_frozen_ser(model_config: Mapping) -> ACRNN:
    """The ACRNN of a fusion model with its front-end, loaded from ``ser_path`` and frozen."""
    ser = ACRNN(
        {
            "architecture": "ACRNN",
            "num_classes": model_config.get("ser_num_classes", DEFAULT_SER_NUM_CLASSES),
            "features": model_config.get("ser_features", "logfbank"),
            "legacy_swap_time_freq": bool(model_config.get("legacy_swap_time_freq", False)),
        }
    )
    _load_or_warn(
        ser,
        _weights_path(model_config, "ser_path", "ser_config"),
        "ser_path",
        model_config.get("architecture", "fusion model"),
    )
    return freeze(ser)


class FusionModel(nn.Module):
    """Base of the fusion detectors: a frozen ``aasist`` and a frozen ``ser``; subclasses add the head."""

    def __init__(self, model_config: Mapping):
        super().__init__()
        self.aasist, self.aasist_dim = build_frozen_aasist(model_config)
        self.ser = build_frozen_ser(model_config)
        self.emotion_dim = EMOTION_DIM

    def train(self, mode: bool = True):
        super().train(mode)
        keep_frozen_in_eval(self)
        return self

    def frozen_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Waveform ``(B, T)`` -> AASIST embedding ``(B, 160)``, AASIST logits ``(B, 2)``, emotion embedding
        ``(B, 256)``; computed without gradients (frequency augmentation never applies to a frozen AASIST)."""
        with torch.no_grad():
            aasist_embedding, aasist_logits = self.aasist(x)
            _, emotion_embedding = self.ser.embed(x)
        return aasist_embedding, aasist_logits, emotion_embedding


class FiLMBlock(nn.Module):
    """Feature-wise linear modulation: ``gamma(c) * LayerNorm(x) + beta(c)`` with ``c`` LayerNorm'd first.

    The names are the upstream's: ``sv`` is the modulated embedding, ``cm`` the conditioning one.
    """

    def __init__(self, modulated_dim: int, condition_dim: int, hidden_dim: int = FILM_HIDDEN):
        super().__init__()
        self.cm_ln = nn.LayerNorm(condition_dim)
        self.condition_to_gamma_beta = nn.Sequential(
            nn.Linear(condition_dim, hidden_dim), nn.ReLU(), nn.BatchNorm1d(hidden_dim)
        )
        self.gamma_linear = nn.Linear(hidden_dim, modulated_dim)
        self.beta_linear = nn.Linear(hidden_dim, modulated_dim)
        self.sv_ln = nn.LayerNorm(modulated_dim)

    def forward(self, modulated: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        hidden = self.condition_to_gamma_beta(self.cm_ln(condition))
        return self.gamma_linear(hidden) * self.sv_ln(modulated) + self.beta_linear(hidden)


def fusion_classifier(in_dim: int) -> nn.Sequential:
    """in_dim -> 256 -> 128 -> 2 with BatchNorm, LeakyReLU, dropout 0.3 (upstream indices 0, 1, 4, 5, 7)."""
    return nn.Sequential(
        nn.Linear(in_dim, 256),
        nn.BatchNorm1d(256),
        nn.LeakyReLU(),
        nn.Dropout(0.3),
        nn.Linear(256, 128),
        nn.BatchNorm1d(128),
        nn.LeakyReLU(),
        nn.Linear(128, 2),
    )
