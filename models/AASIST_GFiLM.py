"""AASIST_GFiLM: the AASIST embedding modulates the emotion embedding by FiLM, and AASIST's own softmax gates
between the plain and the modulated emotion embedding.

    modulated = FiLM(emotion <- AASIST embedding)                       (256)
    refined   = Linear(ReLU(Linear(ReLU(modulated))))                    (256, ``gated_block.linear1/2``)
    fused     = P(bona fide) * emotion + P(spoof) * refined              (P = softmax of AASIST's logits)
    logits    = classifier(fused): 256 -> 256 -> 128 -> 2

The AASIST and the ACRNN are frozen (see ``models/fusion.py``). Upstream architecture name: AASIST_GFILM.

Class order. This project (like AASIST and the upstream's own data) uses bona fide = class 1. The upstream's
gate read ``softmax[:, 0]`` as "p_bona", so what it actually computed was
P(spoof) * emotion + P(bona fide) * refined. ``legacy_gate_class_order: true`` reproduces that (needed for the
upstream's published GFiLM weights); the default false weights the plain embedding by the true
P(bona fide), as the design intends.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from models.fusion import OPTIONS as FUSION_OPTIONS
from models.fusion import FiLMBlock, FusionModel, fusion_classifier
from models.options import Option, boolean

BONAFIDE, SPOOF = 1, 0
OPTIONS = {**FUSION_OPTIONS, "legacy_gate_class_order": Option(boolean, default=False)}


class GatingBlock(nn.Module):
    """Mix the plain and the refined modulated embedding by the detector's class probabilities."""

    def __init__(self, dim: int, legacy_class_order: bool = False):
        super().__init__()
        self.linear1 = nn.Sequential(nn.ReLU(), nn.Linear(dim, dim))
        self.linear2 = nn.Sequential(nn.ReLU(), nn.Linear(dim, dim))
        self.legacy_class_order = legacy_class_order

    def forward(
        self, modulated: torch.Tensor, plain: torch.Tensor, detector_logits: torch.Tensor
    ) -> torch.Tensor:
        refined = self.linear2(self.linear1(modulated))
        probabilities = torch.softmax(detector_logits, dim=-1)
        plain_index, refined_index = (0, 1) if self.legacy_class_order else (BONAFIDE, SPOOF)
        return (
            plain * probabilities[:, plain_index : plain_index + 1]
            + refined * probabilities[:, refined_index : refined_index + 1]
        )


class Model(FusionModel):
    def __init__(self, model_config: Mapping):
        super().__init__(model_config, OPTIONS, "AASIST_GFiLM")
        self.film = FiLMBlock(modulated_dim=self.emotion_dim, condition_dim=self.aasist_dim)
        self.gated_block = GatingBlock(
            self.emotion_dim, legacy_class_order=self.options["legacy_gate_class_order"]
        )
        self.classifier = fusion_classifier(self.emotion_dim)

    def forward(self, x: torch.Tensor, Freq_aug: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        aasist_embedding, aasist_logits, emotion_embedding = self.frozen_features(x)
        modulated = self.film(emotion_embedding, aasist_embedding)
        fused = self.gated_block(modulated, emotion_embedding, aasist_logits)
        return fused, self.classifier(fused)
