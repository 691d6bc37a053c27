"""AASIST_FiLM: the emotion embedding modulates the AASIST embedding by FiLM; an MLP classifies the result.

emotion (256) -> LayerNorm -> Linear 128 -> ReLU -> BatchNorm -> gamma, beta (160 each);
gamma * LayerNorm(AASIST embedding) + beta -> 256 -> 128 -> 2 (BatchNorm, LeakyReLU, dropout 0.3).
The AASIST and the ACRNN are frozen (see ``models/fusion.py``); ``film`` and ``classifier`` train.
Upstream architecture name: AASIST_FILM.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from models.fusion import OPTIONS, FiLMBlock, FusionModel, fusion_classifier


class Model(FusionModel):
    def __init__(self, model_config: Mapping):
        super().__init__(model_config, OPTIONS, "AASIST_FiLM")
        self.film = FiLMBlock(modulated_dim=self.aasist_dim, condition_dim=self.emotion_dim)
        self.classifier = fusion_classifier(self.aasist_dim)

    def forward(self, x: torch.Tensor, Freq_aug: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        aasist_embedding, _, emotion_embedding = self.frozen_features(x)
        modulated = self.film(aasist_embedding, emotion_embedding)
        return modulated, self.classifier(modulated)
