"""AMSDF: audio multi-view spoofing detection (Wu et al., "Audio Multi-view Spoofing Detection Framework
Based on Audio-Text-Emotion Correlations", IEEE TIFS 2024), re-implemented after ItzJuny/AMSDF
(models/AMSDF.py).

Three views of one 4.04 s waveform (64600 samples), each a graph of 64-d nodes:
- audio: AASIST's sinc front-end (70 filters) and residual encoder, max over bands -> 29 temporal nodes;
- emotion: the ACRNN encoder's attention-weighted frames (150 x 256) -> max-pool (3, 4) -> BatchNorm over the
  50 steps -> SELU -> 50 nodes;
- text: XLS-R features (201 x 1024) -> Linear 128 -> max-pool (4, 2) -> BatchNorm over the 50 steps -> SELU
  -> 50 nodes.
Each view: graph attention (temperature 2) and graph pooling (audio keeps 0.88, the others 0.5) -> 25 nodes.
Four heterogeneous graph fusion modules (two stacked HS-GALs with a stack node each): audio-emotion,
audio-text, emotion-text, and one over the audio-emotion and emotion-text outputs. Group readout: each group
(the three views, the four fused graphs, the four stack nodes) pooled twice by 0.5, concatenated, max|.| and
mean -> 3 x 128 -> the 384-d embedding -> Linear 64 -> Linear 2.

Parameter names follow the authors' model (``audio_view_extract``, ``emo_view_extract``,
``text_view_extract``, ``GAT_audio``, ``pool_audio``, ``Core_AE``/``Core_AT``/``Core_ET``/``Core_AET``,
``GRS_group1..3``, ``out_layer``, ``out_layer2``), so their M1-M3 checkpoints load strictly after one
documented key map, ``Model.convert_state_dict``: their fairseq-named XLS-R
``text_view_extract.model.<fairseq key>`` (pre-training heads included) becomes
``text_view_extract.model.model.<transformers key>`` (heads dropped). The ACRNN keys
(``emo_view_extract.model.conv1.weight`` ...) are theirs unchanged. Convert once:
``python -m models.AMSDF M1.pth models/weights/AMSDF_M1.pth``.

Class order: this project's logits have index 1 = bona fide. The authors' README says M1-M3 were trained with
real = 0 and fake = 1, while their data code (data_io.py: REAL = 1, FAKE = 0) and scoring
(``batch_out[:, 1]``) use real = 1. ``bonafide_class`` says which output unit of the loaded weights is bona
fide; with 0 the model swaps its two logits, so the returned ``logits[:, 1]`` is always the bona fide score.
If the README is right, M1-M3 need ``bonafide_class: 0``; check on a few files of known class (a swapped
order shows as an EER near 100 %).

model_config keys (``OPTIONS``; defaults are the authors'):
    ssl_path, ssl_size, trust_pickle, freeze_ssl, gradient_checkpointing, bf16_autocast
                        the XLS-R text view, as in models/AASIST_WAV2VEC.py (default: fine-tuned)
    emotion_path        ACRNN weights (ser_acrnn.pth), loaded strictly; null: random (tests, or when a
                        whole-model checkpoint is loaded afterwards)
    emotion_num_classes 4 (the published ser_acrnn.pth)
    emotion_features    "logfbank" (AMSDF's recipe)
    freeze_emotion      false (the authors fine-tune the emotion encoder too)
    bonafide_class      1 (this project's order) or 0 (weights whose output unit 0 is bona fide)
    nb_samp             64600: the views have exactly 50 steps only for inputs of this length
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from antispoof.audio import NB_SAMP
from models import freeze, load_weights
from models.AASIST import (
    GraphAttentionLayer,
    GraphPool,
    HtrgGraphAttentionLayer,
    ResidualEncoder,
    SincConv,
    selu_,
)
from models.ACRNN import Model as ACRNN
from models.emotion_features import RECIPES
from models.options import Option, boolean, integer, read_options, text
from models.wav2vec2 import (
    SSL_OPTIONS,
    convert_checkpoint_main,
    convert_detector_checkpoint,
    convert_detector_state,
    xlsr_from_config,
)

NODE_DIM = 64
VIEW_STEPS = 50  # steps of the emotion and text views (BatchNorm over steps needs exactly this many)
OPTIONS = {
    **SSL_OPTIONS,
    "emotion_path": Option(text, default=None, nullable=True),
    "emotion_num_classes": Option(integer, default=4),
    "emotion_features": Option(text, default="logfbank", choices=RECIPES),
    "freeze_emotion": Option(boolean, default=False),
    "bonafide_class": Option(integer, default=1, choices=(0, 1), note="the output unit of bona fide"),
    "nb_samp": Option(
        integer,
        default=NB_SAMP,
        choices=(NB_SAMP,),
        note=f"its text and emotion views have exactly {VIEW_STEPS} steps for that length",
    ),
}
AUDIO_FILTERS = 70
AUDIO_KERNEL = 128  # 129 taps
AUDIO_FILTS = [[1, 32], [32, 32], [32, 64], [64, 64]]
TEXT_PROJECTION = 128
TEXT_POOL = (4, 2)  # over (frame, projected feature)
EMOTION_POOL = (3, 4)  # over (ACRNN step, feature)
SSL_PREFIX = "text_view_extract.model."  # the authors' prefix of their fairseq XLS-R
OWN_SSL_PREFIX = "text_view_extract.model.model."


class AudioView(nn.Module):
    """AASIST's front-end and encoder -> temporal nodes (B, 29, 64) (the authors' ``base_encoder``)."""

    def __init__(self):
        super().__init__()
        self.conv_time = SincConv(out_channels=AUDIO_FILTERS, kernel_size=AUDIO_KERNEL)
        self.first_bn = nn.BatchNorm2d(num_features=1)
        self.encoder = ResidualEncoder(AUDIO_FILTS)

    def forward(self, x: torch.Tensor, Freq_aug: bool = False) -> torch.Tensor:
        maps = self.conv_time.pooled_magnitude(x, (3, 3), freq_mask=Freq_aug)
        maps = self.encoder(selu_(self.first_bn(maps)))  # (B, 64, 23, frames)
        return maps.abs().amax(dim=2).transpose(1, 2)


class EmotionView(nn.Module):
    """ACRNN frames (B, 150, 256) -> (B, 50, 64) nodes (the authors' ``SER_model``)."""

    def __init__(self, encoder: ACRNN, frozen: bool):
        super().__init__()
        self.model = encoder
        self.frozen = frozen
        self.bn = nn.BatchNorm1d(num_features=VIEW_STEPS)
        self.selu = nn.SELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            frames, _ = self.model.embed(x)
        # max_pool2d on a 3-D tensor pools its last two dimensions: steps by 3, features by 4
        return self.selu(self.bn(F.max_pool2d(frames, EMOTION_POOL)))


class TextView(nn.Module):
    """XLS-R features (B, 201, dim) -> (B, 50, 64) nodes (the authors' ``ASR_model``)."""

    def __init__(self, ssl: nn.Module, frozen: bool):
        super().__init__()
        self.model = ssl
        self.frozen = frozen
        self.linear = nn.Linear(ssl.out_dim, TEXT_PROJECTION)
        self.bn = nn.BatchNorm1d(num_features=VIEW_STEPS)
        self.selu = nn.SELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            features = self.model(x)
        return self.selu(self.bn(F.max_pool2d(self.linear(features), TEXT_POOL)))


class HGFM(nn.Module):
    """Heterogeneous graph fusion: two stacked HS-GALs with a learned stack node.

    Returns the fused nodes of both types summed (B, N, 64) and the stack node (B, 1, 64).
    """

    def __init__(self):
        super().__init__()
        self.HtrgGAT_layer1 = HtrgGraphAttentionLayer(NODE_DIM, NODE_DIM, temperature=100)
        self.HtrgGAT_layer2 = HtrgGraphAttentionLayer(NODE_DIM, NODE_DIM, temperature=100)
        self.drop_way = nn.Dropout(0.2)
        self.stack_node = nn.Parameter(torch.randn(1, 1, NODE_DIM))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stack = self.stack_node.expand(x1.size(0), -1, -1)
        x1, x2, stack = self.HtrgGAT_layer1(x1, x2, master=stack)
        aug1, aug2, aug_stack = self.HtrgGAT_layer2(x1, x2, master=stack)
        x1, x2, stack = self.drop_way(x1 + aug1), self.drop_way(x2 + aug2), self.drop_way(stack + aug_stack)
        return x1 + x2, stack


class GRS(nn.Module):
    """Group readout: each graph pooled by 0.5 twice, all nodes together -> [max |.|, mean] (B, 128)."""

    def __init__(self):
        super().__init__()
        self.pool1 = GraphPool(0.5, NODE_DIM, 0.3)
        self.pool2 = GraphPool(0.5, NODE_DIM, 0.3)

    def forward(self, graphs: list[torch.Tensor]) -> torch.Tensor:
        nodes = torch.cat([self.pool2(self.pool1(graph)) for graph in graphs], dim=1)
        return torch.cat([nodes.abs().amax(dim=1), nodes.mean(dim=1)], dim=1)


class Model(nn.Module):
    """AMSDF; forward(x, Freq_aug=False): (B, 64600) -> (embedding (B, 384), logits (B, 2), 1 = bona fide)."""

    def __init__(self, model_config: dict):
        super().__init__()
        config = read_options(model_config, OPTIONS, "AMSDF model_config")
        self.bonafide_class = config["bonafide_class"]
        self.nb_samp = NB_SAMP

        emotion = ACRNN(
            {"num_classes": config["emotion_num_classes"], "features": config["emotion_features"]}
        )
        if config["emotion_path"]:
            load_weights(emotion, config["emotion_path"], what=str(config["emotion_path"]))
        if config["freeze_emotion"]:
            freeze(emotion)
        ssl = xlsr_from_config(config)

        # multi-view feature extractors
        self.text_view_extract = TextView(ssl, frozen=config["freeze_ssl"])
        self.emo_view_extract = EmotionView(emotion, frozen=config["freeze_emotion"])
        self.audio_view_extract = AudioView()
        # intra-view graph attention and pooling
        self.GAT_text = GraphAttentionLayer(NODE_DIM, NODE_DIM, temperature=2.0)
        self.pool_text = GraphPool(0.5, NODE_DIM, 0.3)
        self.GAT_emo = GraphAttentionLayer(NODE_DIM, NODE_DIM, temperature=2.0)
        self.pool_emo = GraphPool(0.5, NODE_DIM, 0.3)
        self.GAT_audio = GraphAttentionLayer(NODE_DIM, NODE_DIM, temperature=2.0)
        self.pool_audio = GraphPool(0.88, NODE_DIM, 0.3)
        # heterogeneous graph fusion
        self.Core_AE = HGFM()
        self.Core_AT = HGFM()
        self.Core_ET = HGFM()
        self.Core_AET = HGFM()
        # group-based readout
        self.GRS_group1 = GRS()
        self.GRS_group2 = GRS()
        self.GRS_group3 = GRS()
        self.drop = nn.Dropout(0.5)
        self.out_layer = nn.Linear(3 * 2 * NODE_DIM, NODE_DIM)
        self.out_layer2 = nn.Linear(NODE_DIM, 2)

    def forward(self, x: torch.Tensor, Freq_aug: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 2 or x.size(1) != self.nb_samp:
            raise ValueError(
                f"AMSDF expects a waveform batch (B, {self.nb_samp}), got shape {tuple(x.shape)}"
            )
        audio = self.pool_audio(self.GAT_audio(self.audio_view_extract(x, Freq_aug=Freq_aug)))
        emotion = self.pool_emo(self.GAT_emo(self.emo_view_extract(x)))
        text = self.pool_text(self.GAT_text(self.text_view_extract(x)))
        audio_emotion, stack_ae = self.Core_AE(audio, emotion)
        audio_text, stack_at = self.Core_AT(audio, text)
        emotion_text, stack_et = self.Core_ET(emotion, text)
        all_views, stack_aet = self.Core_AET(audio_emotion, emotion_text)
        embedding = torch.cat(
            [
                self.GRS_group1([audio, emotion, text]),
                self.GRS_group2([audio_emotion, audio_text, emotion_text, all_views]),
                self.GRS_group3([stack_ae, stack_at, stack_et, stack_aet]),
            ],
            dim=1,
        )
        logits = self.out_layer2(self.out_layer(self.drop(embedding)))
        if self.bonafide_class == 0:
            logits = logits.flip(-1)
        return embedding, logits

    def convert_state_dict(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The authors' checkpoint (fairseq-named XLS-R) -> this model's keys; its own keys pass unchanged."""
        return convert_detector_state(state, SSL_PREFIX, self.text_view_extract.model.model, OWN_SSL_PREFIX)


def convert_checkpoint(source: str, target: str, ssl_size: str = "xlsr_300m") -> None:
    """Write the authors' checkpoint as a state dict of this model (strictly checked by loading it)."""
    convert_detector_checkpoint(Model, source, target, ssl_size)


def main(argv: list[str] | None = None) -> None:
    convert_checkpoint_main(Model, "Convert an AMSDF checkpoint (M1-M3) to this model's keys", argv)


if __name__ == "__main__":
    main()
