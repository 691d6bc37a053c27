"""Copy-synthesis back-end: spoofs made by passing bona fide speech through a vocoder.

Analysis-resynthesis is the classic way to turn any bona fide corpus into spoofs offline: the words,
speaker, emotion and timing stay those of the original, and only the vocoder's artefacts tell the copy
apart. Each bona fide utterance (read from `--reference_audio DIR`, laid out `<speaker>/<emotion>/<id>.*`
as this tool writes it, or as ESD ships it) becomes `<System>/<speaker>/<emotion>/<id>.flac` with the same
id, so bona fide and spoof stay paired.

Methods
-------
griffinlim (default): 16 kHz audio -> magnitude STFT (Hann window `n_fft`, hop `hop_length`) -> mel
    spectrogram (`n_mels` triangular HTK-mel filters from `fmin` to `fmax`) -> linear magnitude by the
    filterbank's pseudo-inverse (clamped at 0) -> phase by `n_iter` iterations of fast Griffin-Lim
    (Perraudin et al. 2013, momentum `momentum`) from a seeded random phase. The STFT and its inverse are
    torch.stft / torch.istft's, written in NumPy; the output has exactly the input's length.
world: WORLD analysis (DIO + StoneMask F0, CheapTrick envelope, D4C aperiodicity) and synthesis, with
    `frame_period` ms frames; needs the optional `pyworld` package (`pip install pyworld`).

Different settings are different "systems": `get_backend("vocoder", n_fft=512, n_mels=80)` and
`get_backend("vocoder", n_fft=1024, hop_length=256, n_mels=40, n_iter=8)` leave different artefacts. The
default system name spells the settings out (e.g. `GL-nfft512-hop128-mels80-it32`).
"""

from __future__ import annotations

import numpy as np

from DSES.backends.base import Backend, missing_package_error

SAMPLE_RATE = 16000


def hz_to_mel(frequency):
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(frequency, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular filters on the HTK mel scale, shape (n_mels, n_fft // 2 + 1), peak 1, no area norm."""
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= {sample_rate / 2}, got fmin={fmin}, fmax={fmax}")
    bin_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bin_hz[None, :] - lower) / (centre - lower)
    falling = (upper - bin_hz[None, :]) / (upper - centre)
    filters = np.maximum(0.0, np.minimum(rising, falling))
    if np.any(filters.sum(axis=1) == 0):
        raise ValueError(
            f"{n_mels} mel bands are too many for n_fft={n_fft}: some bands contain no FFT bin; "
            "use fewer mel bands or a larger n_fft"
        )
    return filters.astype(np.float32)


class MelGriffinLim:
    """Mel analysis and Griffin-Lim resynthesis at 16 kHz.

    NumPy rather than torch: NumPy's FFT is single-threaded, and torch's intra-op threads made this loop
    five times slower on a busy 2-core machine (the demo's target) than one thread is.
    The STFT is torch.stft's (centred frames, reflect padding, periodic Hann window); the inverse is
    overlap-add with the window-square normalisation (torch.istft's).
    """

    def __init__(
        self,
        n_fft: int = 512,
        hop_length: int | None = None,
        n_mels: int = 80,
        n_iter: int = 32,
        fmin: float = 0.0,
        fmax: float | None = None,
        momentum: float = 0.99,
    ):
        if n_fft < 16 or n_fft & (n_fft - 1):
            raise ValueError(f"n_fft must be a power of two >= 16, got {n_fft}")
        self.n_fft = n_fft
        self.hop_length = hop_length or n_fft // 4
        if not 0 < self.hop_length <= n_fft // 2:
            raise ValueError(f"hop_length must be in 1..n_fft/2 for Griffin-Lim, got {self.hop_length}")
        if n_iter < 1:
            raise ValueError(f"n_iter must be >= 1, got {n_iter}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.n_mels, self.n_iter, self.momentum = n_mels, n_iter, momentum
        self.fmin, self.fmax = fmin, fmax if fmax is not None else SAMPLE_RATE / 2
        self.window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
        self.filterbank = mel_filterbank(SAMPLE_RATE, n_fft, n_mels, self.fmin, self.fmax)
        self.inverse_filterbank = np.linalg.pinv(self.filterbank).astype(np.float32)
        self._envelopes: dict[int, np.ndarray] = {}

    def stft(self, waveform: np.ndarray) -> np.ndarray:
        """Complex STFT, shape (frames, n_fft // 2 + 1); frames = 1 + len // hop."""
        padded = np.pad(waveform, self.n_fft // 2, mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft)[:: self.hop_length]
        return np.fft.rfft(frames * self.window, axis=1).astype(np.complex64, copy=False)

    def istft(self, spectrum: np.ndarray, length: int) -> np.ndarray:
        """Overlap-add inverse of `stft`, cut to `length` samples."""
        frames = np.fft.irfft(spectrum, n=self.n_fft, axis=1).astype(np.float32, copy=False) * self.window
        return (self._overlap_add(frames) / self._envelope(len(frames)))[
            self.n_fft // 2 : self.n_fft // 2 + length
        ]

    def _overlap_add(self, frames: np.ndarray) -> np.ndarray:
        count, hop, n_fft = len(frames), self.hop_length, self.n_fft
        output = np.zeros(n_fft + hop * (count - 1), dtype=np.float32)
        if n_fft % hop == 0:  # add whole hop-sized columns of all frames at once
            for part in range(n_fft // hop):
                column = frames[:, part * hop : (part + 1) * hop].reshape(-1)
                output[part * hop : part * hop + column.size] += column
        else:
            for index, frame in enumerate(frames):
                output[index * hop : index * hop + n_fft] += frame
        return output

    def _envelope(self, count: int) -> np.ndarray:
        """Overlap-added squared window for `count` frames (the same for every Griffin-Lim iteration)."""
        if count not in self._envelopes:
            squares = np.ascontiguousarray(np.broadcast_to(self.window**2, (count, self.n_fft)))
            self._envelopes = {count: np.maximum(self._overlap_add(squares), 1e-11)}
        return self._envelopes[count]

    def analyse(self, waveform: np.ndarray) -> np.ndarray:
        """Mel magnitude spectrogram (n_mels, frames) of a 1-D waveform."""
        # einsum, not matmul: these products are small, and a multi-threaded BLAS on a busy machine made
        # them 30 times slower than its own loops are
        return np.einsum("mf,tf->mt", self.filterbank, np.abs(self.stft(waveform)))

    def resynthesise(self, mel: np.ndarray, length: int, seed: int = 0) -> np.ndarray:
        """A waveform of `length` samples whose mel spectrogram approximates `mel`."""
        magnitude = np.maximum(np.einsum("fm,mt->tf", self.inverse_filterbank, mel), 0.0)  # (frames, bins)
        phase = np.random.default_rng(seed).random(magnitude.shape, dtype=np.float32) * np.float32(2 * np.pi)
        angles = (np.cos(phase) + 1j * np.sin(phase)).astype(np.complex64)
        previous = np.zeros_like(angles)
        step = np.float32(self.momentum / (1 + self.momentum))
        for _ in range(self.n_iter):
            rebuilt = self.stft(self.istft(magnitude * angles, length))
            # fast Griffin-Lim: extrapolate along the last step before projecting back to unit phase
            accelerated = rebuilt - step * previous
            angles = accelerated / np.maximum(np.abs(accelerated), np.float32(1e-16))
            previous = rebuilt
        return self.istft(magnitude * angles, length)

    def __call__(self, waveform: np.ndarray, seed: int = 0) -> np.ndarray:
        signal = np.ascontiguousarray(waveform, dtype=np.float32)
        if signal.size <= self.n_fft // 2:
            raise ValueError(f"the audio is shorter than half an analysis window ({self.n_fft // 2} samples)")
        return self.resynthesise(self.analyse(signal), signal.size, seed)


def world_copy_synthesis(waveform: np.ndarray, frame_period: float = 5.0) -> np.ndarray:
    """WORLD analysis-resynthesis at 16 kHz (needs pyworld), trimmed or padded to the input's length."""
    try:
        import pyworld
    except ImportError as error:
        raise missing_package_error("vocoder (method='world')", "pyworld", "pip install pyworld") from error
    signal = np.ascontiguousarray(waveform, dtype=np.float64)
    f0, times = pyworld.dio(signal, SAMPLE_RATE, frame_period=frame_period)
    f0 = pyworld.stonemask(signal, f0, times, SAMPLE_RATE)
    envelope = pyworld.cheaptrick(signal, f0, times, SAMPLE_RATE)
    aperiodicity = pyworld.d4c(signal, f0, times, SAMPLE_RATE)
    output = pyworld.synthesize(f0, envelope, aperiodicity, SAMPLE_RATE, frame_period)
    output = output[: signal.size]
    if output.size < signal.size:
        output = np.pad(output, (0, signal.size - output.size))
    return output.astype(np.float32)


class VocoderBackend(Backend):
    """Copy synthesis of bona fide utterances (Griffin-Lim from a mel spectrogram, or WORLD)."""

    name = "vocoder"
    sample_rate = SAMPLE_RATE
    reference = "utterance"

    def __init__(
        self,
        method: str = "griffinlim",
        n_fft: int = 512,
        hop_length: int | None = None,
        n_mels: int = 80,
        n_iter: int = 32,
        fmin: float = 0.0,
        fmax: float | None = None,
        momentum: float = 0.99,
        frame_period: float = 5.0,
    ):
        self.method = method.lower().replace("-", "").replace("_", "")
        if self.method == "griffinlim":
            self.vocoder = MelGriffinLim(n_fft, hop_length, n_mels, n_iter, fmin, fmax, momentum)
            v = self.vocoder
            self.system = f"GL-nfft{v.n_fft}-hop{v.hop_length}-mels{v.n_mels}-it{v.n_iter}"
        elif self.method == "world":
            try:
                import pyworld  # noqa: F401  (checked now, so a missing package fails before any work)
            except ImportError as error:
                raise missing_package_error(
                    "vocoder (method='world')", "pyworld", "pip install pyworld"
                ) from error
            self.frame_period = float(frame_period)
            self.system = f"WORLD-fp{self.frame_period:g}"
        else:
            raise ValueError(f"unknown vocoder method {method!r}: use 'griffinlim' or 'world'")

    def synthesize(self, text, speaker, emotion, reference_audio=None, seed=0) -> np.ndarray:
        if reference_audio is None or len(reference_audio) == 0:
            raise ValueError("copy synthesis needs the bona fide utterance as reference_audio")
        if self.method == "world":
            return world_copy_synthesis(reference_audio, self.frame_period)
        return self.vocoder(reference_audio, seed)

    def settings(self) -> dict:
        if self.method == "world":
            return {"method": "world", "frame_period_ms": self.frame_period, "f0": "dio+stonemask"}
        v = self.vocoder
        return {
            "method": "griffinlim",
            "n_fft": v.n_fft,
            "hop_length": v.hop_length,
            "win_length": v.n_fft,
            "n_mels": v.n_mels,
            "fmin": v.fmin,
            "fmax": v.fmax,
            "n_iter": v.n_iter,
            "momentum": v.momentum,
        }
