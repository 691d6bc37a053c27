"""Zonos back-end: Zyphra's Zonos-v0.1 transformer with voice cloning and an emotion vector.

As in the upstream notebook (akzykova/aasist_ser, DSES/Zonos.ipynb): the speaker embedding comes from the
ESD speaker's own speech (`model.make_speaker_embedding(wav, sr)`, upstream used a merged file of the
speaker's clips), the text and emotion go through `make_cond_dict(text=..., speaker=..., emotion=...)`,
then `prepare_conditioning`, `generate` and `autoencoder.decode`; Zonos' other conditioning values are left
at their defaults (language en-us, speaking rate 15, pitch std 20, fmax 22050, cfg scale 2, min_p 0.1).
Output: 44.1 kHz, resampled to 16 kHz by the pipeline.

Zonos' emotion vector is (happiness, sadness, disgust, fear, surprise, anger, other, neutral); the upstream
vectors below put 1 on the target emotion over Zonos' default (neutral) mixture.

Needs a GPU and: git clone https://github.com/Zyphra/Zonos && pip install -e ./Zonos (and the espeak-ng
system package Zonos' phonemiser uses: apt install espeak-ng).
"""

from __future__ import annotations

import inspect

import numpy as np

from DSES.backends.base import Backend, missing_package_error

INSTALL = (
    "git clone https://github.com/Zyphra/Zonos && pip install -e ./Zonos  (plus: apt install -y espeak-ng)"
)

# Upstream notebook's vectors: (happiness, sadness, disgust, fear, surprise, anger, other, neutral).
EMOTION_VECTORS: dict[str, list[float]] = {
    "happy": [1, 0.0256, 0.0256, 0.0256, 0.0256, 0.0256, 0.2564, 0.3077],
    "sad": [0.3077, 1, 0.0256, 0.0256, 0.0256, 0.0256, 0.2564, 0.3077],
    "angry": [0.3, 0.02, 0.02, 0.02, 0.02, 1, 0.2, 0.3],
    "surprise": [0.3077, 0.0256, 0.0256, 0.0256, 1, 0.0256, 0.2564, 0.3077],
    "neutral": [0.3077, 0.0256, 0.0256, 0.0256, 0.0256, 0.0256, 0.2564, 0.3077],
}


class ZonosBackend(Backend):
    """Zonos-v0.1 transformer, cloned voice per speaker, upstream emotion vectors."""

    name = "zonos"
    system = "Zonos"
    reference = "speaker"

    def __init__(
        self,
        model_name: str = "Zyphra/Zonos-v0.1-transformer",
        device: str | None = None,
        language: str = "en-us",
    ):
        try:
            import torch
            from zonos.conditioning import make_cond_dict
            from zonos.model import Zonos
        except ImportError as error:
            raise missing_package_error("zonos", "zonos", INSTALL) from error
        if device is None:
            try:
                from zonos.utils import DEFAULT_DEVICE as device
            except ImportError:
                device = "cuda" if torch.cuda.is_available() else "cpu"
        self._torch = torch
        self._make_cond_dict = make_cond_dict
        self.model_name, self.device, self.language = model_name, str(device), language
        self.model = Zonos.from_pretrained(model_name, device=self.device)
        self.sample_rate = int(self.model.autoencoder.sampling_rate)
        self._speaker_embeddings: dict[str, object] = {}
        # Zonos' own progress bar fights ours; older Zonos versions have no switch for it.
        accepts = inspect.signature(self.model.generate).parameters
        self._generate_options = {"progress_bar": False} if "progress_bar" in accepts else {}

    def _speaker_embedding(self, speaker: str, reference_audio: np.ndarray):
        if speaker not in self._speaker_embeddings:
            waveform = self._torch.from_numpy(np.ascontiguousarray(reference_audio, dtype=np.float32))[None]
            self._speaker_embeddings[speaker] = self.model.make_speaker_embedding(waveform, 16000)
        return self._speaker_embeddings[speaker]

    def synthesize(self, text, speaker, emotion, reference_audio=None, seed=0) -> np.ndarray:
        if reference_audio is None:
            raise ValueError(f"Zonos clones the speaker's voice: no reference audio for speaker {speaker!r}")
        self._torch.manual_seed(seed)
        cond_dict = self._make_cond_dict(
            text=text,
            language=self.language,
            speaker=self._speaker_embedding(speaker, reference_audio),
            emotion=EMOTION_VECTORS[emotion],
            device=self.device,
        )
        conditioning = self.model.prepare_conditioning(cond_dict)
        codes = self.model.generate(conditioning, **self._generate_options)
        waveforms = self.model.autoencoder.decode(codes).cpu()  # (batch, channels, samples)
        return waveforms[0].float().numpy()

    def settings(self) -> dict:
        return {"model": self.model_name, "language": self.language, "zonos_defaults": True}

    def item_settings(self, speaker: str, emotion: str) -> dict:
        return {"emotion_vector": EMOTION_VECTORS[emotion]}
