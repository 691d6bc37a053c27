"""EmoSpeech back-end: deepvk's FastSpeech2-based emotional TTS with an iSTFTNet vocoder.

EmoSpeech was trained on the ten English ESD speakers; it takes a speaker id (1..10 = ESD 0011..0020) and
an emotion id (0 neutral, 1 angry, 2 happy, 3 sad, 4 surprise) and a phoneme sequence (ARPAbet with
stress, the phone set of its `phones.json`). The calls follow its `src/scripts/inference.py`, which the
upstream notebook (akzykova/aasist_ser, DSES/EmoSpeech.ipynb) ran once per utterance in a subprocess;
here the model is loaded once: FastSpeechLightning.load_from_checkpoint -> model.model(device, batch) ->
the predicted mel (trimmed to its length) -> synthesize_wav_from_mel with the iSTFTNet generator.
Output: 16 kHz.

EmoSpeech has no grapheme-to-phoneme step (upstream fed MFA `english_us_arpa` phonemes from a file). A
text whose words are all phones of `phones.json` is used as is ("S P IY1 CH"); other text is converted
with `g2p_en` (pip install g2p_en), which gives the same ARPAbet phones, punctuation dropped.

Needs a GPU and: git clone https://github.com/deepvk/emospeech && pip install -r emospeech/requirements.txt,
the checkpoints of its download_data.sh (emospeech.ckpt, g_01800000, phones.json) in `data_dir`
(default <repo_dir>/data), and `repo_dir=<the clone>` (EmoSpeech is not a pip package: its `config` and
`src` packages are imported from there).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from DSES.backends.base import Backend, missing_package_error

INSTALL = (
    "git clone https://github.com/deepvk/emospeech && pip install -r emospeech/requirements.txt "
    "(weights: emospeech/download_data.sh), then pass --option repo_dir=emospeech"
)
EMOTION_IDS = {"neutral": 0, "angry": 1, "happy": 2, "sad": 3, "surprise": 4}
ESD_SPEAKERS = [f"00{n}" for n in range(11, 21)]  # EmoSpeech speaker ids 1..10


def speaker_id(speaker: str) -> int:
    """EmoSpeech's speaker id: ESD '0011'..'0020' -> 1..10, or the id itself ('1'..'10')."""
    if speaker in ESD_SPEAKERS:
        return ESD_SPEAKERS.index(speaker) + 1
    if speaker.isdigit() and 1 <= int(speaker) <= 10:
        return int(speaker)
    raise ValueError(f"EmoSpeech knows the ESD English speakers 0011..0020 (or ids 1..10), not {speaker!r}")


class EmoSpeechBackend(Backend):
    """EmoSpeech (FastSpeech2 + iSTFTNet) with speaker and emotion ids."""

    name = "emospeech"
    system = "EmoSpeech"
    reference = None
    default_speakers = tuple(ESD_SPEAKERS)

    def __init__(
        self,
        repo_dir: str | None = None,
        data_dir: str | None = None,
        checkpoint: str | None = None,
        vocoder_checkpoint: str | None = None,
        phones: str | None = None,
        device: str | None = None,
    ):
        if repo_dir is not None:
            repo = Path(repo_dir).resolve()
            if not repo.is_dir():
                raise FileNotFoundError(f"EmoSpeech repo_dir {repo} does not exist")
            if str(repo) not in sys.path:
                sys.path.insert(0, str(repo))
            data = Path(data_dir) if data_dir else repo / "data"
        else:
            data = Path(data_dir) if data_dir else Path("data")
        try:
            import torch
            from config.config import TrainConfig
            from src.models import Generator, TorchSTFT
            from src.models.acoustic_model.fastspeech.lightning_model import FastSpeechLightning
            from src.utils.vocoder_utils import load_checkpoint, synthesize_wav_from_mel
        except ImportError as error:
            raise missing_package_error("emospeech", "EmoSpeech repository", INSTALL) from error
        self._torch = torch
        self._synthesize_wav_from_mel = synthesize_wav_from_mel
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        config = TrainConfig()
        config.testing_checkpoint = str(checkpoint or data / "emospeech.ckpt")
        config.vocoder_checkpoint_path = str(vocoder_checkpoint or data / "g_01800000")
        config.phones_path = str(phones or data / "phones.json")
        config.device = self.device
        for path in (config.testing_checkpoint, config.vocoder_checkpoint_path, config.phones_path):
            if not Path(path).is_file():
                raise FileNotFoundError(f"EmoSpeech file {path} not found (see emospeech/download_data.sh)")
        self.config = config
        with open(config.phones_path, encoding="utf-8") as handle:
            self.phones: dict[str, int] = json.load(handle)

        # as in EmoSpeech's src/scripts/inference.py
        vocoder = Generator(**asdict(config))
        stft = TorchSTFT(**asdict(config))
        vocoder.load_state_dict(load_checkpoint(config.vocoder_checkpoint_path)["generator"])
        vocoder.remove_weight_norm()
        vocoder.eval()
        self.model = FastSpeechLightning.load_from_checkpoint(
            config.testing_checkpoint,
            config=config,
            vocoder=vocoder,
            stft=stft,
            train=False,
            map_location=self.device,
        )
        self.model.to(self.device)
        self.model.eval()
        self.sample_rate = int(config.sample_rate)
        self._g2p = None

    def phonemes(self, text: str) -> list[str]:
        """ARPAbet phones of `text`: the text itself if it is a phone sequence, else g2p_en's conversion."""
        tokens = text.split()
        if tokens and all(token in self.phones for token in tokens):
            return tokens
        if self._g2p is None:
            try:
                from g2p_en import G2p
            except ImportError as error:
                raise missing_package_error(
                    "emospeech (text input)",
                    "g2p_en",
                    "pip install g2p_en  (or give ARPAbet phone sequences)",
                ) from error
            self._g2p = G2p()
        phones = [p for p in self._g2p(text) if p.strip() and p[0].isalpha()]
        unknown = sorted({p for p in phones if p not in self.phones})
        if unknown:
            raise ValueError(f"phones {unknown} of {text!r} are not in EmoSpeech's phones.json")
        if not phones:
            raise ValueError(f"no phones in {text!r}")
        return phones

    def batch(self, text: str, speaker: str, emotion: str) -> dict:
        """The input dict EmoSpeech's model takes for one utterance (as its inference script builds it)."""
        torch = self._torch
        phone_ids = torch.tensor([self.phones[p] for p in self.phonemes(text)]).long().unsqueeze(0)
        speaker_index, emotion_index = speaker_id(speaker), EMOTION_IDS[emotion]
        return {
            "ids": [f"{speaker_index}_0_{emotion_index}"],
            "speakers": torch.tensor([speaker_index]),
            "emotions": torch.tensor([emotion_index]),
            "texts": phone_ids,
            "text_lens": torch.tensor([phone_ids.shape[1]]).long(),
            "mels": None,
            "mel_lens": None,
            "pitches": None,
            "energies": None,
            "durations": None,
            "egemap_features": None,
        }

    def synthesize(self, text, speaker, emotion, reference_audio=None, seed=0) -> np.ndarray:
        self._torch.manual_seed(seed)
        with self._torch.no_grad():
            output = self.model.model(self.model.device, self.batch(text, speaker, emotion))
            mel_length = int(output["mel_len"][0])
            mel = output["predicted_mel"][0, :mel_length]
            waveform = self._synthesize_wav_from_mel(mel, self.model.vocoder, self.model.stft)
        return np.asarray(waveform, dtype=np.float32)

    def settings(self) -> dict:
        return {"checkpoint": Path(self.config.testing_checkpoint).name, "vocoder": "iSTFTNet"}

    def item_settings(self, speaker: str, emotion: str) -> dict:
        return {"speaker_id": speaker_id(speaker), "emotion_id": EMOTION_IDS[emotion]}
