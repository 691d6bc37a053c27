"""XLS-R + AASIST (Tak et al., "Automatic speaker verification spoofing and deepfake detection using
wav2vec 2.0 and data augmentation", Odyssey 2022), re-implemented after TakHemlata/SSL_Anti-spoofing model.py.

waveform (B, T) -> XLS-R 300M (fine-tuned, or frozen) -> Linear 1024 -> 128 -> 3x3 max-pool -> BN + SELU
-> AASIST's residual encoder without pooling in its blocks -> BN + SELU -> a 1x1-conv attention map over the
(channels, 42 bands, frames) map -> attention-weighted sums over time (42 spectral nodes) and over bands
(temporal nodes) -> AASIST's graph back-end (GAT, graph pooling, two heterogeneous stacking graph attention
branches with master nodes, max/mean readout) -> (embedding (B, 160), logits (B, 2)), bona fide = 1 as in the
authors' code.

Parameter names follow the authors' model, so their published LA and DF checkpoints load strictly after one
documented key map, ``Model.convert_state_dict``: their XLS-R part is fairseq-named
(``ssl_model.model.encoder.layers.0.self_attn.q_proj.weight``; the pre-training heads ``mask_emb``,
``quantizer.*``, ``project_q.*``, ``final_proj.*`` included); here it is a ``transformers.Wav2Vec2Model``
under the same prefix (``ssl_model.model.encoder.layers.0.attention.q_proj.weight``), heads dropped. Every
other key is theirs unchanged (``LL``, ``first_bn``, ``first_bn1``, ``encoder.<i>.0.*``,
``attention.{0,2,3}``, ``pos_S``, ``master1``, ``GAT_layer_S``, ``HtrgGAT_layer_ST11``, ``pool_hS1``,
``out_layer`` ...). Convert once:
``python -m models.AASIST_WAV2VEC LA_model.pth models/weights/AASIST_WAV2VEC_LA.pth``.

model_config keys (``OPTIONS``; defaults are the authors'):
    ssl_path        fairseq checkpoint (xlsr2_300m.pt), HF directory, or a size name ("tiny"); null: random
                    weights of ``ssl_size`` (tests, or when a whole-model checkpoint is loaded afterwards)
    ssl_size        "xlsr_300m" (default) or "tiny": the structure when ssl_path holds no config
    trust_pickle    false; true lets ssl_path pickle an argparse Namespace / OmegaConf config
                    (see models/wav2vec2.py)
    freeze_ssl      false (the authors fine-tune XLS-R); true: XLS-R frozen (``models.freeze``): eval mode even
                    while the model trains, no gradients
    gradient_checkpointing  false; true recomputes XLS-R layers in the backward pass (16 GB GPUs)
    bf16_autocast   false; true runs XLS-R under bfloat16 autocast (the back-end stays float32)
    filts           [128, [1, 32], [32, 32], [32, 64], [64, 64]]: projection size, then encoder channels
    gat_dims        [64, 32]
    pool_ratios     [0.5, 0.5, 0.5, 0.5]
    temperatures    [2.0, 2.0, 100.0, 100.0]
    nb_samp         samples per crop, read by the data pipeline (64600)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from models.AASIST import AASISTGraphBackend, ResidualEncoder
from models.options import NB_SAMP_OPTION, Option, aasist_filts, integer, list_of, number, read_options
from models.wav2vec2 import (
    SSL_OPTIONS,
    convert_checkpoint_main,
    convert_detector_checkpoint,
    convert_detector_state,
    xlsr_from_config,
)

OPTIONS = {
    **SSL_OPTIONS,
    "filts": Option(aasist_filts, default=[128, [1, 32], [32, 32], [32, 64], [64, 64]]),
    "gat_dims": Option(list_of(integer, 2), default=[64, 32]),
    "pool_ratios": Option(list_of(number, 4), default=[0.5, 0.5, 0.5, 0.5]),
    "temperatures": Option(list_of(number, 4), default=[2.0, 2.0, 100.0, 100.0]),
    "nb_samp": NB_SAMP_OPTION,  # read by the data pipeline
}
FEATURE_POOL = (3, 3)  # over (projected feature, frame)
ATTENTION_HIDDEN = 128  # channels of the 1x1-conv attention map
SSL_PREFIX = "ssl_model.model."


class Model(AASISTGraphBackend):
    """XLS-R front-end + AASIST back-end: (B, T) -> (embedding (B, 5 * gat_dims[1]), logits (B, 2))."""

    def __init__(self, model_config: dict):
        config = read_options(model_config, OPTIONS, "AASIST_WAV2VEC model_config")
        filts = config["filts"]
        channels = filts[-1][-1]
        super().__init__(
            in_dim=channels,
            gat_dims=config["gat_dims"],
            pool_ratios=config["pool_ratios"],
            temperatures=config["temperatures"],
            n_spectral_nodes=filts[0] // FEATURE_POOL[0],
        )
        self.freeze_ssl = config["freeze_ssl"]
        self.ssl_model = xlsr_from_config(config)
        self.LL = nn.Linear(self.ssl_model.out_dim, filts[0])
        self.first_bn = nn.BatchNorm2d(num_features=1)
        self.first_bn1 = nn.BatchNorm2d(num_features=channels)
        self.selu = nn.SELU(inplace=True)
        self.encoder = ResidualEncoder(filts[1:], pool_size=None)
        self.attention = nn.Sequential(
            nn.Conv2d(channels, ATTENTION_HIDDEN, kernel_size=(1, 1)),
            nn.SELU(inplace=True),
            nn.BatchNorm2d(ATTENTION_HIDDEN),
            nn.Conv2d(ATTENTION_HIDDEN, channels, kernel_size=(1, 1)),
        )

    def ssl_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.freeze_ssl:
            with torch.no_grad():
                return self.ssl_model(x)
        return self.ssl_model(x)

    def forward(self, x: torch.Tensor, Freq_aug: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        # Freq_aug belongs to the shared signature; the authors' model has no frequency masking
        if x.dim() != 2:
            raise ValueError(f"AASIST_WAV2VEC expects a waveform batch (B, T), got shape {tuple(x.shape)}")
        features = self.LL(self.ssl_features(x))  # (B, frames, 128)
        maps = F.max_pool2d(features.transpose(1, 2).unsqueeze(1), FEATURE_POOL)  # (B, 1, 42, frames / 3)
        maps = self.selu(self.first_bn(maps))
        maps = self.selu(self.first_bn1(self.encoder(maps)))  # (B, C, 42, frames / 3)
        weights = self.attention(maps)
        spectral = (maps * F.softmax(weights, dim=-1)).sum(dim=-1).transpose(1, 2)  # (B, 42, C)
        temporal = (maps * F.softmax(weights, dim=-2)).sum(dim=-2).transpose(1, 2)  # (B, frames / 3, C)
        return self.graph_backend(spectral, temporal)

    def convert_state_dict(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The authors' checkpoint (fairseq-named XLS-R) -> this model's keys; its own keys pass unchanged."""
        return convert_detector_state(state, SSL_PREFIX, self.ssl_model.model)


def convert_checkpoint(source: str, target: str, ssl_size: str = "xlsr_300m") -> None:
    """Write the authors' checkpoint as a state dict of this model (strictly checked by loading it)."""
    convert_detector_checkpoint(Model, source, target, ssl_size)


def main(argv: list[str] | None = None) -> None:
    convert_checkpoint_main(
        Model,
        "Convert an SSL_Anti-spoofing checkpoint (LA_model.pth, DF_model.pth) to this model's keys",
        argv,
    )


if __name__ == "__main__":
    main()
