"""eSpeak NG back-end: emotional speech by prosody rules, offline, no GPU, no system packages.

eSpeak NG comes from the `espeakng-loader` wheel (it ships `libespeak-ng` and its voice data) and is
driven through its C API with ctypes: `espeak_Initialize` in AUDIO_OUTPUT_SYNCHRONOUS mode with a synth
callback that collects the 16-bit samples, `espeak_SetVoiceByName`, `espeak_SetParameter`, `espeak_Synth`.
Output: 22 050 Hz mono.

Emotion by rule
---------------
Formant synthesis has no emotion model, so each emotion is rendered by the four global prosodic controls
eSpeak offers: speaking rate (words per minute), pitch level (0-100, 50 = the voice's own), pitch range
(0-100, 50 = the voice's own; 0 is monotone) and volume (amplitude, 100 = normal). The directions follow
the qualitative table of Murray & Arnott (1993), "Toward the simulation of emotion in synthetic speech"
(JASA 93(2)), and the review of rule-based emotional synthesis by Schröder (2001), "Emotional speech
synthesis: a review" (Eurospeech), whose surveyed rule sets agree on these directions:

    emotion   rate         pitch level      pitch range     volume   why
    neutral   x1.00 (165)  50               50              100      eSpeak's own, reading style
    happy     x1.10 (182)  65 (+15)         75 (wider)      115      M&A: faster or slower, much higher,
                                                                     much wider, higher intensity
    angry     x1.08 (178)  60 (+10)         70 (wider)      135      M&A (hot anger): slightly faster,
                                                                     very much higher, much wider, higher
                                                                     intensity; loudness is its mark here
    sad       x0.80 (132)  38 (-12)         25 (narrower)   75       M&A: slightly slower, slightly lower,
                                                                     slightly narrower, lower intensity
    surprise  x1.05 (173)  72 (+22)         90 (widest)     115      not in M&A's table; Schröder's survey:
                                                                     high pitch, wide range, fast, loud-ish

Angry gets a smaller pitch rise than happy although M&A list anger as "very much higher": with eSpeak's
voices a larger rise makes anger sound like joy, and eSpeak cannot render the tense voice quality that
distinguishes them, so loudness (+35 %, about +2.6 dB, the most of all five) carries anger. Volume 135 is
the most eSpeak gives without clipping its 16-bit output on these voices. The values are deliberately
moderate: they are a stand-in for acted emotion, measurably different (see tests/test_dses_synthesis.py:
sad is slower and lower than neutral, happy and surprise higher, angry louder), not a model of it.

Speakers
--------
A speaker name maps, deterministically, to one of ten voices (an English accent plus an eSpeak voice
variant of a different sex and pitch, see SPEAKER_VOICES) and a small pitch offset, so that "speakers"
sound different: names that are numbers (ESD's "0011" ... "0020") take voice `int(name) % 10`, so ten
consecutive numbers get ten different voices; other names are hashed (CRC-32). `voices={"spk": "en-us+f3"}`
overrides the mapping. The same name always gets the same voice, whatever other speakers a run has, so a
resumed run matches the files made before.

eSpeak keeps a little state between calls (the glottal phase), so the same call renders identically to
within a few samples rather than bit for bit; the seed is not used.
"""

from __future__ import annotations

import ctypes
import threading
import zlib
from pathlib import Path

import numpy as np

from antispoof.emotions import require_emotion
from DSES.backends.base import Backend, missing_package_error

# (rate factor, pitch level, pitch range, volume) per emotion; see the module docstring for why.
EMOTION_PROSODY: dict[str, tuple[float, int, int, int]] = {
    "neutral": (1.00, 50, 50, 100),
    "happy": (1.10, 65, 75, 115),
    "angry": (1.08, 60, 70, 135),
    "sad": (0.80, 38, 25, 75),
    "surprise": (1.05, 72, 90, 115),
}
NEUTRAL_RATE_WPM = 165

# Ten voices: accent + variant (m = male, f = female variants of eSpeak NG's voices/!v).
SPEAKER_VOICES = (
    "en-us+m1",
    "en-us+f1",
    "en+m3",
    "en-us+f2",
    "en-gb-scotland+m2",
    "en+f3",
    "en-us+m4",
    "en-029+f4",
    "en-us-nyc+m6",
    "en+f5",
)
PITCH_OFFSETS = (-6, -3, 0, 3, 6)  # added to the pitch level, so two names sharing a voice still differ

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4}

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Engine:
    """The process-wide eSpeak NG library: it has global state, so one instance and one lock."""

    _instance: _Engine | None = None
    _create_lock = threading.Lock()

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as error:
            raise missing_package_error("espeak", "espeakng-loader", "pip install espeakng-loader") from error
        library_path = espeakng_loader.get_library_path()
        data_path = Path(espeakng_loader.get_data_path())
        self.lib = lib = ctypes.CDLL(library_path)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        # The path is the folder that contains espeak-ng-data.
        sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path.parent).encode(), _INITIALIZE_DONT_EXIT
        )
        if sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed for data at {data_path} (returned {sample_rate})")
        self.sample_rate = sample_rate
        self.lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept referenced: the library holds the pointer
        lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> _Engine:
        with cls._create_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _collect(self, samples, count, events) -> int:
        if samples and count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # 0 = go on

    def render(
        self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, volume: int
    ) -> np.ndarray:
        with self.lock:
            self._chunks = []
            status = self.lib.espeak_SetVoiceByName(voice.encode("utf-8"))
            if status != 0:
                raise ValueError(
                    f"eSpeak NG has no voice {voice!r} (espeak_SetVoiceByName returned {status})"
                )
            for parameter, value in (
                ("rate", rate),
                ("pitch", pitch),
                ("range", pitch_range),
                ("volume", volume),
            ):
                status = self.lib.espeak_SetParameter(_PARAM[parameter], int(value), 0)
                if status != 0:
                    raise RuntimeError(f"espeak_SetParameter({parameter}={value}) returned {status}")
            data = text.encode("utf-8") + b"\0"
            status = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if status != 0:
                raise RuntimeError(f"espeak_Synth returned {status} for {text!r}")
            chunks, self._chunks = self._chunks, []
        if not chunks:
            raise RuntimeError(f"eSpeak NG produced no audio for {text!r}")
        return np.concatenate(chunks).astype(np.float32) / 32768.0


def speaker_voice(speaker: str) -> tuple[str, int]:
    """The (voice, pitch offset) a speaker name maps to; see the module docstring."""
    key = int(speaker) if speaker.isdigit() else zlib.crc32(speaker.encode("utf-8"))
    voice = SPEAKER_VOICES[key % len(SPEAKER_VOICES)]
    offset = PITCH_OFFSETS[(key // len(SPEAKER_VOICES)) % len(PITCH_OFFSETS)] if not speaker.isdigit() else 0
    return voice, offset


class EspeakBackend(Backend):
    """eSpeak NG with rule-based emotional prosody (see the module docstring for the values and sources)."""

    name = "espeak"
    system = "eSpeak"
    reference = None
    default_speakers = ("s1", "s2")

    def __init__(self, voices: dict[str, str] | None = None, neutral_rate: int = NEUTRAL_RATE_WPM):
        self.voices = dict(voices or {})
        self.neutral_rate = int(neutral_rate)
        self._engine = _Engine.get()
        self.sample_rate = self._engine.sample_rate

    def voice_for(self, speaker: str) -> tuple[str, int]:
        if speaker in self.voices:
            return self.voices[speaker], 0
        return speaker_voice(speaker)

    def prosody(self, speaker: str, emotion: str) -> dict:
        """The eSpeak parameters used for this speaker and emotion."""
        voice, pitch_offset = self.voice_for(speaker)
        rate_factor, pitch, pitch_range, volume = EMOTION_PROSODY[require_emotion(emotion)]
        return {
            "voice": voice,
            "rate": round(self.neutral_rate * rate_factor),
            "pitch": int(np.clip(pitch + pitch_offset, 0, 100)),
            "range": pitch_range,
            "volume": volume,
        }

    def synthesize(self, text, speaker, emotion, reference_audio=None, seed=0) -> np.ndarray:
        if not text.strip():
            raise ValueError("empty text")
        p = self.prosody(speaker, emotion)
        return self._engine.render(text, p["voice"], p["rate"], p["pitch"], p["range"], p["volume"])

    def settings(self) -> dict:
        return {"engine": "eSpeak NG (espeakng-loader)", "neutral_rate_wpm": self.neutral_rate}

    def item_settings(self, speaker: str, emotion: str) -> dict:
        return self.prosody(speaker, emotion)
