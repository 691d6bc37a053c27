"""CosyVoice back-end: CosyVoice2-0.5B `inference_instruct2`, emotion by a natural-language instruction.

As in the upstream notebook (akzykova/aasist_ser, DSES/CosyVoice.ipynb): the instruction is
"Please speak in a very {emotion} tone." with emotion in (neutral, happy, angry, sad, surprised), and the
voice is cloned from the speaker's prompt speech at 16 kHz. Upstream put the instruction and
`<|endofprompt|>` in front of the text and passed an empty instruction; here the instruction goes in the
`instruct_text` argument where CosyVoice2 expects it, so it conditions the model rather than risk being
read out. The model's output chunks (one per sentence CosyVoice's text frontend splits off) are
concatenated. Output: the model's rate (24 kHz), resampled to 16 kHz by the pipeline.

CosyVoice changed this call's signature over time; both are handled, by the name of its third parameter:
- `prompt_speech_16k` (CosyVoice2 releases of 2025): a (1, T) float tensor at 16 kHz; the frontend appends
  `<|endofprompt|>` to the instruction itself;
- `prompt_wav` (later releases): a path to the prompt audio, and the caller ends the instruction with
  `<|endofprompt|>`.

Needs a GPU and: git clone --recursive https://github.com/FunAudioLLM/CosyVoice && pip install -r
CosyVoice/requirements.txt, then pass `repo_dir=<that folder>` (it adds the repo and its
third_party/Matcha-TTS to sys.path). The weights: `model_dir`, a local folder or a ModelScope id that
CosyVoice downloads (default "iic/CosyVoice2-0.5B").
"""

from __future__ import annotations

import inspect
import sys
import tempfile
from pathlib import Path

import numpy as np

from DSES.backends.base import Backend, missing_package_error

INSTALL = (
    "git clone --recursive https://github.com/FunAudioLLM/CosyVoice && "
    "pip install -r CosyVoice/requirements.txt, then pass --option repo_dir=CosyVoice"
)
INSTRUCTION = "Please speak in a very {emotion} tone."
END_OF_PROMPT = "<|endofprompt|>"
# The adjective the instruction uses for each DSES emotion (upstream: 'surprised').
EMOTION_WORDS = {
    "neutral": "neutral",
    "happy": "happy",
    "angry": "angry",
    "sad": "sad",
    "surprise": "surprised",
}


class CosyVoiceBackend(Backend):
    """CosyVoice2 instruct mode with the speaker's prompt speech."""

    name = "cosyvoice"
    system = "CosyVoice"
    reference = "speaker"

    def __init__(
        self,
        model_dir: str = "iic/CosyVoice2-0.5B",
        repo_dir: str | None = None,
        fp16: bool = False,
        speed: float = 1.0,
    ):
        if repo_dir is not None:
            repo = Path(repo_dir).resolve()
            if not repo.is_dir():
                raise FileNotFoundError(f"CosyVoice repo_dir {repo} does not exist")
            for path in (repo, repo / "third_party" / "Matcha-TTS"):
                if str(path) not in sys.path:
                    sys.path.insert(0, str(path))
        try:
            import torch
            from cosyvoice.cli.cosyvoice import CosyVoice2
        except ImportError as error:
            raise missing_package_error("cosyvoice", "cosyvoice", INSTALL) from error
        self._torch = torch
        self.model_dir, self.fp16, self.speed = model_dir, bool(fp16), float(speed)
        self.model = CosyVoice2(model_dir, load_jit=False, load_trt=False, fp16=self.fp16)
        self.sample_rate = int(self.model.sample_rate)
        parameters = list(inspect.signature(self.model.inference_instruct2).parameters)
        self._prompt_is_path = len(parameters) > 2 and parameters[2] == "prompt_wav"
        self._prompt_files = tempfile.TemporaryDirectory(prefix="dses_cosyvoice_")
        self._prompts: dict[str, object] = {}

    def instruction(self, emotion: str) -> str:
        text = INSTRUCTION.format(emotion=EMOTION_WORDS[emotion])
        return text + END_OF_PROMPT if self._prompt_is_path else text

    def _prompt(self, speaker: str, reference_audio: np.ndarray):
        """The prompt speech in the form this CosyVoice version takes: a 16 kHz tensor or a file path."""
        if speaker not in self._prompts:
            audio = np.ascontiguousarray(reference_audio, dtype=np.float32)
            if self._prompt_is_path:
                import soundfile as sf

                path = Path(self._prompt_files.name) / f"{speaker}.wav"
                sf.write(str(path), audio, 16000, subtype="PCM_16")
                self._prompts[speaker] = str(path)
            else:
                self._prompts[speaker] = self._torch.from_numpy(audio)[None]
        return self._prompts[speaker]

    def synthesize(self, text, speaker, emotion, reference_audio=None, seed=0) -> np.ndarray:
        if reference_audio is None:
            raise ValueError(
                f"CosyVoice clones the speaker's voice: no prompt speech for speaker {speaker!r}"
            )
        self._torch.manual_seed(seed)
        chunks = [
            output["tts_speech"]
            for output in self.model.inference_instruct2(
                text,
                self.instruction(emotion),
                self._prompt(speaker, reference_audio),
                stream=False,
                speed=self.speed,
            )
        ]
        if not chunks:
            raise RuntimeError(f"CosyVoice returned no audio for {text!r}")
        # each chunk is (1, samples); sentences follow each other
        return np.concatenate([chunk.detach().float().cpu().numpy().reshape(-1) for chunk in chunks])

    def settings(self) -> dict:
        return {
            "model": self.model_dir,
            "fp16": self.fp16,
            "speed": self.speed,
            "mode": "inference_instruct2",
        }

    def item_settings(self, speaker: str, emotion: str) -> dict:
        return {"instruction": INSTRUCTION.format(emotion=EMOTION_WORDS[emotion])}
