"""AASIST_Concat: L2-normalised AASIST and emotion embeddings, concatenated, L2-normalised again, Linear -> 2.

The AASIST and the ACRNN are frozen (see ``models/fusion.py``); only ``test_linear`` (the upstream's name)
trains.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from models.fusion import OPTIONS, FusionModel


class Model(FusionModel):
    def __init__(self, model_config: Mapping):
        super().__init__(model_config, OPTIONS, "AASIST_Concat")
        self.test_linear = nn.Linear(self.aasist_dim + self.emotion_dim, 2)

    def forward(self, x: torch.Tensor, Freq_aug: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        aasist_embedding, _, emotion_embedding = self.frozen_features(x)
        combined = torch.cat(
            [F.normalize(aasist_embedding, dim=1), F.normalize(emotion_embedding, dim=1)], dim=1
        )
        combined = F.normalize(combined, dim=1)
        return combined, self.test_linear(combined)
