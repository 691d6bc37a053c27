"""Shared plumbing of the emotion fusion detectors (AASIST_Concat, AASIST_FiLM, AASIST_GFiLM).

A fusion model holds a frozen AASIST (``aasist``) and a frozen ACRNN emotion encoder (``ser``) and trains
only its head. Frozen means: no gradients, and eval mode even while the model trains (``models.freeze``), so
their BatchNorm statistics never drift and their dropout stays off. (The upstream left them in train mode; its
published fused checkpoints therefore carry AASIST/ACRNN BatchNorm statistics that drifted during its
training; loading such a checkpoint restores them.)

Submodule and head names follow the upstream (akzykova/aasist_ser), so its published fused checkpoints
(``aasist.*``, ``ser.*``, ``test_linear.*`` / ``film.*``, ``gated_block.*``, ``classifier.*``) load strictly.

model_config keys (fusion models; declared in ``OPTIONS``):
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
    nb_samp                samples per crop, read by the data pipeline
Upstream configs keep ``aasist_path`` inside ``aasist_config`` and ``ser_path`` inside ``ser_config``; those
places are read when the top-level keys are absent.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch
from torch import nn

from models import build_model, freeze, load_weights
from models.AASIST import OPTIONS as AASIST_OPTIONS
from models.ACRNN import EMBEDDING_DIM as EMOTION_DIM
from models.ACRNN import Model as ACRNN
from models.emotion_features import RECIPES
from models.options import (
    ABSENT,
    NB_SAMP_OPTION,
    Option,
    Section,
    boolean,
    integer,
    read_options,
    text,
)

DEFAULT_SER_NUM_CLASSES = 4  # the published ser_acrnn.pth (AMSDF): neutral, happy, angry, sad of IEMOCAP
FILM_HIDDEN = 128
RANDOM_PART = "a weight file, or null for a randomly initialised frozen part, tests only"

# the AASIST's model_config; the upstream configs also keep aasist_path in it. Its nb_samp is accepted but not
# filled in: the data pipeline reads the fusion model's own nb_samp.
AASIST_SECTION = {
    **AASIST_OPTIONS,
    "nb_samp": Option(integer, default=ABSENT),
    "architecture": Option(text, default="AASIST", choices=("AASIST",)),
    "aasist_path": Option(text, default=ABSENT, nullable=True),
}
# the upstream configs' ser_config: where they keep ser_path
SER_SECTION = {
    "ser_path": Option(text, default=ABSENT, nullable=True),
    "freeze": Option(
        boolean, default=ABSENT, choices=(True,), note="the fusion models always freeze the ACRNN"
    ),
}
OPTIONS = {
    "aasist_config": Option(Section(AASIST_SECTION)),
    "aasist_path": Option(text, nullable=True, fallback="aasist_config", note=RANDOM_PART),
    "ser_path": Option(text, nullable=True, fallback="ser_config", note=RANDOM_PART),
    "ser_config": Option(Section(SER_SECTION), default=ABSENT),
    "ser_num_classes": Option(integer, default=DEFAULT_SER_NUM_CLASSES),
    "ser_features": Option(text, default="logfbank", choices=RECIPES),
    "legacy_swap_time_freq": Option(boolean, default=False),
    "nb_samp": NB_SAMP_OPTION,  # read by the data pipeline; the ACRNN needs about 3 s or more
}


def _load_or_warn(module: nn.Module, path: str | None, key: str, architecture: str) -> None:
    if path is None:
        warnings.warn(
            f"{architecture}: {key} is null, so its frozen {type(module).__module__} part is randomly "
            "initialised (fine for tests; set the path to use trained weights)",
            stacklevel=3,
        )
        return
    load_weights(module, path, what=f"{path} ({key})")


def build_frozen_aasist(options: Mapping, architecture: str) -> tuple[nn.Module, int]:
    """The AASIST of a fusion model, loaded from ``aasist_path`` and frozen, and its embedding size."""
    aasist_config = {k: v for k, v in options["aasist_config"].items() if k in AASIST_OPTIONS}
    aasist = build_model({**aasist_config, "architecture": "AASIST"})
    _load_or_warn(aasist, options["aasist_path"], "aasist_path", architecture)
    return freeze(aasist), 5 * aasist_config["gat_dims"][1]


def build_frozen_ser(options: Mapping, architecture: str) -> ACRNN:
    """The ACRNN of a fusion model with its front-end, loaded from ``ser_path`` and frozen."""
    ser = ACRNN(
        {
            "architecture": "ACRNN",
            "num_classes": options["ser_num_classes"],
            "features": options["ser_features"],
            "legacy_swap_time_freq": options["legacy_swap_time_freq"],
        }
    )
    _load_or_warn(ser, options["ser_path"], "ser_path", architecture)
    return freeze(ser)


class FusionModel(nn.Module):
    """Base of the fusion detectors: a frozen ``aasist`` and a frozen ``ser``; subclasses add the head.

    ``FusionModel(model_config, schema, architecture)``: reads ``model_config`` with ``schema`` (``OPTIONS``
    here, plus the subclass's own keys) into ``self.options``.
    """

    def __init__(self, model_config: Mapping, schema: Mapping[str, Option], architecture: str):
        super().__init__()
        self.options = read_options(model_config, schema, f"{architecture} model_config")
        self.aasist, self.aasist_dim = build_frozen_aasist(self.options, architecture)
        self.ser = build_frozen_ser(self.options, architecture)
        self.emotion_dim = EMOTION_DIM

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
