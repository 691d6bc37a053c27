"""ACRNN: the 3-D convolutional recurrent emotion encoder (Chen et al., IEEE SPL 2018), as AMSDF uses it.

Log-mel, delta and delta-delta (3 x 300 frames x 40 bands) -> six 5x3 convolutions (128, then 256 channels,
LeakyReLU 0.01, a (2, 4) max-pool after the first) -> each of the 150 pooled time steps (10 bands x 256
channels) -> Linear 768 -> BatchNorm -> LeakyReLU -> bidirectional LSTM (128 units each way) -> attention over
time.

Parameter names follow the published ``ser_acrnn.pth`` (AMSDF): conv1..conv6, linear1, bn, rnn, a_fc1, a_fc2,
and the emotion classifier fc1, fc2. The front-end (``models/emotion_features.py``) holds no weights, so a
state dict of this model is exactly that layout.

model_config keys:
    num_classes            emotion classes of the classifier head (required; the published checkpoint has 4)
    features               "logfbank" (default; the recipe ser_acrnn.pth and AMSDF use) or "melspec"
                           (upstream fusion models)
    legacy_swap_time_freq  false (default). true feeds the network (B, 3, 40, 300), time and frequency
                           swapped, as the upstream fusion models did (their features were transposed, and the
                           network's reshape accepts that silently); only for weights trained that way
    dropout                dropout after every convolution and fc1 (default 0: the published model kept all)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from models.emotion_features import NUM_BANDS, NUM_FRAMES, RECIPES, EmotionFeatures
from models.options import NB_SAMP_OPTION, Option, boolean, integer, number, read_options, text

CONV1_CHANNELS = 128
CONV_CHANNELS = 256
POOL = (2, 4)  # (time, band) in the correct layout
TIME_STEPS = NUM_FRAMES // POOL[0]  # 150
POOLED_BANDS = NUM_BANDS // POOL[1]  # 10
LINEAR_UNITS = 768
LSTM_UNITS = 128
EMBEDDING_DIM = 2 * LSTM_UNITS  # 256
CLASSIFIER_UNITS = 64
LEAKY_SLOPE = 0.01

OPTIONS = {
    "num_classes": Option(integer, note="emotion classes of its head"),
    "features": Option(text, default="logfbank", choices=RECIPES),
    "legacy_swap_time_freq": Option(boolean, default=False),
    "dropout": Option(number, default=0.0),
    "nb_samp": NB_SAMP_OPTION,  # read by the data pipeline (training it as an emotion recogniser)
}


class Model(nn.Module):
    """Emotion encoder with its front-end and an emotion classifier head.

    ``forward(waveform)`` -> ``(pooled (B, 256), logits (B, num_classes))`` (the registry interface used to
    train it as an emotion recogniser); ``embed(waveform)`` and ``encode(features)`` ->
    ``(frames (B, 150, 256), pooled (B, 256))`` for models that use it as a frozen encoder.
    """

    def __init__(self, model_config: Mapping):
        super().__init__()
        options = read_options(model_config, OPTIONS, "ACRNN model_config")
        self.num_classes = options["num_classes"]
        self.legacy_swap_time_freq = options["legacy_swap_time_freq"]
        self.frontend = EmotionFeatures(options["features"])
        dropout = options["dropout"]

        # kernel 5 along time, 3 along bands in the correct layout; 'same' padding as the TensorFlow original
        self.conv1 = nn.Conv2d(3, CONV1_CHANNELS, (5, 3), padding=(2, 1))
        self.conv2 = nn.Conv2d(CONV1_CHANNELS, CONV_CHANNELS, (5, 3), padding=(2, 1))
        self.conv3 = nn.Conv2d(CONV_CHANNELS, CONV_CHANNELS, (5, 3), padding=(2, 1))
        self.conv4 = nn.Conv2d(CONV_CHANNELS, CONV_CHANNELS, (5, 3), padding=(2, 1))
        self.conv5 = nn.Conv2d(CONV_CHANNELS, CONV_CHANNELS, (5, 3), padding=(2, 1))
        self.conv6 = nn.Conv2d(CONV_CHANNELS, CONV_CHANNELS, (5, 3), padding=(2, 1))
        self.linear1 = nn.Linear(POOLED_BANDS * CONV_CHANNELS, LINEAR_UNITS)
        self.bn = nn.BatchNorm1d(LINEAR_UNITS)
        self.rnn = nn.LSTM(LINEAR_UNITS, LSTM_UNITS, num_layers=1, batch_first=True, bidirectional=True)
        self.a_fc1 = nn.Linear(EMBEDDING_DIM, 1)
        self.a_fc2 = nn.Linear(1, 1)
        self.fc1 = nn.Linear(EMBEDDING_DIM, CLASSIFIER_UNITS)
        self.fc2 = nn.Linear(CLASSIFIER_UNITS, self.num_classes)
        self.activation = nn.LeakyReLU(LEAKY_SLOPE)
        self.dropout = nn.Dropout(dropout)

    @property
    def convs(self) -> list[nn.Conv2d]:
        return [self.conv1, self.conv2, self.conv3, self.conv4, self.conv5, self.conv6]

    def encode(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``(B, 3, 300, 40)`` -> attention-weighted frames ``(B, 150, 256)``, pooled ``(B, 256)``.

        The pooled embedding is the sum of the frames over time. In the legacy layout the same features go
        to the network transposed, as ``(B, 3, 40, 300)``.
        """
        expected = (3, NUM_FRAMES, NUM_BANDS)
        if features.dim() != 4 or tuple(features.shape[1:]) != expected:
            raise ValueError(f"ACRNN expects features (B, 3, 300, 40), got shape {tuple(features.shape)}")
        batch = features.shape[0]
        x = features.transpose(2, 3) if self.legacy_swap_time_freq else features
        for index, conv in enumerate(self.convs):
            x = self.activation(conv(x))
            if index == 0:
                x = nn.functional.max_pool2d(x, kernel_size=POOL, stride=POOL)
            x = self.dropout(x)
        # (B, C, H, W) -> (B, H, W, C) -> 150 steps of 2560 values. In the correct layout H is time (150) and
        # each step holds 10 bands x 256 channels. In the legacy layout H x W = 20 bands x 75 frames, and the
        # same reshape cuts that memory into 150 rows regardless: what the upstream fusion models computed.
        steps = x.permute(0, 2, 3, 1).reshape(batch * TIME_STEPS, POOLED_BANDS * CONV_CHANNELS)
        steps = self.activation(self.bn(self.linear1(steps))).reshape(batch, TIME_STEPS, LINEAR_UNITS)
        outputs, _ = self.rnn(steps)  # (B, 150, 256)
        scores = self.a_fc2(torch.sigmoid(self.a_fc1(outputs))).squeeze(-1)  # (B, 150)
        alphas = torch.softmax(scores, dim=1)
        frames = alphas.unsqueeze(-1) * outputs
        return frames, frames.sum(dim=1)

    def embed(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveform ``(B, T)`` at 16 kHz (T >= ~3 s) -> ``(frames (B, 150, 256), pooled (B, 256))``."""
        return self.encode(self.frontend(waveform))

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Emotion logits ``(B, num_classes)`` from the pooled embedding."""
        return self.fc2(self.dropout(self.activation(self.fc1(pooled))))

    def forward(self, x: torch.Tensor, Freq_aug: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        # Freq_aug belongs to the shared model signature; this front-end has no frequency masking
        _, pooled = self.embed(x)
        return pooled, self.classify(pooled)
